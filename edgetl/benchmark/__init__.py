"""Latency benchmarks, locally or on devices (SSH, adb). TensorFlow-free.

Submodules are imported on use, so the device runner stays small."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the harness imports BenchOptions from here
    from edgetl.benchmark.harness import BenchResult


@dataclass
class BenchOptions:
    """How long and how hard to measure."""

    threads: int | None = None
    runs: int = 200
    """Timed inferences at least."""
    warmup: int = 20
    min_seconds: float = 5.0
    """Keep measuring until this much time has passed (and ``runs`` are done)."""
    e2e_image: str | None = None
    """Also time decode (when ``e2e_decode``) + resize + input mapping of this file."""
    e2e_decode: bool = True


def parse_threads(text: str) -> list[int | None]:
    """"1,2,4" -> [1, 2, 4]; "" -> [None] (the runtime's default); "default,4" -> [None, 4]."""
    from edgetl.errors import EdgetlError

    try:
        counts = [None if t.strip() == "default" else int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise EdgetlError(f"--threads {text!r} is not a list of numbers", fix="e.g. --threads 1,2,4") from None
    if any(n is not None and n < 1 for n in counts):
        raise EdgetlError(f"--threads {text!r}: a thread count is at least 1", fix="e.g. --threads 1,2,4")
    return counts or [None]


def bench(models: list[str | Path], threads: list[int | None] | None = None, device: str = "local",
          hosts: list[str] | None = None, options: BenchOptions | None = None, *, remote_python: str = "python3",
          ssh_config: str | Path | None = None, timeout: float | None = None, serial: str | None = None,
          benchmark_binary: str | None = None, use_gpu: bool = False, use_nnapi: bool = False) -> list[BenchResult]:
    """Benchmark each model at each thread count on ``device`` ("local", "rpi"/"ssh" with ``hosts``,
    or "android") and return one result per (host,) model and thread count, in that order (see
    :func:`edgetl.bench` for each argument; it also rewrites the run's page, which this layer,
    below the report, does not)."""
    from edgetl.benchmark.targets import TARGETS
    from edgetl.errors import EdgetlError

    paths = [Path(m) for m in models]
    for p in paths:
        if not p.is_file():
            raise EdgetlError("no such model file", path=p, fix="give .tflite or .onnx files (edgetl export writes RUN/export/)")
    if device not in TARGETS:
        raise EdgetlError(f"unknown --device {device}", fix=f"choose one of {', '.join(TARGETS)}")
    threads = threads or [None]
    target = {"rpi": dict(remote_python=remote_python, ssh_config=str(ssh_config) if ssh_config else None,
                          timeout=timeout),
              "android": dict(serial=serial, benchmark_binary=benchmark_binary, use_gpu=use_gpu, use_nnapi=use_nnapi,
                              timeout=timeout)}
    results = TARGETS[device](paths, threads, options or BenchOptions(), hosts=hosts or [],
                              **target.get("rpi" if device == "ssh" else device, {}))
    order = [p for p in paths for _ in threads]  # every target returns (host x) model x threads, in order
    expected = len(order) * max(1, len(hosts or []))
    if len(results) != expected:  # a result missing or extra would label the others with the wrong model
        raise EdgetlError(f"the benchmark returned {len(results)} results for {expected} (models x thread counts"
                          f"{' x hosts' if hosts else ''})", fix="run it again with --debug, and report it if it repeats")
    for i, r in enumerate(results):
        r.path = str(order[i % len(order)])
    _keep_with_run(paths, results)
    return results


def export_run_of(paths: list[str | Path]) -> Path | None:
    """The run folder when every model is one run's export (RUN/export/*), else None."""
    from edgetl.runs import RunFolder  # the host's side only: the device runner has no run folders

    folders = {Path(p).resolve().parent for p in paths}
    if len(folders) != 1:
        return None
    folder = folders.pop()
    return folder.parent if RunFolder(folder.parent).export.path == folder and RunFolder(folder.parent).model.is_file() \
        else None


def _keep_with_run(paths: list[Path], results: list[BenchResult]) -> None:
    """When every model is one run's export, keep the results in RUN/export/bench.json beside the
    earlier ones (the newest per model, thread count and device); :func:`edgetl.bench` then rewrites the page."""
    import json

    from edgetl.atomic import write_atomic
    from edgetl.runs import RunFolder

    run = export_run_of(paths)
    if run is None:
        return
    file = RunFolder(run).export.bench

    def key(r: dict) -> tuple:
        return r.get("model"), r.get("threads"), (r.get("device") or {}).get("target", "local")

    try:  # earlier benchmarks of this export stay: a one-model check must not replace a comparison
        kept = json.loads(file.read_text(encoding="utf-8"))
        kept = [r for r in kept if isinstance(r, dict)] if isinstance(kept, list) else []
    except (OSError, ValueError):
        kept = []
    new = {key(r): r for r in (res.to_dict() for res in results)}
    merged = [r for r in kept if key(r) not in new] + list(new.values())
    write_atomic(file, json.dumps(merged, indent=1), leftover_ok=True)


__all__ = ["bench", "export_run_of"]
