"""The int8 figures of BENCHMARKS.md: does `export --int8` ship a faithful int8 TFLite model?

For each training seed (default 0 1 2) this trains the hymenoptera quality-bar model with default
settings (the shared ImageNet MobileNetV2 weights), exports every format plus every rung of the
selective-float ladder, and records for each artifact its accuracy, agreement and max probability
difference against Keras, the gate's verdict and its latency at one thread, relative to int8. With
``--large`` it also builds a 2-class held-out set of more than 1,000 photos from the real validation
photos (each photo plus six seeded crops, flips and colour shifts of it; training photos untouched)
and exports a model trained on it, so the gate judges on seven times the images.

    python tools/int8_figures.py --out /tmp/int8 [--seeds 0 1 2] [--large] [--write BENCHMARKS.md]

Prints a Markdown table and writes OUT/int8_figures.json; with ``--write``, puts the table in that
file's "int8 across seeds" section (bench_suite.py keeps the section when it rewrites the file).
Needs the dev install and ../shared.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("EDGETL_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
RUNGS = ["int8_float1", "int8_float3", "int8_mixed"]
SECTION = "## int8 across seeds and a larger held-out set"
VARIANTS = 6


def edgetl(*args: object) -> subprocess.CompletedProcess:
    """Run the CLI, fail loudly."""
    proc = subprocess.run([sys.executable, "-m", "edgetl", *map(str, args)], capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 1: an export with a refused artifact still reports
        raise SystemExit(f"edgetl {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return proc


def large_held_out(out: Path) -> Path:
    """hymenoptera's train/ as it is, and val/ grown to seven views of each photo (1,071 images)."""
    import cv2

    data = out / "hymenoptera_large"
    if data.exists():
        return data
    shutil.copytree(SHARED / "datasets" / "hymenoptera" / "train", data / "train")
    rng = np.random.default_rng(0)
    for photo in sorted((SHARED / "datasets" / "hymenoptera" / "val").glob("*/*")):
        target = data / "val" / photo.parent.name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, target / photo.name)
        image = cv2.imread(str(photo))
        if image is None:
            continue
        h, w = image.shape[:2]
        for k in range(VARIANTS):
            side = rng.uniform(0.6, 0.9)
            ch, cw = int(h * side), int(w * side)
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            view = image[y:y + ch, x:x + cw]
            if rng.random() < 0.5:
                view = view[:, ::-1]
            view = np.clip(view.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20), 0, 255)
            cv2.imwrite(str(target / f"{photo.stem}_v{k}.jpg"), view.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return data


def one(data: Path, run: Path, seed: int) -> dict:
    """Train, export everything and every rung, bench at one thread; the figures of one model."""
    weights = SHARED / "weights" / "mobilenet_v2_imagenet_no_top.weights.h5"
    if not (run / "model.keras").is_file():
        edgetl("train", data, "--weights", weights, "--seed", seed, "--out", run)
    done = run / "export" / "report.json"
    made = {c["file"] for c in json.loads(done.read_text())["checks"]} if done.is_file() else set()
    if {f"model_{r}.tflite" for r in RUNGS} <= made:
        report = json.loads(done.read_text())  # exported by an earlier pass of this tool
    else:
        report = json.loads(edgetl("export", run, "--all", *[a for r in RUNGS for a in ("--format", r)], "--json").stdout)
    files = sorted(p for p in (run / "export").rglob("*.tflite"))
    proc = edgetl("bench", *files, "--threads", "1", "--runs", "100", "--json")
    if not proc.stdout.strip():
        raise SystemExit(f"bench printed nothing:\n{proc.stderr[-3000:]}")
    bench = json.loads(proc.stdout)
    ms = {Path(b["model"]).name: b["p50_ms"] for b in bench}
    rows = []
    for c in report["checks"] + report["int8_fallback"]:  # (the file: its name, in report.json and --json alike)
        rows.append({k: c[k] for k in ("file", "accuracy", "agreement", "max_prob_diff", "verdict", "lost", "gained")}
                    | {"drop_points": c["drop_points"], "p50_ms_1t": ms.get(c["file"])})
    return {"seed": seed, "data": str(data), "keras_accuracy": report["keras_accuracy"], "artifacts": rows,
            "int8_ships": any(c["file"] == "model_int8.tflite" and c["kept"] for c in report["checks"])}


def table(results: list[dict]) -> str:
    """Markdown: one row per model and artifact of interest."""
    lines = ["| model | Keras | artifact | accuracy | Δ pts | agreement | max Δp | verdict | ms (1 thread) | × int8 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows = {a["file"]: a for a in r["artifacts"]}
        base = rows.get("model_int8.tflite", {}).get("p50_ms_1t")
        for name in ("model_int8.tflite", "model_int8.onnx", "model_int8_float1.tflite", "model_int8_float3.tflite",
                     "model_int8_mixed.tflite", "model_dynamic.tflite", "model_fp16.tflite", "model_fp32.tflite"):
            a = rows.get(name)
            if not a:
                continue
            ms = a["p50_ms_1t"]
            lines.append(f"| {r['label']} | {r['keras_accuracy']:.4f} | {name} | {a['accuracy']:.4f} | "
                         f"{-a['drop_points']:+.2f} | {a['agreement']:.1%} | {a['max_prob_diff']:.3f} | {a['verdict']} | "
                         f"{'' if ms is None else f'{ms:.2f}'} | "
                         f"{'' if not (ms and base) else f'{ms / base:.2f}'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--large", action="store_true", help="also the 1,071-image held-out set")
    parser.add_argument("--write", type=Path, help="put the table in this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        results.append(one(SHARED / "datasets" / "hymenoptera", args.out / f"seed{seed}", seed) | {"label": f"seed {seed}"})
        print(f"seed {seed}: int8 ships: {results[-1]['int8_ships']}", flush=True)
    if args.large:
        results.append(one(large_held_out(args.out), args.out / "large", 0) | {"label": "1,071 held out"})
    (args.out / "int8_figures.json").write_text(json.dumps(results, indent=1))
    print(table(results))
    if args.write:
        write_section(args.write, results)
    return 0


def write_section(path: Path, results: list[dict]) -> None:
    """Replace (or add) this tool's section of ``path``."""
    import platform
    import time

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    body = [SECTION, "",
            f"Measured {time.strftime('%Y-%m-%d')} by `python tools/int8_figures.py --large` on {cpu}, "
            f"{os.cpu_count()} cores: hymenoptera trained with default settings and the shared ImageNet weights "
            "for seeds 0, 1 and 2, each exported with every format and every rung of the selective-float "
            "ladder; then the seed-0 recipe judged on 1,071 held-out images (each validation photo and six "
            "seeded crops, flips and colour shifts of it). Latency: `edgetl bench --threads 1`, p50, each model "
            "in a process of its own, side by side in one run (ONNX figures are in the table above).", "",
            table(results), ""]
    text = path.read_text() if path.exists() else ""
    if SECTION in text:
        before, rest = text.split(SECTION, 1)
        after = rest.split("\n## ", 1)[1] if "\n## " in rest else ""
        text = before + "\n".join(body) + ("\n## " + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body)
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
