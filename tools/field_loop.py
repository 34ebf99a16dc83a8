"""The field loop on hymenoptera, timed: an old run on part of the training photos, the rest coming
home as "harvested" frames, filed by the labelling session (the human's time left out), a run
trained ``--from`` the old one and one trained afresh on the same data, each exported, and
`compare` on the old run's validation images.

    python tools/field_loop.py --shared ../shared --out /tmp/field_loop [--frames 100] [--benchmarks BENCHMARKS.md]
    python tools/field_loop.py --render field_loop.json --benchmarks BENCHMARKS.md   # the section again

Prints one JSON document with the times (seconds of compute) and the figures; with --benchmarks,
writes (or replaces) BENCHMARKS.md's "The field loop" section from it."""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/field_loop"))
    ap.add_argument("--frames", type=int, default=100, help="training photos held back as the harvest")
    ap.add_argument("--benchmarks", type=Path, help="write the section into this BENCHMARKS.md")
    ap.add_argument("--render", type=Path, help="a JSON this tool printed: only write the section")
    args = ap.parse_args()
    if args.render:
        write_section(json.loads(args.render.read_text()), args.benchmarks)
        return
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from edgetl import TrainConfig, train
    from edgetl.comparison import compare
    from edgetl.exporting.pipeline import ExportOptions, export
    from edgetl.labelling import open_session
    from edgetl.labelling.session import Action

    hym, weights = args.shared / "datasets" / "hymenoptera", args.shared / "weights" / "mobilenet_v2_imagenet_no_top.weights.h5"
    root = args.out
    shutil.rmtree(root, ignore_errors=True)
    data, frames = root / "data", root / "harvest" / "mypi"
    photos = sorted((hym / "train").glob("*/*.jpg"))
    held = set(photos[::max(1, len(photos) // args.frames)][:args.frames])
    truth = {}
    for p in photos:
        if p in held:
            dest = frames / f"{len(truth):04d}_{p.name}"
            truth[dest.name] = p.parent.name
        else:
            dest = data / "train" / p.parent.name / p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
    shutil.copytree(hym / "val", data / "val")
    times: dict[str, float] = {}

    def timed(name, fn):
        t = time.perf_counter()
        result = fn()
        times[name] = round(time.perf_counter() - t, 1)
        logging.info("timed %s: %.1f s", name, times[name])
        return result

    old = timed("old_train", lambda: train(TrainConfig(data=str(data), weights=str(weights), out=str(root / "old"))))
    timed("old_export", lambda: export(old.path, ExportOptions(formats=["int8"])))
    session = timed("label_open", lambda: open_session(frames, run=old.path))
    guessed_right = sum(1 for f in session.frames if f.guess and f.guess.label == truth[f.path.name])
    timed("label_file", lambda: [session.decide([i], Action.LABEL, truth[f.path.name]) for i, f in enumerate(session.frames)])
    new = timed("warm_train", lambda: train(TrainConfig(data=str(data), from_run=str(old.path), out=str(root / "new"))))
    timed("warm_export", lambda: export(new.path, ExportOptions(formats=["int8"])))
    fresh = timed("fresh_train", lambda: train(TrainConfig(data=str(data), weights=str(weights), out=str(root / "fresh"))))
    int8 = (lambda run: run / "export" / "model_int8.tflite" if (run / "export" / "model_int8.tflite").exists() else run)
    verdict = timed("compare", lambda: compare(int8(old.path), int8(new.path)))
    keras_verdict = compare(old.path, new.path)
    fresh_verdict = compare(old.path, fresh.path)
    doc = {"frames": len(truth), "old_guessed_right": guessed_right, "seconds": times,
           "loop_seconds_with_from": round(times["label_open"] + times["label_file"] + times["warm_train"]
                                           + times["warm_export"] + times["compare"], 1),
           "old_val_accuracy": old.metrics.val_accuracy, "new_val_accuracy": new.metrics.val_accuracy,
           "fresh_val_accuracy": fresh.metrics.val_accuracy,
           "int8": verdict.to_dict(), "keras": keras_verdict.to_dict(), "fresh_vs_old": fresh_verdict.to_dict()}
    from edgetl.data.audit import Audit
    from edgetl.runs import RunFolder

    doc["cpu"] = cpu_name()
    doc["old_train_images"] = len(Audit.load_file(RunFolder(old.path).audit).split("train"))
    print(json.dumps(doc, indent=1))
    if args.benchmarks:
        write_section(doc, args.benchmarks)


TITLE = "The field loop on hymenoptera"


def cpu_name() -> str:
    """The CPU as lscpu names it (model name, family, model)."""
    import subprocess

    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    field = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    return f"{field.get('Model name', '?')} (family {field.get('CPU family', '?')} model {field.get('Model', '?')})"


def render(doc: dict) -> str:
    """BENCHMARKS.md's section from this tool's JSON."""
    t = doc["seconds"]
    rows = [("label: open the session (hash DATA, read the frames, the old run's guesses)", t["label_open"]),
            ("label: file every frame (the person's time left out)", t["label_file"]),
            ("train --from the old run (defaults: 6 + 5 epochs)", t["warm_train"]),
            ("export int8 (verified against Keras)", t["warm_export"]),
            ("compare the two int8 files on the old run's validation images", t["compare"])]
    table = "\n".join(f"| {name} | {sec:.1f} |" for name, sec in rows)
    lines = [f"## {TITLE}", "",
             f"On {doc.get('cpu', 'AMD EPYC (family 25 model 17)')}, 2 cores, nothing else running: the old run trained at defaults on "
             f"hymenoptera's training photos but {doc['frames']}, which come home as harvested frames (the old run "
             f"guessed {doc['old_guessed_right']} of them right); the labelling session files them into DATA/train; a run "
             "trained `--from` the old one and one trained afresh on the same data; `compare` on the old run's 153 "
             "validation images. Compute only (the person at the page is not timed; `deploy` over SSH is seconds "
             "on the loopback and depends on the link). Measured by `python tools/field_loop.py`.", "",
             "| step | seconds |", "|---|---|", table,
             f"| **the loop with --from, in all** | **{doc['loop_seconds_with_from']:.1f}** |", "",
             "| run | training s | val accuracy (Keras) | verdict against the old run (Keras models) |", "|---|---|---|---|",
             f"| old ({doc.get('old_train_images', '?')} photos) | {t['old_train']:.1f} | {doc['old_val_accuracy']:.4f} | |",
             f"| --from old (+{doc['frames']} frames) | {t['warm_train']:.1f} | {doc['new_val_accuracy']:.4f} | {doc['keras']['line']} |",
             f"| fresh on the same data | {t['fresh_train']:.1f} | {doc['fresh_val_accuracy']:.4f} | {doc['fresh_vs_old']['line']} |",
             "", f"The int8 files: {doc['int8']['line']}.", ""]
    return "\n".join(lines)


def write_section(doc: dict, path: Path | None) -> None:
    """Replace (or append) the section in ``path``."""
    from sections import replace_section

    replace_section(path, TITLE, render(doc))

if __name__ == "__main__":
    main()
