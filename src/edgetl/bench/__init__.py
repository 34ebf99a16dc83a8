"""Latency benchmarks, locally or on devices (SSH, adb). TensorFlow-free.

Submodules are imported on use, so the device runner stays small."""
from __future__ import annotations

from pathlib import Path

from edgetl._callable import make_callable


def bench(models: list[str | Path], threads: list[int | None] | None = None, device: str = "local",
          hosts: list[str] | None = None, options=None, **target) -> list[dict]:
    """Benchmark each model at each thread count on ``device`` ("local", "rpi"/"ssh" with ``hosts``,
    or "android") and return one result dict per (model, threads, host)."""
    from edgetl.bench.harness import BenchOptions
    from edgetl.bench.targets import TARGETS
    from edgetl.errors import EdgetlError

    paths = [Path(m) for m in models]
    for p in paths:
        if not p.is_file():
            raise EdgetlError("no such model file", path=p, fix="give .tflite or .onnx files (edgetl export writes RUN/export/)")
    if device not in TARGETS:
        raise EdgetlError(f"unknown --device {device}", fix=f"choose one of {', '.join(TARGETS)}")
    threads = threads or [None]
    results = TARGETS[device](paths, threads, options or BenchOptions(), hosts=hosts or [], **target)
    order = [p for p in paths for _ in threads]  # every target returns (host x) model x threads, in order
    for i, r in enumerate(results):
        r["path"] = str(order[i % len(order)])
    return results


__all__ = ["bench"]

make_callable(__name__, bench)
