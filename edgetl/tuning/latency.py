"""Latency first, on the target: each candidate's artifact benched where the model will run.

Weights do not change how long a network takes, so the artifact benched is an untrained export of
the candidate (random weights, the same layers, the same converter settings as `edgetl export`:
uint8 pixels in for int8). The folded "unknown" rule and the metadata a real export adds are a
few small ops and bytes, which the chosen run's own artifact, benched again at the end, accounts
for. Both the artifacts and the latencies are cached (``$EDGETL_CACHE/tune/``): a second tune on
the same device benches nothing again, and a tune on another device converts nothing again."""
from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from edgetl.atomic import write_atomic
from edgetl.cache_dir import cache_root
from edgetl.errors import EdgetlError
from edgetl.progress import track
from edgetl.tuning.grid import Architecture, Candidate, Quant

logger = logging.getLogger(__name__)

CALIBRATION_IMAGES = 4
"""Random calibration images for an untrained int8 artifact: its ranges do not change its speed."""


class Statistic(StrEnum):
    """Which figure of a benchmark the budget is held against."""

    P50 = "p50"
    """The median inference: half the frames take longer (the default)."""
    P90 = "p90"
    """Nine frames in ten are faster: for a frame rate that must hold."""
    MEAN = "mean"


@dataclass(frozen=True)
class Target:
    """Where the candidates are benched: ``local``, ``rpi``/``ssh`` with a host, or ``android``."""

    device: str = "local"
    host: str | None = None
    threads: int | None = None
    remote_python: str = "python3"
    ssh_config: str | None = None
    serial: str | None = None
    timeout: float | None = None

    @property
    def key(self) -> str:
        """Who the latencies belong to, for the cache: this machine's CPU, an SSH host, a phone."""
        if self.device == "local":
            from edgetl.benchmark.device import cpu_model

            where = f"local:{platform.machine()}:{cpu_model()}:{os.cpu_count()}"
        elif self.device == "android":
            where = f"adb:{self.serial or 'default'}"
        else:
            where = f"ssh:{self.host}"
        return f"{where}|threads={self.threads or 'default'}"

    def check_reachable(self) -> None:
        """An SSH device answers (before minutes of conversions are spent for it); one clear error
        naming the host otherwise."""
        if self.device not in ("rpi", "ssh"):
            return
        from edgetl.remote.ssh import SshTarget, check, remote_command, ssh

        if not self.host:
            raise EdgetlError("--device rpi needs --host", fix="give --host user@host or an alias from ~/.ssh/config")
        t = SshTarget(self.host, self.remote_python, self.ssh_config)
        check(t, ssh(t, remote_command("true"), timeout=t.connect_timeout + 20), "reaching the device")

    def describe(self) -> str:
        """``mypi`` or ``this machine``, for the recommendation."""
        return {"local": "this machine", "android": f"the phone {self.serial or ''}".strip()}.get(self.device, self.host or "")


@dataclass
class Latency:
    """One candidate's benchmark on the target, as the budget reads it."""

    p50_ms: float
    p90_ms: float | None
    mean_ms: float | None
    size_bytes: int
    device: dict = field(default_factory=dict)
    """What the device said about itself (CPU, cores, versions), as the benchmark read it."""

    def value(self, statistic: Statistic) -> float:
        """The figure held against the budget (the median where a target has no p90)."""
        chosen = {Statistic.P50: self.p50_ms, Statistic.P90: self.p90_ms, Statistic.MEAN: self.mean_ms}[statistic]
        return float(chosen if chosen is not None else self.p50_ms)


class LatencyCache:
    """Latencies per device and candidate, in one JSON file under the cache folder."""

    def __init__(self, file: Path | None = None):
        self.file = file or cache_root() / "tune" / "latency.json"
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
            self.data: dict[str, dict] = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            self.data = {}

    def get(self, target: Target, candidate: Candidate) -> Latency | None:
        """The cached latency, or None (a malformed entry counts as none)."""
        entry = self.data.get(target.key, {}).get(candidate.key)
        try:
            return Latency(**entry) if isinstance(entry, dict) else None
        except TypeError:
            return None

    def put(self, target: Target, candidate: Candidate, latency: Latency) -> None:
        """Keep one latency (written at once: an interrupted tune keeps what it measured)."""
        self.data.setdefault(target.key, {})[candidate.key] = asdict(latency)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.file, json.dumps(self.data, indent=1), leftover_ok=True)


