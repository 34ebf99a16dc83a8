"""The "unknown" rule's figures, measured side by side on one run, into BENCHMARKS.md's section.

    python tools/unknown_figures.py RUN [--shared ../shared] [--out BENCHMARKS.md]
    python tools/unknown_figures.py RUN --data DIR --title "ten generated classes"

RUN is a run trained with defaults (no --unknown) and exported with --all, on hymenoptera (from
--shared) or on DATA (a section of its own, named by --title). Measured:
- real photographs of other things (scikit-image's bundled photos) answered "unknown" by every
  artifact at the run's own threshold; the validation images answered, and their accuracy;
- AUROC known (validation) vs unknown (the photos) of the folded score against max-softmax (the
  same model cut before the rule), and what a softmax threshold at the same answer rate refuses;
- the rule's cost per inference: the int8 TFLite model with the rule against the same model
  exported without it, at 1 and 2 threads, alternating runs (tools/bench_suite.py calls this too).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SECTION = "## The \"unknown\" rule from the classes' own images"


def _photos() -> list[Path]:
    from helpers.other_photos import MORE, TEN, other_photos

    return other_photos(TEN + MORE)


def measure(run: Path, data: Path, seconds: float = 3.0) -> dict:
    """Every figure of the section (see the module docstring)."""
    import keras

    from edgetl.benchmark import bench
    from edgetl.benchmark.harness import BenchOptions
    from edgetl.data.audit import audit
    from edgetl.evaluation import run_on_files
    from edgetl.exporting.pipeline import ExportOptions, export
    from edgetl.exporting.formats import Gates
    from edgetl.metrics import binary_auc
    from edgetl.runtime import load
    from edgetl.runtime.keras_backend import load_keras_model

    photos = _photos()
    val = [r for r in audit(data).records if r.split == "val"]
    y = np.array([r.label for r in val])
    out: dict = {"photos": len(photos), "val_images": len(val), "artifacts": []}
    for path in [run / "model.keras"] + sorted((run / "export").glob("model*.tflite")) + sorted((run / "export").glob("model*.onnx")):
        clf = load(path)
        known, _ = run_on_files(clf, [r.path for r in val])
        other, _ = run_on_files(clf, [str(p) for p in photos])
        answered = known.max(1) >= clf.threshold
        out["artifacts"].append({
            "file": path.name, "threshold": clf.threshold,
            "photos_refused_of_10": int((other[:10].max(1) < clf.threshold).sum()),
            "photos_refused": int((other.max(1) < clf.threshold).sum()),
            "val_answered": float(answered.mean()),
            "val_accuracy_answered": float((known.argmax(1) == y)[answered].mean()),
            "val_accuracy": float((known.argmax(1) == y).mean()),
            "auroc_known_unknown": binary_auc(np.concatenate([known.max(1), other.max(1)]),
                                              np.r_[np.ones(len(known), bool), np.zeros(len(other), bool)])})
    # max-softmax of the same model: cut before the rule
    folded = load_keras_model(run / "model.keras")
    softmax = keras.Model(folded.inputs, folded.get_layer("predictions").output, name="edgetl_softmax_only")
    with tempfile.TemporaryDirectory() as tmp:
        plain_run = Path(tmp) / "run"
        shutil.copytree(run, plain_run, ignore=shutil.ignore_patterns("export"))
        softmax.save(plain_run / "model.keras")
        clf = load(plain_run / "model.keras")
        known, _ = run_on_files(clf, [r.path for r in val])
        other, _ = run_on_files(clf, [str(p) for p in photos])
        rate = next(a for a in out["artifacts"] if a["file"] == "model.keras")["val_answered"]
        t = float(np.sort(known.max(1))[int(np.floor((1 - rate) * len(known)))])
        out["softmax"] = {"auroc_known_unknown": binary_auc(np.concatenate([known.max(1), other.max(1)]),
                                                           np.r_[np.ones(len(known), bool), np.zeros(len(other), bool)]),
                          "threshold_same_answer_rate": t, "val_answered": float((known.max(1) >= t).mean()),
                          "photos_refused_of_10": int((other[:10].max(1) < t).sum()),
                          "photos_refused": int((other.max(1) < t).sum())}
        # the cost: int8 with the rule vs the same int8 without it, alternating runs
        plain = export(plain_run, ExportOptions(formats=["int8"], gates=Gates(100, 0))).folder / "model_int8.tflite"
        with_rule = run / "export" / "model_int8.tflite"
        cost = {}
        for threads in (1, 2):
            rows = {"with": [], "without": []}
            for _ in range(3):
                for key, model in (("with", with_rule), ("without", plain)):
                    r = bench([model], [threads], options=BenchOptions(runs=200, warmup=20, min_seconds=seconds))[0]
                    rows[key].append(r.p50_ms)
            a, b = float(np.median(rows["with"])), float(np.median(rows["without"]))
            cost[f"{threads}t"] = {"with_ms": a, "without_ms": b, "extra_pct": 100 * (a - b) / b}
        out["cost"] = cost
    return out


def render(r: dict, cpu: str, title: str | None = None, what: str = "a default hymenoptera run") -> str:
    """The section's markdown."""
    L = [section_name(title), "",
         f"On {cpu}: {what} (no `--unknown`), its {r['val_images']} validation images against "
         f"{r['photos']} real photographs of other things (scikit-image's bundled photos: the first 10 are a person, a "
         "cat, a cup, a rocket, a motorcycle, a man with a camera, galaxies, a retina, a clock, coins). "
         f"Measured by `python tools/unknown_figures.py RUN{' --data DIR --title ' + repr(title) if title else ''}`.", "",
         "| artifact | threshold | of the 10 photos refused | of all photos refused | val answered | accuracy on answered (on all) | AUROC known vs unknown |",
         "|---|---|---|---|---|---|---|"]
    for a in r["artifacts"]:
        L.append(f"| {a['file']} | {a['threshold']:.3f} | {a['photos_refused_of_10']}/10 | {a['photos_refused']}/{r['photos']} | "
                 f"{a['val_answered']:.1%} | {a['val_accuracy_answered']:.4f} ({a['val_accuracy']:.4f}) | "
                 f"{a['auroc_known_unknown']:.4f} |")
    s = r["softmax"]
    L += ["", f"Max-softmax of the same model (cut before the rule): AUROC known vs unknown **{s['auroc_known_unknown']:.4f}** "
          f"against the folded score's **{r['artifacts'][0]['auroc_known_unknown']:.4f}** (model.keras); a softmax threshold "
          f"answering the same share of val ({s['val_answered']:.1%}, threshold {s['threshold_same_answer_rate']:.3f}) refuses "
          f"{s['photos_refused_of_10']} of the 10 photos ({s['photos_refused']} of {r['photos']}).", ""]
    c = r["cost"]
    L += [f"The rule's cost per inference, int8 TFLite with it vs the same model exported without it (p50, median of 3 "
          f"alternating runs): 1 thread {c['1t']['with_ms']:.2f} vs {c['1t']['without_ms']:.2f} ms "
          f"(**{c['1t']['extra_pct']:+.1f} %**), 2 threads {c['2t']['with_ms']:.2f} vs {c['2t']['without_ms']:.2f} ms "
          f"(**{c['2t']['extra_pct']:+.1f} %**).", ""]
    return "\n".join(L)


