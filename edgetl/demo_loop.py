"""`edgetl demo --loop`: the field loop on the demo's own drawings, after the demo.

The "field" is a video of freshly drawn objects that also shows a kind the model never learnt
(rings). `live --capture` keeps the frames the model doubts, as on a device; the demo then plays
the person at the labelling page, filing each kept frame by what it drew (a ring as the new class
"ring"), trains ``--from`` the demo's run, exports int8 and compares the two on the old run's
validation images. Every step is the library's own (live, the labelling session, train, export,
compare); only the person is simulated."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__).info

NEW_CLASS = "ring"


@dataclass
class LoopSummary:
    """What the loop did: frames seen and kept, what was filed where, the new run and the verdict."""

    field_frames: int
    kept: int
    filed: dict[str, int]
    new_run: str
    verdict: str
    """The comparison's one line."""
    comparison: dict
    minutes: float

    def to_dict(self) -> dict:
        return asdict(self)


def draw_ring(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """A ring: what the field camera sees that the demo's classes do not include."""
    from edgetl.demo import draw_object
    from edgetl.image import cv2 as _cv2

    cv2 = _cv2()
    img = draw_object("ball", rng, size).astype(np.float32)  # a background and lighting like the rest
    base = cv2.GaussianBlur(img, (0, 0), 12)  # the ball smeared away: only its surroundings' tones stay
    r = int(size * rng.uniform(0.2, 0.3))
    colour = tuple(float(c) for c in rng.integers(20, 235, 3))
    centre = (int(size * rng.uniform(0.4, 0.6)), int(size * rng.uniform(0.45, 0.6)))
    cv2.circle(base, centre, r, colour, max(3, r // 3))
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def field_video(path: Path, kinds: list[str], draw: Callable[[str, np.random.Generator], np.ndarray],
                per_kind: int, seed: int, size: int = 128) -> list[str]:
    """A video of ``per_kind`` fresh drawings of each kind, shuffled; returns each frame's kind."""
    from edgetl.image import cv2 as _cv2

    cv2 = _cv2()
    rng = np.random.default_rng(seed)
    order = [k for k in kinds for _ in range(per_kind)]
    rng.shuffle(order)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, (size, size))
    for kind in order:
        writer.write(cv2.cvtColor(draw(kind, rng), cv2.COLOR_RGB2BGR))
    writer.release()
    return order


def run_loop(run: str | Path, model: str | Path, kinds: list[str] | None = None,
             draw: Callable[[str, np.random.Generator], np.ndarray] | None = None, per_kind: int = 40,
             seed: int = 1, threads: int = 2, size: int = 128, **train_settings) -> LoopSummary:
    """live --capture over a field video -> file the kept frames (as the person would) -> train
    --from ``run`` -> export int8 -> compare. ``kinds`` and ``draw`` make the field (default: the
    demo's classes and a ring, drawn at ``size`` pixels); ``train_settings`` are
    :class:`~edgetl.training.config.TrainConfig` fields for the new run (default: 15 epochs of
    stage 1, patience 8, deterministic)."""
    from edgetl import TrainConfig, train
    from edgetl.comparison import compare
    from edgetl.demo import CLASSES, draw_object
    from edgetl.exporting.pipeline import ExportOptions, export
    from edgetl.labelling import open_session
    from edgetl.labelling.session import Action
    from edgetl.live import LiveOptions, OutboxPolicy, run as live
    from edgetl.runs import RunFolder

    t0 = time.perf_counter()
    run = Path(run)
    kinds = kinds or [*CLASSES, NEW_CLASS]
    draw = draw or (lambda kind, rng: draw_ring(rng) if kind == NEW_CLASS else draw_object(kind, rng))
    field = run.parent / f"{run.name}-field"
    field.mkdir(parents=True, exist_ok=True)
    video = field / "field.mp4"
    truth = field_video(video, kinds, draw, per_kind, seed, size)
    outbox = field / "outbox"
    log(f"[loop 1/5] live --capture over {len(truth)} field frames (with {NEW_CLASS}s, a kind it never learnt)")
    # min_interval 0: a video's frames follow each other in milliseconds, a camera's do not
    live(model, str(video), LiveOptions(), threads=threads, capture=OutboxPolicy(outbox, min_interval_s=0.0))
    session = open_session(outbox, run=run)
    kept = len(session.frames)
    log(f"[loop 2/5] label: {kept} doubted frames kept; filed by what was drawn (the page's job, done here for you)")
    filed: dict[str, int] = {}
    for i, frame in enumerate(session.frames):
        kind = truth[int(frame.path.stem.split("_")[1])]
        if kind not in session.dataset.classes:
            session.add_class(kind)  # the page's "new class" field: typed once
        outcome = session.decide([i], Action.LABEL, kind)[0]
        filed[kind] = filed.get(kind, 0) + outcome.ok
    log(f"[loop 3/5] train --from {run.name}: " + ", ".join(f"{k} {v}" for k, v in sorted(filed.items())))
    settings = {"epochs": 15, "patience": 8, "fine_tune_epochs": 0, "deterministic": True} | train_settings
    new = train(TrainConfig(from_run=str(run), project=str(run.parent), name=f"{run.name}-loop", **settings))
    log("[loop 4/5] export int8")
    export(new.path, ExportOptions(formats=["int8"], threads=threads))
    log("[loop 5/5] compare on the old run's validation images")
    old_int8, new_int8 = RunFolder(run).export.path / "model_int8.tflite", RunFolder(new.path).export.path / "model_int8.tflite"
    result = compare(old_int8 if old_int8.exists() else run, new_int8 if new_int8.exists() else new.path, threads=threads)
    return LoopSummary(len(truth), kept, filed, str(new.path), result.line, result.to_dict(),
                       (time.perf_counter() - t0) / 60)
