"""The field loop on hymenoptera, timed: an old run on part of the training photos, the rest coming
home as "harvested" frames, filed by the labelling session (the human's time left out), a run
trained ``--from`` the old one and one trained afresh on the same data, each exported, and
`compare` on the old run's validation images.

    python tools/field_loop.py --shared ../shared --out /tmp/field_loop [--frames 100]

Prints one JSON document with the times (seconds of compute) and the figures; BENCHMARKS.md's
"field loop" section is written from it."""
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
    args = ap.parse_args()
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
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