def _artifact_dir() -> Path:
    import tensorflow as tf

    # The converter's version decides the graph it writes: a new TensorFlow makes them again.
    return cache_root() / "tune" / f"artifacts-tf{tf.__version__}"


def untrained_artifacts(arch: Architecture, quants: list[Quant], classes: int) -> dict[Quant, Path]:
    """The candidate's TFLite files for ``quants`` with random weights (made once, cached)."""
    folder = _artifact_dir()
    paths = {q: folder / f"{arch.key}-c{classes}-{q}.tflite" for q in quants}
    missing = [q for q, p in paths.items() if not p.is_file()]
    if not missing:
        return paths
    from edgetl.exporting import tflite
    from edgetl.models.backbones import build_base, build_classifier, get_backbone

    spec = get_backbone(arch.backbone)
    model, _ = build_classifier(spec, build_base(spec, arch.size, arch.alpha, "none"), arch.size, classes, 0.0)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        source = tflite.saved_model(model, Path(tmp) / "saved_model")
        for q in missing:
            if q == Quant.INT8:
                calib = np.random.default_rng(0).uniform(0, 255, (CALIBRATION_IMAGES, arch.size, arch.size, 3))
                data = tflite.quantized(tflite.calibrated(source, calib.astype(np.float32)), "uint8")
            else:
                data = {Quant.FP16: tflite.fp16, Quant.FP32: tflite.fp32}[q](source)
            write_atomic(paths[q], data, leftover_ok=True)
    return paths


def bench_on(target: Target, files: list[Path], seconds: float) -> list[Latency]:
    """Each model file's latency on ``target``, in order: `edgetl bench`'s harness (warm-up, each
    model in a process of its own), for at least ``seconds`` each."""
    from edgetl.benchmark import bench
    from edgetl.benchmark.harness import BenchOptions

    results = bench(files, [target.threads], target.device, [target.host] if target.host else None,
                    BenchOptions(runs=30, warmup=5, min_seconds=seconds), remote_python=target.remote_python,
                    ssh_config=target.ssh_config, timeout=target.timeout, serial=target.serial)
    out = []
    for f, r in zip(files, results):
        if r.p50_ms is None:
            raise EdgetlError(f"the benchmark of {f.name} on {target.describe()} gave no latency",
                              fix="run edgetl bench on it with --debug")
        out.append(Latency(r.p50_ms, r.p90_ms, r.mean_ms, r.size_bytes, asdict(r.device)))
    return out


def measure(candidates: list[Candidate], target: Target, classes: int, cache: LatencyCache,
            seconds: float = 2.0, stop: Callable[[], bool] = lambda: False) -> dict[str, Latency]:
    """Each candidate's latency on ``target`` (from the cache where it is there), by candidate key.
    What was not cached is converted (once) and benched in one go, each model in a process of its
    own as `edgetl bench` does; when ``stop()`` turns true no further one is converted (the
    candidates left out are missing from the answer)."""
    found = {c.key: lat for c in candidates if (lat := cache.get(target, c)) is not None}
    todo = [c for c in candidates if c.key not in found]
    if found:
        logger.info("%d of %d latencies from the cache for %s", len(found), len(candidates), target.key.split("|")[0])
    if not todo:
        return found
    archs = sorted({c.arch for c in todo})
    files: dict[str, Path] = {}
    for arch in track(archs, f"Converting {len(archs)} untrained candidate(s)"):
        if stop():
            break
        quants = [c.quant for c in todo if c.arch == arch]
        for q, path in untrained_artifacts(arch, quants, classes).items():
            files[Candidate(arch, q).key] = path
    order = [c for c in todo if c.key in files]
    if not order:
        return found
    for c, latency in zip(order, bench_on(target, [files[c.key] for c in order], seconds)):
        cache.put(target, c, latency)
        found[c.key] = latency
    return found
