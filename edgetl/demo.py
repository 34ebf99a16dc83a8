"""`edgetl demo`: the whole path on a dataset it draws itself, in minutes on a CPU."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgetl.atomic import write_atomic

log = logging.getLogger(__name__).info

CLASSES = ("ball", "box", "cone")


def _luminance(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _background(rng: np.random.Generator, size: int, lo: int, hi: int) -> np.ndarray:
    """A lit background: a colour gradient in [lo, hi), a few faint strokes, at a random angle."""
    from edgetl.image import cv2 as _cv2

    cv2 = _cv2()
    a, b = rng.integers(lo, hi, 3), rng.integers(lo, hi, 3)
    t = np.linspace(0, 1, size)[:, None, None]
    img = (a * (1 - t) + b * t).repeat(size, axis=1).astype(np.float32)
    img = np.ascontiguousarray(np.rot90(img, rng.integers(0, 4)))
    for _ in range(rng.integers(0, 4)):
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(img, tuple(map(int, p1)), tuple(map(int, p2)), tuple(float(c) for c in rng.integers(lo, hi, 3)), 1)
    return img


def draw_object(kind: str, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """One photo-like RGB image: a shaded ball, a box in perspective or a striped cone, whole and
    large in the frame, at a random place, angle and colour, under random lighting, with blur
    and noise.

    The task is built so that a small network trained from scratch separates it fully on any CPU
    (issue 45): the background is always on the other side of mid-grey from the object, so no
    object fades into it, and every object is inside the frame. The first version drew objects of
    any colour on any background, some cut by the edge: trained from scratch it reached 0.97 on
    an AMD EPYC and 0.93 on an Intel Xeon, the same seed, stuck on images no person would miss."""
    from edgetl.image import cv2 as _cv2

    cv2 = _cv2()
    colour = rng.integers(20, 235, 3).astype(float)
    lo, hi = (20, 100) if _luminance(colour) > 128 else (150, 236)
    img = _background(rng, size, lo, hi)
    r = int(size * rng.uniform(0.2, 0.3))
    cx, cy = int(size * rng.uniform(0.4, 0.6)), int(size * rng.uniform(0.45, 0.6))
    if kind == "ball":
        for k in range(r, 0, -1):  # radial shading from an off-centre highlight
            shade = 0.6 + 0.6 * (1 - k / r)
            cv2.circle(img, (int(cx - 0.25 * (r - k)), int(cy - 0.25 * (r - k))), k,
                       tuple(float(c) for c in np.clip(colour * shade, 0, 255)), -1)
    elif kind == "box":
        angle = rng.uniform(0, 90)
        front = cv2.boxPoints(((float(cx), float(cy)), (1.8 * r, 1.5 * r), angle)).astype(np.int32)
        top = front + np.array([int(0.3 * r), -int(0.4 * r)])
        cv2.fillPoly(img, [top], tuple(float(c) for c in np.clip(colour * 1.2, 0, 255)))
        cv2.fillPoly(img, [front], tuple(float(c) for c in colour))
        cv2.polylines(img, [front], True, (20.0, 20.0, 20.0), 1)
    else:
        tip = (cx + int(rng.integers(-r // 4, r // 4 + 1)), cy - int(1.2 * r))
        base = np.array([[cx - r, cy + r], [cx + r, cy + r], list(tip)], np.int32)
        cv2.fillPoly(img, [base], tuple(float(c) for c in colour))
        for k in (0.35, 0.65):  # white stripes
            y = int(tip[1] + k * (cy + r - tip[1]))
            half = int(k * r)
            cv2.line(img, (cx - half, y), (cx + half, y), (245.0, 245.0, 245.0), max(2, r // 6))
    gain, offset = rng.uniform(0.75, 1.2), rng.uniform(-20, 20)
    img = img * gain + offset
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.0))
    img = img + rng.normal(0, rng.uniform(2, 6), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


DRAWING = 2
"""The version of :func:`draw_object`: a dataset drawn by another version is drawn again."""


def make_dataset(root: str | Path, per_class: int = 80, size: int = 128, seed: int = 0) -> Path:
    """Write DATA/<class>/*.jpg for the three demo classes; reused when the same drawing, count,
    size and seed made it (recorded in DATA/.edgetl-demo.json), else drawn again."""
    from edgetl.image import cv2 as _cv2

    cv2 = _cv2()
    root = Path(root)
    stamp = root / ".edgetl-demo.json"
    wanted = {"drawing": DRAWING, "per_class": per_class, "size": size, "seed": seed}
    try:
        if json.loads(stamp.read_text()) == wanted:
            return root
    except (OSError, ValueError):
        pass
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{kind}_*.jpg"):  # another version's or count's drawings
            old.unlink()
        for i in range(per_class):
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(draw_object(kind, rng, size), cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, 92])
            write_atomic(folder / f"{kind}_{i:03d}.jpg", jpeg.tobytes(), leftover_ok=True)
    write_atomic(stamp, json.dumps(wanted), leftover_ok=True)
    return root


@dataclass
class DemoOptions:
    """How big the demo is."""

    project: str = "runs"
    per_class: int | None = None
    """Images drawn per class; default 80 with pretrained weights, 300 from scratch."""
    weights: str | None = None
    """A backbone weights file; default: ImageNet from Keras's cache when there, else from scratch."""
    epochs: int | None = None
    threads: int = 2
    bench_seconds: float = 2.0


@dataclass
class DemoArtifact:
    """One exported file: its verdict against Keras and its measured speed (None when not benched)."""

    file: str
    kept: bool
    """Shipped by its gate (passed, or not proven either way: ``verdict`` says which)."""
    accuracy: float
    size_mb: float
    p50_ms: float | None
    fps: float | None
    verdict: str = ""
    """"passed", "not proven" or "refused" (see :mod:`edgetl.exporting.gate`)."""
    agreement: float = 0.0
    """Top-1 agreement with Keras on the held-out images."""
    decision_agreement: float | None = None
    """Agreement of the answers with "unknown" (a class, or unknown) with Keras's."""


@dataclass
class DemoSummary:
    """What the demo did and measured; ``to_dict`` is ``demo --json`` and ``demo_summary.json``."""

    run: str
    dataset: str
    training: str
    """How it trained, in words (pretrained weights or from scratch, and why)."""
    val_accuracy: float
    keras_accuracy: float
    artifacts: list[DemoArtifact]
    live: dict
    """The live run's summary over the held-out video (its model and video named in it)."""
    minutes: float

    def to_dict(self) -> dict:
        return asdict(self)


def run_demo(opts: DemoOptions) -> DemoSummary:
    """data check -> train -> export --all -> verify -> bench -> live; returns the summary."""
    from edgetl import bench
    from edgetl.benchmark.harness import BenchOptions
    from edgetl.data.audit import audit
    from edgetl.exporting.formats import ALL, FORMATS, Gates
    from edgetl.exporting.pipeline import ExportOptions, export
    from edgetl.live import LiveOptions, run
    from edgetl.models.backbones import Pretrained, from_scratch
    from edgetl.runs import RunFolder
    from edgetl import TrainConfig, train

    t0 = time.perf_counter()
    if opts.weights:
        cfg = TrainConfig(weights=opts.weights, size=128, epochs=opts.epochs or 8, fine_tune_epochs=2)
        how = f"MobileNetV2 at 128 px from {opts.weights}"
    elif _imagenet_available():
        cfg = TrainConfig(weights=Pretrained.IMAGENET, size=128, epochs=opts.epochs or 8, fine_tune_epochs=2)
        how = "MobileNetV2 at 128 px with ImageNet weights (Keras's cache)"
    else:
        # Width 0.5, not 0.35: measured on an AMD EPYC with the same data, 0.35 reached 0.978 to 1.000
        # across seeds (the first run 0.978), 0.5 reached 0.994 and 1.000 (issue 45: a demo that
        # passes on any CPU needs a result that lands well clear of 0.97, not on it).
        cfg = TrainConfig(weights=Pretrained.NONE, alpha=0.5, size=96, epochs=opts.epochs or 40, fine_tune_epochs=0,
                          lr=3e-3, patience=8)
        how = ("MobileNetV2 (alpha 0.5, 96 px) from scratch on 300 images per class, because ImageNet weights "
               "are neither in Keras's cache nor downloadable here; pass --weights PATH for transfer learning")
    # The demo's figures are stated in the README: every run of it must give them (seeded, and
    # TensorFlow's op determinism, so neither thread timing nor load changes the model).
    cfg.deterministic = True
    per_class = opts.per_class or (300 if from_scratch(cfg.weights) else 80)
    data = make_dataset(Path(opts.project) / "demo-data", per_class)
    report = audit(data)
    log(f"[1/6] data check: {len(report.records)} images in {len(report.classes)} classes at {data} "
        f"({'clean' if report.clean else f'{len(report.problems)} problems'})")
    cfg.data, cfg.project, cfg.name = str(data), opts.project, "demo"
    log(f"[2/6] train: {how}")
    result = train(cfg)
    log("[3/6] export --all and verify against Keras")
    exported = export(result.path, ExportOptions(formats=list(ALL), gates=Gates(), threads=opts.threads))
    artifacts = [exported.folder / c.file for c in exported.checks if (exported.folder / c.file).exists()]
    log(f"[4/6] bench at {opts.threads} threads")
    results = bench(artifacts, [opts.threads], options=BenchOptions(runs=50, warmup=5, min_seconds=opts.bench_seconds))
    log("[5/6] live over a video of held-out images")
    video = _write_video(report, RunFolder(result.path).demo_video)
    # the int8 model when it passed its gates, else the fallback the export names, else fp32
    shippable = [exported.folder / a.file for a in exported.attempts if a.kept]
    int8 = exported.folder / FORMATS["int8"].file
    model = int8 if int8.exists() else (shippable or artifacts)[0]
    live_summary = run(model, str(video), LiveOptions(), threads=opts.threads).to_dict()
    speed = {r.model: r for r in results}
    rows = [DemoArtifact(str(exported.folder / c.file), c.kept, c.accuracy, c.size_bytes / 1e6,
                         speed[c.file].p50_ms if c.file in speed else None, speed[c.file].fps if c.file in speed else None,
                         c.verdict, c.agreement, c.decision_agreement)
            for c in exported.checks]
    summary = DemoSummary(str(result.path), str(data), how, result.metrics.val_accuracy, exported.keras_accuracy,
                          rows, {"model": model.name, "model_path": str(model), "video": str(video), **live_summary},
                          (time.perf_counter() - t0) / 60)
    RunFolder(result.path).demo_summary.write_text(json.dumps(summary.to_dict(), indent=1))
    log(f"[6/6] done in {summary.minutes:.1f} min")
    return summary


def _imagenet_available() -> bool:
    """True when Keras has (or can download) ImageNet MobileNetV2 weights for 128 px."""
    from edgetl.errors import EdgetlError
    from edgetl.models.backbones import BACKBONES, build_base, imagenet_cached

    spec = BACKBONES["mobilenet_v2"]
    if imagenet_cached(spec, 1.0, 128):
        return True
    try:
        build_base(spec, 128, 1.0, "imagenet")
    except EdgetlError as e:
        log(f"no ImageNet weights: {e.message}")
        return False
    return True


def _write_video(report, path: Path) -> Path:
    from edgetl.image import cv2 as _cv2, load

    cv2 = _cv2()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, (320, 240))
    for r in report.split("val"):
        frame = cv2.cvtColor(load(r.path, 240, 320), cv2.COLOR_RGB2BGR)
        for _ in range(3):
            writer.write(frame)
    writer.release()
    return path
