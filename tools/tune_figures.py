"""`edgetl tune` on hymenoptera, measured: the default run (MobileNetV2 at 224, int8) against the
pick of a search under a budget, on this machine and on the emulated Pi (qemu-aarch64 Cortex-A72
over the loopback sshd, built by tools/pi-emulator), and the search's wall time against one
default training.

    python tools/tune_figures.py --shared ../shared --out /tmp/tune_figures [--benchmarks BENCHMARKS.md]
    python tools/tune_figures.py --render tune_figures.json --benchmarks BENCHMARKS.md

Both searches use the shared MobileNetV2 weights (width 1.0: the other widths and backbones have no
weights here and are listed as skipped), every size of the default grid, int8 and fp16, two
finalists with train's default recipe. Latencies under emulation are the emulator's, not a Pi's:
the figure shows the search works against a device over SSH, not how fast a Pi is."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

TITLE = "Which model fits the device (edgetl tune)"
ROOT = Path(__file__).resolve().parents[1]


def _default(shared: Path, out: Path) -> dict:
    from edgetl import TrainConfig, train
    from edgetl.exporting.pipeline import ExportOptions, export

    t = time.perf_counter()
    run = train(TrainConfig(data=str(shared / "datasets" / "hymenoptera"), weights=str(shared / "weights" /
                            "mobilenet_v2_imagenet_no_top.weights.h5"), out=str(out / "default")))
    seconds = time.perf_counter() - t
    result = export(run.path, ExportOptions(formats=["int8"]))
    check = next(c for c in result.checks if c.file.endswith("model_int8.tflite"))
    return {"train_seconds": round(seconds, 1), "accuracy": round(check.accuracy, 4),
            "artifact": str(result.folder / "model_int8.tflite")}


def _tune(shared: Path, out: Path, budget: float, target) -> dict:
    from edgetl import TrainConfig
    from edgetl.tuning import TuneOptions, tune

    t = time.perf_counter()
    result = tune(TrainConfig(data=str(shared / "datasets" / "hymenoptera"),
                              weights=str(shared / "weights" / "mobilenet_v2_imagenet_no_top.weights.h5")),
                  TuneOptions(budget_ms=budget, target=target, out=str(out), finalists=2))
    seconds = time.perf_counter() - t
    r = result.record
    return {"seconds": round(seconds, 1), "phases": r.seconds, "recommendation": r.recommendation,
            "budget_ms": budget, "where": r.where, "chart": str(out / "tune.png"),
            "rows": [{k: v for k, v in row.__dict__.items() if k in ("backbone", "alpha", "size", "quant", "status",
                                                                     "latency_ms", "estimate", "accuracy", "device_ms", "note")}
                     | {"artifact": Path(row.artifact).name if row.artifact else ""}
                     for row in r.rows if row.status != "no weights"],
            "skipped": sum(row.status == "no weights" for row in r.rows)}


def _default_latency(artifact: str, target) -> float:
    from edgetl.benchmark import bench
    from edgetl.benchmark.harness import BenchOptions

    r = bench([artifact], [target.threads], target.device, [target.host] if target.host else None,
              BenchOptions(runs=30, warmup=5, min_seconds=2.0), remote_python=target.remote_python,
              ssh_config=target.ssh_config)[0]
    return round(r.p50_ms, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/tune_figures"))
    ap.add_argument("--budget-local", type=float, default=2.0, help="ms on this machine")
    ap.add_argument("--budget-pi", type=float, default=None, help="ms on the emulated Pi (default: half the "
                    "default model's latency there)")
    ap.add_argument("--benchmarks", type=Path)
    ap.add_argument("--render", type=Path)
    args = ap.parse_args()
    if args.render:
        write_section(json.loads(args.render.read_text()), args.benchmarks)
        return
    import logging

    from sections import cpu
    import subprocess

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import sshd

    from edgetl.tuning import Target

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    doc: dict = {"cpu": cpu()}
    doc["default"] = _default(args.shared, args.out)
    local = Target("local")
    doc["default"]["local_ms"] = _default_latency(doc["default"]["artifact"], local)
    doc["local"] = _tune(args.shared, args.out / "tune_local", args.budget_local, local)

    built = subprocess.run([str(ROOT / "tools" / "pi-emulator"), "--build"], capture_output=True, text=True)
    if built.returncode == 0 and sshd.SSHD:
        server = sshd.start(args.out / "sshd")
        try:
            wrapper = args.out / "pi-python"
            wrapper.write_text(f"#!/bin/sh\nexec {ROOT / 'tools' / 'pi-emulator'} --cpu cortex-a72 python \"$@\"\n")
            wrapper.chmod(0o755)
            pi = Target("rpi", "mypi", remote_python=str(wrapper), ssh_config=str(server.config))
            doc["default"]["pi_ms"] = _default_latency(doc["default"]["artifact"], pi)
            budget = args.budget_pi or round(doc["default"]["pi_ms"] / 2, 1)
            doc["pi"] = _tune(args.shared, args.out / "tune_pi", budget, pi)
        finally:
            server.stop()
    (args.out / "tune_figures.json").write_text(json.dumps(doc, indent=1))
    print(json.dumps(doc, indent=1))
    write_section(doc, args.benchmarks)


def render(doc: dict) -> str:
    d = doc["default"]
    lines = [f"## {TITLE}", "",
             f"Measured by `python tools/tune_figures.py` on {doc['cpu']} (2 cores), hymenoptera (245 training, 153 "
             "validation photos), the shared MobileNetV2 weights (width 1.0; the other widths and backbones have no "
             "weights offline and are listed as skipped), sizes 96-224, int8 and fp16, two finalists trained with "
             "train's default recipe. Accuracy: the shipped artifact's, on the validation images export verifies on "
             "(those the \"unknown\" rule does not refuse). Latency: p50 of the artifact on the device.", "",
             "| | model | accuracy | latency | search time |", "|---|---|---|---|---|",
             f"| default run | mobilenet_v2 at 224, int8 | {d['accuracy']:.3f} | {d.get('local_ms', 0):.2f} ms here"
             + (f", {d['pi_ms']:.1f} ms on the emulated Pi" if "pi_ms" in d else "") +
             f" | one training: {d['train_seconds']:.0f} s |"]
    for key, name in (("local", "this machine"), ("pi", "the emulated Pi")):
        if key not in doc:
            continue
        t = doc[key]
        chosen = next((r for r in t["rows"] if r["status"] == "chosen"), None)
        if chosen:
            lines.append(f"| tune on {name}, budget {t['budget_ms']:g} ms | {chosen['backbone']} at {chosen['size']}, "
                         f"{chosen['quant']} | {chosen['accuracy']:.3f} | {chosen['device_ms']:.2f} ms | "
                         f"{t['seconds']:.0f} s = {t['seconds'] / d['train_seconds']:.1f} default trainings |")
    for key, name in (("local", "this machine"), ("pi", "the emulated Pi")):
        if key not in doc:
            continue
        t = doc[key]
        over = sum(r["status"] == "over budget" for r in t["rows"])
        lines += ["", f"On {name} ({len(t['rows'])} candidates, {over} over budget and never trained, "
                  f"{t['skipped']} without weights here): `{t['recommendation']}`. Time by phase: "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in t["phases"].items()) + ". The finalists, untrained "
                  "candidate against the trained artifact export shipped, on the device: "
                  + "; ".join(f"{r['size']} {r['quant']} {r['latency_ms']:.2f} -> {r['device_ms']:.2f} ms "
                              f"({r.get('artifact', '')}, {r['status']})" for r in t["rows"]
                              if r.get("device_ms") is not None) + "."]
    lines += ["", "The emulated Pi is qemu-aarch64 (Cortex-A72) reached over the loopback sshd: its latencies are the "
              "emulator's, not a Pi's; they show the search working against a device over SSH. Where int8 missed "
              "export's gate, `model_int8_float3.tflite` (three layers in float) shipped, and it runs slower than the "
              "all-int8 candidate that was benched untrained, most on the emulated ARM CPU: tune benches every "
              "trained artifact again on the device, and a finalist over budget then is replaced by the next by the "
              "estimate."]
    lines += ["", "![tune chart](docs/tune_chart.png)", ""]
    return "\n".join(lines)


def write_section(doc: dict, path: Path | None) -> None:
    """Replace (or append) the section in ``path``; copy the chart of this machine's search beside it."""
    from sections import replace_section

    replace_section(path, TITLE, render(doc))
    if path is None:
        return
    chart = Path(doc["local"]["chart"])
    if chart.is_file():
        (path.parent / "docs").mkdir(exist_ok=True)
        shutil.copy(chart, path.parent / "docs" / "tune_chart.png")

if __name__ == "__main__":
    main()
