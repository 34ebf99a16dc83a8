#!/usr/bin/env python3
"""edgetl's benchmark suite: every ratio the project promises, measured side by side in one run
with the project's own harness, written to BENCHMARKS.md.

    python tools/bench_suite.py [--shared ../shared] [--out BENCHMARKS.md] [--seconds 3]

Needs the dev install. With ../shared present it trains the hymenoptera quality-bar model; without
it, a model on generated data (figures are then marked as such)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MOBILENET_V2_224_MACS = 300e6
AUGMENT_VIEWS = 5
EVAL_IMAGES = 10_000
EVAL_PIXELS = 28
"""The eval figure: 10,000 small PNGs, as a digits test set (what issue 29 timed) would be."""


def section(title: str) -> None:
    print(f"\n== {title}", file=sys.stderr, flush=True)


def runtime_overhead(model: Path, threads: int, seconds: float) -> dict:
    """Classifier.classify (on a model-sized image, so resizing is a no-op) vs the raw
    set_tensor / invoke / get_tensor loop, same interpreter settings; preprocessing separately."""
    from ai_edge_litert.interpreter import Interpreter

    from edgetl.benchmark.harness import BenchOptions, measure_callable
    from edgetl.runtime import load

    opts = BenchOptions(runs=300, warmup=30, min_seconds=seconds)
    clf = load(model, threads=threads)
    image = np.random.default_rng(0).integers(0, 256, (clf.pixels.height, clf.pixels.width, 3), np.uint8)
    raw = Interpreter(model_path=str(model), num_threads=threads)
    raw.allocate_tensors()
    i, o = raw.get_input_details()[0]["index"], raw.get_output_details()[0]["index"]
    x = clf.prepare(image)

    def raw_loop():
        raw.set_tensor(i, x)
        raw.invoke()
        return raw.get_tensor(o)

    # alternate the two measurements so drift and turbo affect both
    a, b = [], []
    for _ in range(3):
        b.append(measure_callable(raw_loop, opts)["p50_ms"])
        a.append(measure_callable(lambda: clf.classify(image), opts)["p50_ms"])
    photo = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), np.uint8)
    pre = measure_callable(lambda: clf.prepare(photo), BenchOptions(runs=100, warmup=5, min_seconds=1))["p50_ms"]
    return {"classify_p50_ms": float(np.median(a)), "raw_p50_ms": float(np.median(b)),
            "ratio": float(np.median(a) / np.median(b)), "preprocess_720p_p50_ms": pre}


def peak_gmacs() -> dict:
    """Single-core float32 multiply-add rate measured with a large matmul (OpenBLAS), and the
    int8 rate estimated from it (x4 with VNNI dot-product instructions, else x2)."""
    import subprocess

    code = ("import numpy as np, time\n"
            "a = np.random.rand(1024, 1024).astype(np.float32); b = np.random.rand(1024, 1024).astype(np.float32)\n"
            "a @ b\nt = time.perf_counter(); n = 20\nfor _ in range(n): a @ b\n"
            "print(n * 1024**3 / (time.perf_counter() - t) / 1e9)")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # This workplace pins OpenBLAS to a conservative kernel on some CPUs; the roofline wants the real one.
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    fp32 = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags or " asimddp" in flags
    return {"fp32_gmacs_per_core": fp32, "int8_gmacs_per_core_est": fp32 * (4 if vnni else 2), "vnni": vnni}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shared", default=os.environ.get("EDGETL_SHARED", str(Path(__file__).resolve().parents[2] / "shared")))
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "BENCHMARKS.md"))
    p.add_argument("--seconds", type=float, default=3.0, help="Minimum seconds per latency measurement.")
    p.add_argument("--workdir", default=None)
    a = p.parse_args()
    t_start = time.perf_counter()

    from edgetl.benchmark import bench
    from edgetl.benchmark.device import device_facts
    from edgetl.benchmark.harness import BenchOptions
    from edgetl.data.audit import audit
    from edgetl.data.cache import open_images
    from edgetl.runtime.spec import PixelSpec
    from scale_bench import epoch_rates
    from edgetl.exporting.formats import Int8Settings
    from edgetl.exporting.pipeline import ExportOptions, export
    from edgetl.live import CaptureRequest, LiveOptions, run as live_run
    from edgetl.image import cv2 as _cv2, load as load_image
    from edgetl import TrainConfig, train

    work = Path(a.workdir or tempfile.mkdtemp(prefix="edgetl-bench-"))
    shared = Path(a.shared)
    weights = shared / "weights" / "mobilenet_v2_imagenet_no_top.weights.h5"
    data = shared / "datasets" / "hymenoptera"
    real = weights.exists() and data.exists()
    if not real:
        from edgetl.demo import make_dataset

        data = make_dataset(work / "demo-data", 80)
    w = str(weights) if real else "none"
    facts = device_facts().to_dict()
    results: dict = {"machine": facts, "date": time.strftime("%Y-%m-%d"), "real_data": real}

    section("data loading: cold decode into the disk cache vs a shuffled training epoch read from it")
    os.environ["EDGETL_CACHE"] = str(work / "cache")
    records = audit(data).records
    paths = [r.path for r in records]
    t = time.perf_counter()
    store = open_images(paths, PixelSpec(224, 224), quiet=True)
    cold = time.perf_counter() - t
    warm = float(np.median(epoch_rates(store, np.array([r.label for r in records]), 2, epochs=3)))
    results["loading"] = {"images": len(paths), "cold_images_per_s": len(paths) / cold,
                          "cached_images_per_s": warm, "ratio": warm * cold / len(paths)}

    section("stage 1, 10 epochs: cached features vs through the frozen base, without and with augmentation")
    stage1 = {}
    variants = {"cached": dict(augment=False), "through_base": dict(augment=False, feature_cache=False),
                "augmented_views": dict(augment=True, augment_views=AUGMENT_VIEWS),
                "augmented_through_base": dict(augment=True, augment_views=0)}
    for name, settings in variants.items():
        cfg = TrainConfig(data=str(data), weights=w, epochs=10, fine_tune_epochs=0, patience=100,
                          project=str(work / "runs"), name=f"stage1_{name}", **settings)
        r = train(cfg)
        stage1[name] = {"seconds": r.metrics.seconds["stage1"], "val_accuracy": r.metrics.val_accuracy}
    stage1["speedup"] = stage1["through_base"]["seconds"] / stage1["cached"]["seconds"]
    stage1["augmented_speedup"] = stage1["augmented_through_base"]["seconds"] / stage1["augmented_views"]["seconds"]
    results["stage1"] = stage1

    section("quality-bar training run (defaults) and export --all")
    run = train(TrainConfig(data=str(data), weights=w, project=str(work / "runs"), name="quality"))
    figures = run.metrics.to_dict()
    results["training"] = {k: figures[k] for k in ("val_accuracy", "seconds", "images_per_s", "epochs", "best")}
    # As a user runs it: the command in a process of its own, timed from start to exit.
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgetl", "export", str(run.path), "--all", "--json"],
                          capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise SystemExit(f"export failed: {proc.stderr.strip()[-2000:]}")
    exported = json.loads(proc.stdout)
    folder = Path(exported["folder"])
    report = json.loads((folder / "report.json").read_text())
    results["export"] = {"keras_accuracy": exported["keras_accuracy"], "seconds": report["seconds"], "wall": wall,
                         "checks": exported["checks"], "calibration": report["int8_calibration"]}
    # The same model quantized for ARM64 (S8S8), measured here beside the x86 default (U8S8).
    arm_run = work / "runs" / "quality_arm64"
    shutil.rmtree(arm_run, ignore_errors=True)  # left by an earlier suite in the same --workdir
    shutil.copytree(run.path, arm_run)
    arm = export(arm_run, ExportOptions(formats=["onnx_int8"], int8=Int8Settings(target="arm64")))
    s8s8 = work / "model_int8_s8s8.onnx"
    shutil.copy(arm.folder / "model_int8.onnx", s8s8)
    results["onnx_s8s8"] = next(c.to_dict() for c in arm.checks if c.file == "model_int8.onnx")
    # And the int8 TFLite model with int8 input and output (--io int8): the default uint8 one's two
    # QUANTIZE ops (pixels to int8, scores to uint8) run outside XNNPACK; this one has none.
    io_run = work / "runs" / "quality_io_int8"
    shutil.rmtree(io_run, ignore_errors=True)
    shutil.copytree(run.path, io_run)
    io_int8 = work / "model_int8_io_int8.tflite"
    shutil.copy(export(io_run, ExportOptions(formats=["int8"], int8=Int8Settings(io="int8"))).folder
                / "model_int8.tflite", io_int8)

    section("verify RUN: every artifact against Keras again")
    from edgetl.exporting.verify_run import verify_run

    t = time.perf_counter()
    verified = verify_run(run.path)
    results["verify"] = {"seconds": time.perf_counter() - t, "ok": verified.ok, "artifacts": len(verified.checks)}

    section(f"eval of {EVAL_IMAGES:,} images of {EVAL_PIXELS} px by every artifact and model.keras")
    results["eval"] = eval_every_format(run.path, folder, data, work / "eval10k")

    section("frozen base, batch 32: Keras (TensorFlow) vs ONNX Runtime, interleaved")
    results["frozen_base"] = frozen_base_rates(w)

    section("training side by side: TensorFlow's transfer-learning tutorial as plain Keras vs edgetl train")
    results["side_by_side"] = side_by_side(data, w, work) if real else None

    section("latency: every artifact at 1 and 2 threads, one run")
    models = [folder / n for n in ("model_fp32.tflite", "model_fp16.tflite", "model_dynamic.tflite", "model_int8.tflite",
                                   "model.onnx", "model_int8.onnx")] + [s8s8, io_int8]
    lat = [r.to_dict() for r in bench(models, [1, 2], options=BenchOptions(runs=200, warmup=20, min_seconds=a.seconds))]
    results["latency"] = [{k: r[k] for k in ("model", "threads", "p50_ms", "p90_ms", "fps", "init_ms", "size_bytes",
                                             "harness_overhead_pct")} for r in lat]
    by = {(r["model"], r["threads"]): r for r in lat}
    peak = peak_gmacs()
    results["roofline"] = peak
    ratios = {}
    for t in (1, 2):
        ratios[f"tflite_int8_vs_fp32_{t}t"] = by[("model_fp32.tflite", t)]["p50_ms"] / by[("model_int8.tflite", t)]["p50_ms"]
        ratios[f"tflite_dynamic_vs_fp32_{t}t"] = (by[("model_fp32.tflite", t)]["p50_ms"]
                                                 / by[("model_dynamic.tflite", t)]["p50_ms"])
        ratios[f"onnx_int8_vs_fp32_{t}t"] = by[("model.onnx", t)]["p50_ms"] / by[("model_int8.onnx", t)]["p50_ms"]
        ratios[f"onnx_s8s8_vs_fp32_{t}t"] = by[("model.onnx", t)]["p50_ms"] / by[(s8s8.name, t)]["p50_ms"]
        ratios[f"tflite_int8_io_int8_vs_uint8_{t}t"] = by[("model_int8.tflite", t)]["p50_ms"] / by[(io_int8.name, t)]["p50_ms"]
    bound_fp32 = MOBILENET_V2_224_MACS / (peak["fp32_gmacs_per_core"] * 1e9) * 1e3
    bound_int8 = MOBILENET_V2_224_MACS / (peak["int8_gmacs_per_core_est"] * 1e9) * 1e3
    for name, bound in (("model_fp32.tflite", bound_fp32), ("model_int8.tflite", bound_int8),
                        ("model.onnx", bound_fp32), ("model_int8.onnx", bound_int8)):
        ratios[f"{name}_vs_roofline_1t"] = by[(name, 1)]["p50_ms"] / bound
    results["ratios"] = ratios
    results["roofline"] |= {"fp32_bound_ms_1t": bound_fp32, "int8_bound_ms_1t": bound_int8}

    section("where int8 time goes, 1 thread: bench --profile")
    from edgetl.benchmark.profile import profile

    results["profile"] = {m: profile(folder / m, 1).to_dict()
                          for m in ("model_int8.tflite", "model_int8.onnx", "model_dynamic.tflite")}

    section("runtime overhead: Classifier.classify vs the raw interpreter loop")
    results["overhead"] = {t: runtime_overhead(folder / "model_int8.tflite", t, a.seconds) for t in (1, 2)}
    results["overhead_fp32"] = runtime_overhead(folder / "model_fp32.tflite", 1, a.seconds)

    section("live pipeline on a 720p video vs bare inference (int8, same threads)")
    cv2 = _cv2()
    video = work / "720p.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (1280, 720))
    for rec in audit(data).split("val")[:60]:  # 60 images x 20 frames: 40 s of video, start-up is noise
        frame = cv2.cvtColor(load_image(rec.path, 720, 1280), cv2.COLOR_RGB2BGR)
        for _ in range(20):
            writer.write(frame)
    writer.release()
    live = {"per_frame_cpu_ms": live_cpu_budget(video, folder / "model_int8.tflite")}
    jpegs = work / "720p-jpeg"
    jpegs.mkdir(exist_ok=True)
    for i, rec in enumerate(audit(data).split("val")[:60]):
        frame = cv2.cvtColor(load_image(rec.path, 720, 1280), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(jpegs / f"{i:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    live["reduced_decode"] = reduced_decode_check(sorted(jpegs.glob("*.jpg")), folder / "model_int8.tflite")
    for name, full in (("jpeg_reduced", False), ("jpeg_full", True)):
        s = live_run(folder / "model_int8.tflite", str(jpegs), LiveOptions(), CaptureRequest(full_decode=full),
                     threads=1).to_dict()
        live[name] = {"fps": s["fps"], "of_bound": s["of_bound"], "stage_ms": s["stage_ms"]}
    for t in (1, 2):
        s = live_run(folder / "model_int8.tflite", str(video), LiveOptions(), threads=t).to_dict()
        live[t] = {"pipeline_fps": s["fps"], "bare_fps": by[("model_int8.tflite", t)]["fps"],
                   "ratio": s["fps"] / by[("model_int8.tflite", t)]["fps"], "frames": s["frames"],
                   "bound_fps": s["bound_fps"], "of_bound": s["of_bound"], "bound_by": s["bound_by"],
                   "stage_ms": s["stage_ms"], "cpu_ms_per_frame": s["cpu_ms_per_frame"]}
    results["live"] = live
    if real:  # the quality run is trained with defaults: the "unknown" rule's figures are measured on it
        section("the \"unknown\" rule: real photos of other things, against max-softmax, and its cost")
        from unknown_figures import measure as unknown_figures

        results["unknown"] = unknown_figures(run.path, data, a.seconds)
    results["suite_seconds"] = time.perf_counter() - t_start
    (work / "bench_suite.json").write_text(json.dumps(results, indent=1, default=str))
    # Sections measured apart are kept: the int8 figures across seeds (tools/int8_figures.py),
    # the "unknown" rule on other datasets (tools/unknown_figures.py --title), the field loop
    # (tools/field_loop.py).
    old = Path(a.out).read_text() if Path(a.out).exists() else ""
    kept = "".join("\n## " + part.rstrip("\n") + "\n" for part in old.split("\n## ")[1:]
                   if part.startswith(("int8 across seeds", "The \"unknown\" rule from the classes' own images: ",
                                       "The field loop")))
    Path(a.out).write_text(render(results) + kept)
    print(render(results))
    print(f"raw results: {work / 'bench_suite.json'}", file=sys.stderr)
    return 0


def eval_every_format(run: Path, folder: Path, data: Path, out: Path) -> dict:
    """Wall time of `edgetl eval` over EVAL_IMAGES small PNGs made from the dataset's photos (their
    class folders kept), for each artifact and the run's model.keras, and each one's images/s."""
    from edgetl import evaluate
    from edgetl.data.audit import audit
    from edgetl.image import cv2 as _cv2, load as load_image
    from edgetl.runs import RunFolder

    cv2 = _cv2()
    records = audit(data).records
    rng = np.random.default_rng(0)
    for i in range(EVAL_IMAGES):
        rec = records[i % len(records)]
        target = out / Path(rec.path).parent.name / f"{i:05d}.png"  # the photo's class folder
        y, x = rng.integers(0, 64 - EVAL_PIXELS, 2)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            crop = load_image(rec.path, 64, 64)[y:y + EVAL_PIXELS, x:x + EVAL_PIXELS]
            cv2.imwrite(str(target), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    models = [RunFolder(run).model] + sorted(folder.glob("*.tflite")) + sorted(folder.glob("*.onnx"))
    timings = {}
    for model in models:
        t = time.perf_counter()
        result = evaluate(model, out, split="all")
        timings[model.name] = {"seconds": time.perf_counter() - t, "images": len(result.predictions),
                               "images_per_s": result.images_per_s, "batch": result.batch}
    return timings


def frozen_base_rates(weights: str, batch: int = 32, rounds: int = 5) -> dict:
    """Images/s of the frozen MobileNetV2 base at 224 through Keras's compiled predict (what
    edgetl's feature pass uses) and through ONNX Runtime on the same graph, the two measured in
    alternating rounds so a busy moment hits both; and how far their outputs differ."""
    import keras
    import onnxruntime as ort

    from edgetl.exporting import onnx as onnx_export
    from edgetl.models.backbones import BACKBONES, build_base

    base = build_base(BACKBONES["mobilenet_v2"], 224, 1.0, weights)
    inputs = keras.Input((224, 224, 3))
    model = keras.Model(inputs, base(inputs, training=False))  # the base as edgetl builds it: pooled features
    t = time.perf_counter()
    proto = onnx_export.fp32(model)
    convert_s = time.perf_counter() - t
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).integers(0, 256, (batch, 224, 224, 3)).astype(np.float32)
    keras_out, ort_out = model.predict_on_batch(x), session.run(None, {name: x})[0]
    spent = {"keras": 0.0, "onnxruntime": 0.0}
    for _ in range(rounds):
        for which, call in (("keras", lambda: model.predict_on_batch(x)), ("onnxruntime", lambda: session.run(None, {name: x}))):
            t = time.perf_counter()
            call()
            spent[which] += time.perf_counter() - t
    rates = {k: rounds * batch / v for k, v in spent.items()}
    return rates | {"ratio": rates["keras"] / rates["onnxruntime"], "batch": batch, "convert_s": convert_s,
                    "max_abs_diff": float(np.abs(keras_out - ort_out).max()),
                    "max_rel_diff": float(np.abs(keras_out - ort_out).max() / np.abs(keras_out).max())}


def side_by_side(data: Path, weights: str, work: Path) -> dict:
    """tools/side_by_side.py for each side, one after the other, each in a process of its own (a
    fresh disk cache for edgetl, so its one decode of the photos is counted)."""
    out = {}
    for side in ("tutorial", "edgetl"):
        env = os.environ | {"EDGETL_CACHE": str(work / f"cache-{side}")}
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name("side_by_side.py")), side, str(data), weights],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{side}: {proc.stderr[-2000:]}")
        out[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["time_ratio"] = out["edgetl"]["seconds"] / out["tutorial"]["seconds"]
    return out


def live_cpu_budget(video: Path, model: Path) -> dict:
    """CPU milliseconds one 720p frame costs in each live stage, measured alone in a fresh process
    (process time, so a decoder's helper threads count, and nothing else of the suite's does): what
    bounds the pipeline on a machine with few cores. The least of three runs, per stage: on a
    shared virtual machine a neighbour's burst can inflate one run's process time."""
    import subprocess

    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_suite; " \
           f"print(json.dumps(bench_suite.live_stage_costs({str(video)!r}, {str(model)!r})))"
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1]) for _ in range(3)]
    return {k: min(r[k] for r in runs) for k in runs[0]}


def reduced_decode_check(files: list[Path], model: Path) -> dict:
    """720p JPEGs decoded whole vs at a reduced DCT scale, each through the shared resize to the
    model: mean and max pixel difference, top-1 agreement of the int8 model, and CPU ms per frame
    of decode + resize either way."""
    from edgetl.image import decode_frame, read_file
    from edgetl.live.pipeline import model_pixels
    from edgetl.runtime import load

    clf = load(model, threads=1)
    target = (clf.pixels.width, clf.pixels.height)
    data = [read_file(f) for f in files]
    out: dict = {}
    pixels = {}
    for name, t in (("full", None), ("reduced", target)):
        c0 = time.process_time()
        for _ in range(3):
            pixels[name] = [model_pixels(clf, decode_frame(d, t)) for d in data]
        out[f"{name}_cpu_ms"] = (time.process_time() - c0) / (3 * len(data)) * 1e3
    diffs = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(pixels["full"], pixels["reduced"])]
    top = {k: clf.scores(v).argmax(1) for k, v in pixels.items()}
    out |= {"frames": len(data), "mean_diff": float(np.mean([d.mean() for d in diffs])),
            "max_diff": int(max(d.max() for d in diffs)),
            "top1_agreement": float(np.mean([a == b for a, b in zip(top["full"], top["reduced"])])),
            "scale": decode_frame(data[0]).shape[1] // decode_frame(data[0], target).shape[1]}
    return out


def live_stage_costs(video: str, model: str) -> dict:
    """See :func:`live_cpu_budget`; runs in the fresh process."""
    from edgetl.live.pipeline import model_pixels
    from edgetl.runtime import load
    from edgetl.image import cv2 as _cv2

    cv2 = _cv2()
    clf = load(model, threads=1)
    cap, frames = cv2.VideoCapture(str(video)), []
    c0 = time.process_time()
    while len(frames) < 300:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    decode = (time.process_time() - c0) / len(frames) * 1e3
    c0 = time.process_time()
    pixels = [model_pixels(clf, f) for f in frames]
    resize = (time.process_time() - c0) / len(frames) * 1e3
    c0 = time.process_time()
    for p in pixels:
        clf.infer(clf.to_input(p[None]))
    infer = (time.process_time() - c0) / len(frames) * 1e3
    return {"decode": decode, "resize": resize, "inference_1t": infer, "cores": os.cpu_count()}


def render(r: dict) -> str:
    """BENCHMARKS.md from the results."""
    m = r["machine"]
    src = "hymenoptera with the shared ImageNet MobileNetV2 weights" if r["real_data"] else "generated data (no ../shared)"
    L = ["# edgetl benchmarks", "",
         f"Measured {r['date']} by `python tools/bench_suite.py` on {m['cpu']} ({m['arch']}, {m['cores']} cores), "
         f"{m['os']}, Python {m['python']}; {src}. Suite run time {r['suite_seconds'] / 60:.1f} min.", "",
         "## Latency, MobileNetV2 224 (p50 of steady-state inference, one run, side by side)", "",
         "| model | threads | p50 ms | p90 ms | FPS | size MB |", "|---|---|---|---|---|---|"]
    for x in r["latency"]:
        L.append(f"| {x['model']} | {x['threads']} | {x['p50_ms']:.2f} | {x['p90_ms']:.2f} | {x['fps']:.0f} | "
                 f"{x['size_bytes'] / 1e6:.2f} |")
    q = r["ratios"]
    rf = r["roofline"]
    L += ["", "## Ratios", "",
          "| what | figure |", "|---|---|",
          f"| TFLite int8 vs fp32 speed-up, 1 / 2 threads | {q['tflite_int8_vs_fp32_1t']:.2f}x / {q['tflite_int8_vs_fp32_2t']:.2f}x |",
          f"| TFLite dynamic range (float depthwise weights) vs fp32 speed-up, 1 / 2 threads | "
          f"{q['tflite_dynamic_vs_fp32_1t']:.2f}x / {q['tflite_dynamic_vs_fp32_2t']:.2f}x |",
          f"| ONNX int8 (x86 target, U8S8) vs fp32 speed-up, 1 / 2 threads | {q['onnx_int8_vs_fp32_1t']:.2f}x / {q['onnx_int8_vs_fp32_2t']:.2f}x |",
          f"| ONNX int8 (arm64 target, S8S8) vs fp32 on this x86 machine, 1 / 2 threads | {q['onnx_s8s8_vs_fp32_1t']:.2f}x / "
          f"{q['onnx_s8s8_vs_fp32_2t']:.2f}x (accuracy {r['onnx_s8s8']['accuracy']:.4f}) |",
          f"| TFLite int8 with int8 input and output (`--io int8`, no QUANTIZE op outside XNNPACK) vs the default "
          f"uint8 one, 1 / 2 threads | {q['tflite_int8_io_int8_vs_uint8_1t']:.2f}x / {q['tflite_int8_io_int8_vs_uint8_2t']:.2f}x |",
          f"| fp32 roofline bound, 1 core ({rf['fp32_gmacs_per_core']:.0f} GMAC/s measured matmul) | {rf['fp32_bound_ms_1t']:.2f} ms |",
          f"| int8 roofline bound, 1 core (est. {rf['int8_gmacs_per_core_est']:.0f} GMAC/s{', VNNI' if rf['vnni'] else ''}) | {rf['int8_bound_ms_1t']:.2f} ms |",
          f"| TFLite fp32 / int8 p50 vs its bound, 1 thread | {q['model_fp32.tflite_vs_roofline_1t']:.2f}x / {q['model_int8.tflite_vs_roofline_1t']:.2f}x |",
          f"| ONNX fp32 / int8 p50 vs its bound, 1 thread | {q['model.onnx_vs_roofline_1t']:.2f}x / {q['model_int8.onnx_vs_roofline_1t']:.2f}x |"]
    for t, o in r["overhead"].items():
        L.append(f"| `Classifier.classify` vs raw interpreter loop, int8, {t} thread(s), p50 | {o['ratio']:.3f} "
                 f"({o['classify_p50_ms']:.3f} vs {o['raw_p50_ms']:.3f} ms) |")
    o = r["overhead_fp32"]
    L.append(f"| `Classifier.classify` vs raw interpreter loop, fp32, 1 thread, p50 | {o['ratio']:.3f} "
             f"({o['classify_p50_ms']:.3f} vs {o['raw_p50_ms']:.3f} ms) |")
    L.append(f"| preprocessing of a 720p frame to 224 (reported separately) | {r['overhead'][1]['preprocess_720p_p50_ms']:.2f} ms |")
    overheads = [x["harness_overhead_pct"] for x in r["latency"]]
    L.append(f"| bench harness overhead vs a bare loop (timing instrumentation per call) | {min(overheads):+.4f}% to {max(overheads):+.4f}% |")
    for t in (1, 2):
        lv = r["live"][t]
        L.append(f"| live FPS on 720p video vs the pipeline's own bound, {t} thread(s) (bound set by {lv['bound_by']}; "
                 f"CPU {lv['cpu_ms_per_frame']:.1f} ms/frame; busy ms/frame: "
                 f"{', '.join(f'{k} {v:.1f}' for k, v in lv['stage_ms'].items())}) | {lv['pipeline_fps']:.0f} vs "
                 f"{lv['bound_fps']:.0f} ({lv['of_bound']:.0%}) |")
        L.append(f"| live pipeline FPS on 720p video vs bare int8 FPS, {t} thread(s) | {lv['pipeline_fps']:.0f} vs "
                 f"{lv['bare_fps']:.0f} ({lv['ratio']:.0%}) |")
    rd = r["live"]["reduced_decode"]
    L.append(f"| live, 720p JPEG frames decoded at 1/{rd['scale']} (DCT scaling) vs whole: CPU ms per frame for decode + "
             f"resize to the model | {rd['reduced_cpu_ms']:.2f} vs {rd['full_cpu_ms']:.2f} "
             f"({rd['full_cpu_ms'] / rd['reduced_cpu_ms']:.2f}x less); model pixels differ by {rd['mean_diff']:.2f} levels "
             f"on average (max {rd['max_diff']}); int8 top-1 agreement {rd['top1_agreement']:.1%} on {rd['frames']} frames |")
    jr, jf = r["live"]["jpeg_reduced"], r["live"]["jpeg_full"]
    L.append(f"| live FPS on a folder of 720p JPEGs, 1 thread: reduced vs whole decode | {jr['fps']:.0f} vs {jf['fps']:.0f} "
             f"({jr['of_bound']:.0%} and {jf['of_bound']:.0%} of their bounds) |")
    cpu = r["live"]["per_frame_cpu_ms"]
    L.append(f"| live, CPU ms per 720p frame: decode / area resize to 224 / int8 inference (1 thread), on {cpu['cores']} cores | "
             f"{cpu['decode']:.2f} / {cpu['resize']:.2f} / {cpu['inference_1t']:.2f} |")
    s1 = r["stage1"]
    L.append(f"| stage 1, 10 epochs: cached features vs through the frozen base | {s1['cached']['seconds']:.1f} s vs "
             f"{s1['through_base']['seconds']:.1f} s ({s1['speedup']:.1f}x); val acc {s1['cached']['val_accuracy']:.4f} vs "
             f"{s1['through_base']['val_accuracy']:.4f} |")
    L.append(f"| stage 1 with augmentation, 10 epochs: {AUGMENT_VIEWS} cached augmented views vs augmenting through the "
             f"frozen base | {s1['augmented_views']['seconds']:.1f} s vs {s1['augmented_through_base']['seconds']:.1f} s "
             f"({s1['augmented_speedup']:.1f}x); val acc {s1['augmented_views']['val_accuracy']:.4f} vs "
             f"{s1['augmented_through_base']['val_accuracy']:.4f} |")
    ld = r["loading"]
    L.append(f"| data loading, {ld['images']} images at 224: cold decode into the cache vs a shuffled training epoch "
             f"read from it | {ld['cold_images_per_s']:.0f} vs {ld['cached_images_per_s']:.0f} images/s ({ld['ratio']:.0f}x) |")
    tr = r["training"]
    L.append(f"| training (defaults): val accuracy, stage 1 / stage 2 wall time | {tr['val_accuracy']:.4f}, "
             f"{tr['seconds'].get('stage1', 0):.0f} s / {tr['seconds'].get('stage2', 0):.0f} s |")
    if tr["images_per_s"].get("stage2"):
        L.append(f"| training images/s, stage 1 (through base, augmented) / stage 2 (fine-tuning) | "
                 f"{tr['images_per_s']['stage1']:.0f} / {tr['images_per_s']['stage2']:.0f} |")
    L += ["", "## Accuracy of each artifact vs Keras", "",
          f"Keras: {r['export']['keras_accuracy']:.4f} on the validation images.", "",
          "| artifact | accuracy | Δ points | top-1 agreement | max prob diff | size MB | export s |", "|---|---|---|---|---|---|---|"]
    secs = r["export"]["seconds"]
    names = {"model_fp32.tflite": "fp32", "model_fp16.tflite": "fp16", "model_dynamic.tflite": "dynamic",
             "model_int8.tflite": "int8", "model.onnx": "onnx", "model_int8.onnx": "onnx_int8"}
    for c in r["export"]["checks"]:
        L.append(f"| {c['file']} | {c['accuracy']:.4f} | {round(-c['drop_points'], 2) + 0.0:+.2f} | {c['agreement']:.1%} | "
                 f"{c['max_prob_diff']:.2g} | {c['size_bytes'] / 1e6:.2f} | {secs.get('convert_' + names.get(c['file'], ''), 0):.1f} |")
    L += where_users_wait(r)
    L += ["", "Anchors: XNNPACK on a Raspberry Pi 4 runs MobileNetV2 fp32 in 41-46 ms and int8 in 17-20 ms (4 threads); "
          "a Pixel 3 runs int8 in 12 ms on its CPU. This machine is an x86 server core with AVX-512, far faster than either.", ""]
    # Every section names the CPU it was measured on: an AMD figure must not pass for an Intel one.
    L = [f"{line} (on {m['cpu']})" if line.startswith("## ") else line for line in L]
    if r.get("unknown"):
        from unknown_figures import render as unknown_section

        L += ["", unknown_section(r["unknown"], m["cpu"])]
    return "\n".join(L)


def where_users_wait(r: dict) -> list[str]:
    """Export and verify by stage, eval of many images per format, the frozen base's runtime, and
    the training side by side (issue 29's figures)."""
    secs = r["export"]["seconds"]
    L = ["", "## Where users wait", "",
         f"`edgetl export RUN --all` of the quality-bar run: **{r['export']['wall']:.1f} s** from the command's start "
         f"to its exit, {sum(secs.values()):.1f} s of it in the stages it times "
         f"({', '.join(f'{k} {v:.1f}' for k, v in secs.items())}; the rest: start-up, verifying each artifact, the "
         f"golden set and the reports); int8 calibration {r['export']['calibration']}. `verify RUN` of its {r['verify']['artifacts']} "
         f"artifacts: {r['verify']['seconds']:.1f} s.", "",
         f"`edgetl eval` of {EVAL_IMAGES:,} PNGs of {EVAL_PIXELS} px (crops of the dataset's photos, `--split all`), "
         "wall time of the whole command's work (audit, decode, inference, figures):", "",
         "| model | images | wall s | inference images/s | images per call |", "|---|---|---|---|---|"]
    for name, e in r["eval"].items():
        L.append(f"| {name} | {e['images']} | {e['seconds']:.1f} | {e['images_per_s']:.0f} | {e['batch']} |")
    tp, op = r["profile"]["model_int8.tflite"], r["profile"]["model_int8.onnx"]
    outside = ", ".join(f"{o['outside_delegate']} {o['op']}" for o in tp["ops"] if o["outside_delegate"]) or "none"
    L += ["", f"Where int8 time goes, 1 thread (`bench --profile`): XNNPACK runs {tp['delegated']} of "
              f"{tp['total_nodes']} nodes of model_int8.tflite in {tp['partitions']} partition(s) (outside it: {outside}); "
              "ONNX Runtime's int8 model by op type: "
              + ", ".join(f"{o['op']} {o['ms']:.2f} ms ({o['share']:.0%})" for o in op["ops"][:4]) + "."]
    dp = r["profile"]["model_dynamic.tflite"]
    L += ["", f"model_dynamic.tflite (int8 weights, its depthwise convolutions' in float): XNNPACK runs "
              f"{dp['delegated']} of {dp['total_nodes']} nodes in {dp['partitions']} partition(s)."]
    fb = r["frozen_base"]
    L += ["", f"Frozen MobileNetV2 base at 224, batch {fb['batch']}, all cores, measured in alternating rounds: Keras "
              f"(TensorFlow, compiled predict) {fb['keras']:.0f} images/s, ONNX Runtime {fb['onnxruntime']:.0f} images/s "
              f"(Keras at {fb['ratio']:.2f}x ONNX Runtime); converting the base took {fb['convert_s']:.1f} s; outputs "
              f"differ by at most {fb['max_abs_diff']:.2g} ({fb['max_rel_diff']:.2g} of the largest)."]
    s = r.get("side_by_side")
    if s:
        tu, ed = s["tutorial"], s["edgetl"]
        L += ["", "Training side by side, one after the other, each in a process of its own (160 px, 10 frozen + 10 "
                  "fine-tuning epochs, the same weights file; edgetl's other settings its defaults, its disk cache cold):", "",
              "| | wall s | val accuracy | peak RSS MB |", "|---|---|---|---|",
              f"| TensorFlow tutorial as plain Keras | {tu['seconds']:.0f} | {tu['val_accuracy']:.4f} | {tu['peak_rss_mb']:.0f} |",
              f"| edgetl train | {ed['seconds']:.0f} | {ed['val_accuracy']:.4f} | {ed['peak_rss_mb']:.0f} |",
              "", f"edgetl's wall time: {s['time_ratio']:.2f}x the tutorial's."]
    return L


if __name__ == "__main__":
    sys.exit(main())
