"""Multi-label on mosaics of real photos, measured: a run on 2x2 mosaics of hymenoptera's ants and
bees and scikit-image's photos of other things (tests/helpers/mosaics.py), with train's default
recipe at 224; every export format's mAP and micro F1 on the validation mosaics beside Keras's,
int8's agreement of label sets, and the int8 latency beside a single-label MobileNetV2 at the same
size (benched side by side in one run).

    python tools/multilabel_figures.py --shared ../shared --out /tmp/multilabel [--benchmarks BENCHMARKS.md]
    python tools/multilabel_figures.py --render multilabel.json --benchmarks BENCHMARKS.md"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

TITLE = "Multi-label (mosaics of real photos)"
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/multilabel"))
    ap.add_argument("--benchmarks", type=Path)
    ap.add_argument("--render", type=Path)
    args = ap.parse_args()
    if args.render:
        write_section(json.loads(args.render.read_text()), args.benchmarks)
        return
    import logging

    from sections import cpu

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.mosaics import make_mosaics

    from edgetl import TrainConfig, evaluate, train
    from edgetl.benchmark import bench
    from edgetl.benchmark.harness import BenchOptions
    from edgetl.exporting.pipeline import ExportOptions, export
    from edgetl.tuning.grid import Architecture, Quant
    from edgetl.tuning.latency import untrained_artifacts

    shutil.rmtree(args.out, ignore_errors=True)
    data = make_mosaics(args.shared / "datasets" / "hymenoptera", args.out / "mosaics", train=400, val=200, tile=112)
    t = time.perf_counter()
    run = train(TrainConfig(data=str(data["list"]), weights=str(args.shared / "weights" /
                            "mobilenet_v2_imagenet_no_top.weights.h5"), out=str(args.out / "run")))
    seconds = time.perf_counter() - t
    result = export(run.path, ExportOptions(formats=["fp32", "fp16", "dynamic", "onnx", "onnx_int8", "int8"]))
    keras_val = run.metrics.multi_label["val"]
    rows = [{"model": "model.keras", "map": keras_val["map"], "micro_f1": keras_val["micro_f1"],
             "exact_match": keras_val["exact_match"], "agreement": 1.0, "verdict": "reference"}]
    for c in result.checks + result.attempts:
        path = result.folder / c.file
        if not path.exists():
            path = result.folder / "rejected" / c.file
        e = evaluate(path, data["list"])
        rows.append({"model": c.file, "map": e.labels.map, "micro_f1": e.labels.micro_f1,
                     "exact_match": e.labels.exact_match, "agreement": c.agreement, "verdict": str(c.verdict)})
    single = untrained_artifacts(Architecture("mobilenet_v2", 1.0, 224), [Quant.INT8], 2)[Quant.INT8]
    multi = result.folder / "model_int8.tflite"
    timed = bench([multi, single] if multi.exists() else [single], [None], options=BenchOptions(runs=200))
    doc = {"cpu": cpu(), "train_seconds": round(seconds, 1), "images": run.metrics.images,
           "thresholds": run.metrics.multi_label["thresholds"], "rows": rows,
           "latency_ms": {("multi-label int8" if r.path == str(multi) else "single-label int8"): round(r.p50_ms, 3)
                          for r in timed}}
    (args.out / "multilabel.json").write_text(json.dumps(doc, indent=1))
    print(json.dumps(doc, indent=1))
    write_section(doc, args.benchmarks)


def render(doc: dict) -> str:
    n = doc["images"]
    lines = [f"## {TITLE}", "",
             f"Measured by `python tools/multilabel_figures.py` on {doc['cpu']} (2 cores): {n['train']} training and "
             f"{n['val']} validation 224x224 mosaics of 2x2 real photos (hymenoptera's ants and bees, scikit-image's "
             "photos of other things; each mosaic labelled with the hymenoptera classes its tiles show, ants, bees, both "
             "or none; training mosaics from hymenoptera's train photos, validation ones from its val photos), "
             f"MobileNetV2 at 224 with train's default recipe ({doc['train_seconds']:.0f} s). Thresholds chosen on "
             "validation (best F1) and folded in: " + ", ".join(f"{t:.3f}" for t in doc["thresholds"]) + ". Figures "
             "of each artifact by `edgetl eval` on the validation mosaics; agreement is the share of mosaics with the "
             "same set of labels as Keras.", "",
             "| model | mAP | micro F1 | exact match | label-set agreement | export verdict |", "|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['model']} | {r['map']:.4f} | {r['micro_f1']:.4f} | {r['exact_match']:.4f} | "
                     f"{r['agreement']:.1%} | {r['verdict']} |")
    lat = doc["latency_ms"]
    if "multi-label int8" in lat:
        lines += ["", f"Latency (p50, one thread set by the runtime, side by side in one run): multi-label int8 "
                  f"{lat['multi-label int8']:.2f} ms, a single-label MobileNetV2 int8 at the same size "
                  f"{lat['single-label int8']:.2f} ms ({lat['multi-label int8'] / lat['single-label int8']:.2f}x).", ""]
    return "\n".join(lines)


def write_section(doc: dict, path: Path | None) -> None:
    """Replace (or append) the section in ``path``."""
    from sections import replace_section

    replace_section(path, TITLE, render(doc))

if __name__ == "__main__":
    main()
