#!/usr/bin/env python3
"""How edgetl scales with the number of images: peak memory and time of every stage that reads a
dataset, on generated datasets of growing size, and the slope (MB of peak RSS per 1,000 images).

    python tools/scale_bench.py [--sizes 2000 8000 32000] [--weights PATH] [--workdir DIR]

Each dataset is 4 classes of 320x240 JPEGs drawn by the tool (never committed). Each command runs
in its own process under /usr/bin/time -v, whose "Maximum resident set size" is the figure quoted;
the disk cache starts empty for each size, so the first training run decodes cold. Writes
SCALE.md beside BENCHMARKS.md and prints the same table."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("circle", "square", "triangle", "cross")


def _draw(task: tuple[str, int, int]) -> None:
    """One 320x240 JPEG: a shape on a noisy background, different for every (class, index)."""
    import cv2

    path, cls, i = task
    rng = np.random.default_rng([cls, i])
    img = np.clip(rng.integers(40, 215, 3) + rng.normal(0, 14, (240, 320, 3)), 0, 255).astype(np.uint8)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    cx, cy, r = int(rng.integers(100, 220)), int(rng.integers(80, 160)), int(rng.integers(30, 70))
    if cls == 0:
        cv2.circle(img, (cx, cy), r, colour, -1)
    elif cls == 1:
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    elif cls == 2:
        cv2.fillPoly(img, [np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)], colour)
    else:
        cv2.line(img, (cx - r, cy - r), (cx + r, cy + r), colour, 12)
        cv2.line(img, (cx - r, cy + r), (cx + r, cy - r), colour, 12)
    cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def make_dataset(root: Path, n: int) -> Path:
    """DATA/<class>/*.jpg with ``n`` images in all (reused when complete)."""
    tasks = []
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        tasks += [(str(root / name / f"{name}_{i:05d}.jpg"), c, i) for i in range(n // len(CLASSES))]
    todo = [t for t in tasks if not os.path.exists(t[0])]
    with ProcessPoolExecutor() as pool:
        list(pool.map(_draw, todo, chunksize=64))
    return root


def timed(args: list[str], env: dict) -> dict:
    """Run `python -m edgetl ARGS` under /usr/bin/time -v: exit code, peak RSS (MB), wall seconds, stderr."""
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "edgetl", *args], capture_output=True,
                          text=True, env=env)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    seconds = (int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))) if wall else None
    if proc.returncode not in (0, 1):  # data check exits 1 when it has warnings to show
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"edgetl {' '.join(args)} failed with exit code {proc.returncode}")
    return {"rss_mb": int(rss.group(1)) / 1024 if rss else None, "seconds": seconds, "log": proc.stderr}


def rate(pattern: str, log: str) -> float | None:
    """An images/s figure from a log line."""
    m = re.search(pattern, log)
    return float(m.group(1)) if m else None


def decode_comparison(paths: list[str]) -> dict:
    """Images/s of the first decode at 224 with one thread, a thread per core (x2) and a process per core."""
    from edgetl.data.cache import decode_workers
    from edgetl.image import load

    def run(pool_cls, workers: int) -> float:
        t = time.perf_counter()
        with pool_cls(workers) as pool:
            list(pool.map(load, paths, [224] * len(paths), [224] * len(paths), chunksize=16)
                 if pool_cls is ProcessPoolExecutor else pool.map(load, paths, [224] * len(paths), [224] * len(paths)))
        return len(paths) / (time.perf_counter() - t)

    cores = os.cpu_count() or 2
    return {"one_thread": run(ThreadPoolExecutor, 1), f"threads_{decode_workers()}": run(ThreadPoolExecutor, decode_workers()),
            f"processes_{cores}": run(ProcessPoolExecutor, cores)}


def epoch_rates(store, labels: np.ndarray, num_classes: int, epochs: int = 1) -> list[float]:
    """Images/s of shuffled epochs of the training input pipeline alone, read from a store on disk
    (batches of 32, cast to float32, as training sees them), after a tf.data warm-up."""
    from edgetl.training.inputs import Split, dataset

    ds = dataset(Split(store, labels), num_classes, 32, 0, shuffle=True)
    for _ in ds.take(5):
        pass
    rates = []
    for _ in range(epochs):
        t = time.perf_counter()
        n = sum(int(x.shape[0]) for x, _, _ in ds)
        rates.append(n / (time.perf_counter() - t))
    return rates


def cached_epoch_rate(run: Path) -> float:
    """Images/s of one epoch of a run's training images read from the disk cache."""
    from edgetl.data.audit import Audit
    from edgetl.data.cache import open_images
    from edgetl.runtime.spec import PixelSpec

    records = Audit.load_file(run / "audit.json").split("train")
    store = open_images([r.path for r in records], PixelSpec(224, 224), hashes=[r.sha256 for r in records], quiet=True)
    return epoch_rates(store, np.array([r.label for r in records]), len(CLASSES))[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    shared = Path(os.environ.get("EDGETL_SHARED", ROOT.parent / "shared"))
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    p.add_argument("--weights", default=str(shared / "weights" / "mobilenet_v2_imagenet_no_top.weights.h5"))
    p.add_argument("--workdir", default=None)
    p.add_argument("--out", default=str(ROOT / "SCALE.md"))
    p.add_argument("--remeasure-epochs", action="store_true",
                   help="Only measure the cached-epoch rate again on an earlier --workdir (on a quiet machine) and "
                        "rewrite the report.")
    a = p.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="edgetl-scale-"))
    if a.remeasure_epochs:
        results = json.loads((work / "scale.json").read_text())
        for n, row in results["sizes"].items():
            os.environ["EDGETL_CACHE"] = str(work / f"cache{n}")
            row["images_per_s"]["cached epoch (input pipeline alone)"] = cached_epoch_rate(work / f"runs{n}" / "plain")
        (work / "scale.json").write_text(json.dumps(results, indent=1))
        Path(a.out).write_text(render(results))
        print(render(results))
        return 0
    results: dict = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "sizes": {}}
    for n in a.sizes:
        print(f"\n== {n} images", file=sys.stderr, flush=True)
        data = make_dataset(work / f"data{n}", n)
        env = dict(os.environ, EDGETL_CACHE=str(work / f"cache{n}"), TF_CPP_MIN_LOG_LEVEL="2")
        runs = work / f"runs{n}"
        shutil.rmtree(runs, ignore_errors=True)
        shutil.rmtree(env["EDGETL_CACHE"], ignore_errors=True)  # the first training run decodes cold
        row: dict = {}
        row["data check"] = timed(["data", "check", str(data)], env)
        row["train (no augmentation)"] = timed(["train", str(data), "--weights", a.weights, "--no-augment", "--epochs", "1",
                                               "--fine-tune-epochs", "0", "--out", str(runs / "plain")], env)
        row["train (augmented, 1 epoch)"] = timed(["train", str(data), "--weights", a.weights, "--epochs", "1",
                                                  "--fine-tune-epochs", "0", "--out", str(runs / "augmented")], env)
        row["export --int8"] = timed(["export", str(runs / "plain"), "--int8"], env)
        int8 = runs / "plain" / "export" / "model_int8.tflite"
        if not int8.exists():  # missed its gates (small sets): still the same work to evaluate
            int8 = int8.parent / "rejected" / int8.name
        row["eval"] = timed(["eval", str(int8), str(data)], env)
        plain = row["train (no augmentation)"]["log"]
        metrics = json.loads((runs / "augmented" / "metrics.json").read_text())
        os.environ["EDGETL_CACHE"] = env["EDGETL_CACHE"]
        rates = {
            "first decode": rate(r"images ready at \S+ in \S+ s \((\d+) images/s", plain),
            "cached epoch (input pipeline alone)": cached_epoch_rate(runs / "plain"),
            "feature extraction": rate(r"features of \d+ images in \S+ s \((\d+) images/s", plain),
            "augmented epoch through the frozen base": metrics["images_per_s"]["stage1"],
        }
        if n == a.sizes[0]:
            results["decode_pools"] = decode_comparison([str(p) for p in sorted(data.rglob("*.jpg"))[:1000]])
        results["sizes"][n] = {"commands": {k: {"rss_mb": v["rss_mb"], "seconds": v["seconds"]} for k, v in row.items()},
                               "images_per_s": rates,
                               "val_accuracy": json.loads((runs / "plain" / "metrics.json").read_text())["val_accuracy"]}
        print(json.dumps(results["sizes"][n], indent=1), file=sys.stderr, flush=True)
    Path(a.out).write_text(render(results))
    (work / "scale.json").write_text(json.dumps(results, indent=1))
    print(render(results))
    return 0


def render(results: dict) -> str:
    """SCALE.md: peak RSS and time per command and size, the slope, and the rates."""
    sizes = sorted(results["sizes"], key=int)
    first, last = sizes[0], sizes[-1]
    commands = list(results["sizes"][first]["commands"])
    lines = ["# How edgetl scales with the dataset", "",
             f"Measured by `tools/scale_bench.py` on {results['date']} ({results['cores']} cores, no GPU): generated "
             "4-class datasets of 320x240 JPEGs at 224x224, MobileNetV2 with ImageNet weights. Peak RSS is "
             "`/usr/bin/time -v`'s maximum resident set size of the whole command.", "",
             "| command | " + " | ".join(f"{int(n):,} images: peak MB / s" for n in sizes)
             + f" | slope MB per 1,000 images ({int(first):,} → {int(last):,}) |",
             "|---|" + "---|" * (len(sizes) + 1)]
    for c in commands:
        cells = [f"{results['sizes'][n]['commands'][c]['rss_mb']:.0f} / {results['sizes'][n]['commands'][c]['seconds']:.0f}"
                 for n in sizes]
        lo, hi = results["sizes"][first]["commands"][c]["rss_mb"], results["sizes"][last]["commands"][c]["rss_mb"]
        slope = (hi - lo) / max((int(last) - int(first)) / 1000, 1e-9)
        lines.append(f"| `{c}` | " + " | ".join(cells) + f" | {slope:+.1f} |")
    lines += ["", "| images/s | " + " | ".join(f"{int(n):,}" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for k in results["sizes"][first]["images_per_s"]:
        vals = [results["sizes"][n]["images_per_s"].get(k) for n in sizes]
        lines.append(f"| {k} | " + " | ".join(f"{v:,.0f}" if v else "–" for v in vals) + " |")
    lines.append("| val accuracy (no augmentation, 1 epoch) | "
                 + " | ".join(f"{results['sizes'][n]['val_accuracy']:.3f}" for n in sizes) + " |")
    if "decode_pools" in results:
        lines += ["", "First decode of 1,000 of the JPEGs at 224, images/s: "
                  + ", ".join(f"{k.replace('_', ' ')} {v:,.0f}" for k, v in results["decode_pools"].items())
                  + " (edgetl uses the threads: OpenCV releases the GIL while decoding, and threads write straight "
                    "into the cache file)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