def section_name(title: str | None) -> str:
    """The section's heading: the hymenoptera one, or one per --title."""
    return SECTION if not title else f"{SECTION}: {title}"


def replace_section(markdown: str, section: str) -> str:
    """``markdown`` with the section (named by its first line) swapped in (or added at the end)."""
    heading = section.split("\n", 1)[0]
    pattern = re.compile(re.escape(heading) + r"\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(markdown):
        return pattern.sub(lambda _: section.rstrip("\n") + "\n", markdown)
    return markdown.rstrip("\n") + "\n\n" + section


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--shared", default=os.environ.get("EDGETL_SHARED", str(Path(__file__).resolve().parents[2] / "shared")))
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "BENCHMARKS.md"))
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--data", type=Path, help="The run's dataset when it is not hymenoptera.")
    p.add_argument("--title", help="The section's name for --data (e.g. \"ten generated classes\").")
    a = p.parse_args()
    from edgetl.benchmark.device import device_facts

    t = time.perf_counter()
    r = measure(a.run, a.data or Path(a.shared) / "datasets" / "hymenoptera", a.seconds)
    section = render(r, device_facts().cpu, a.title, f"a default run on {a.title}" if a.title else "a default hymenoptera run")
    print(section)
    out = Path(a.out)
    out.write_text(replace_section(out.read_text() if out.exists() else "", section))
    print(f"({time.perf_counter() - t:.0f} s; {out} updated)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
