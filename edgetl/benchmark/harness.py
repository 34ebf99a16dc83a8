"""Latency measurement: the timed loop does nothing but the inference call.

numpy and the runtime layer only: this module also runs on devices, inside the bench runner."""
from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from edgetl.benchmark import BenchOptions
from edgetl.benchmark.device import DeviceFacts
from edgetl.errors import EdgetlError
from edgetl.text import clean, finite_number, shown


@dataclass
class BenchResult:
    """One (model, threads) measurement: what every target returns (a device sends it as JSON and
    :meth:`from_dict` checks it on arrival). A figure a target cannot measure is None (Android's
    benchmark_model reports no p90, for one)."""

    model: str
    runtime: str
    format: str
    precision: str
    """From the model's manifest; for a model from elsewhere "int8" when its input is quantized, else "float"."""
    threads: int | None
    size_bytes: int
    init_ms: float | None = None
    first_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    fps: float | None = None
    peak_rss_mb: float | None = None
    rss_delta_mb: float | None = None
    runs: int | None = None
    harness_overhead_pct: float | None = None
    """What the harness's per-call timing adds to mean_ms, against a bare loop, in %."""
    device: DeviceFacts = field(default_factory=DeviceFacts)
    path: str = ""
    """The model file benchmarked, as the caller named it (set by :func:`edgetl.bench`)."""
    own_process: bool | None = None
    """True: measured in a process of its own, so the memory figures are this model's alone; False:
    after other models in one process (peak RSS is the highest so far)."""
    e2e: dict | None = None
    """preprocess_ms and total_ms (p50) when an image was given."""
    samples_ms: list[float] = field(default_factory=list, repr=False)

    @classmethod
    def from_dict(cls, d: object, where: str) -> "BenchResult":
        """A result as a target sent it, checked: one clear error naming ``where`` (the device)
        instead of a KeyError later; keys of a newer runner are ignored."""
        required = ("model", "runtime", "format", "precision", "threads", "size_bytes")
        if not isinstance(d, dict) or any(k not in d for k in required):
            have = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise EdgetlError(f"{where} sent a benchmark result edgetl cannot read (it needs {', '.join(required)}; "
                              f"got {str(have)[:200]})", fix="use the same edgetl version on both sides")
        values: dict = {}
        for f in fields(cls):
            if f.name in d and f.name != "device":
                values[f.name] = _checked(f.name, d[f.name], where)
        return cls(**values, device=DeviceFacts.from_dict(d.get("device")))

    def to_dict(self, samples: bool = False) -> dict:
        """JSON-ready form (latency samples left out unless asked for)."""
        d = asdict(self)
        if not samples:
            d.pop("samples_ms")
        return d


_TEXT = ("model", "runtime", "format", "precision", "path")
_COUNTS = ("threads", "size_bytes", "runs")
MAX_SAMPLES = 1_000_000


def _checked(name: str, value: object, where: str) -> object:
    """One field of a result a device sent, checked against its type: text cleaned of control
    characters and cut to 200 characters (it reaches a terminal, a CSV and a page), numbers finite,
    counts whole and not negative. A field of the wrong type is one error naming the device."""
    def bad() -> EdgetlError:
        return EdgetlError(f"{where} sent a benchmark result whose {name} is {shown(value)}",
                           fix="use the same edgetl version on both sides")

    if name in _TEXT:
        if not isinstance(value, str):
            raise bad()
        return clean(value)[:200]
    if value is None and name not in ("size_bytes",):
        return None
    if name in _COUNTS:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 53:
            raise bad()
        return value
    if name == "own_process":
        if not isinstance(value, bool):
            raise bad()
        return value
    if name == "samples_ms":
        if not isinstance(value, list) or len(value) > MAX_SAMPLES:
            raise bad()
        numbers = [finite_number(v) for v in value]
        if any(v is None for v in numbers):
            raise bad()
        return numbers
    if name == "e2e":  # {"decode": bool, "preprocess_ms": number, "total_ms": number}
        if not isinstance(value, dict) or set(value) - {"decode", "preprocess_ms", "total_ms"}:
            raise bad()
        numbers = {k: finite_number(value.get(k)) for k in ("preprocess_ms", "total_ms")}
        if any(v is None for v in numbers.values()) or not isinstance(value.get("decode", False), bool):
            raise bad()
        return numbers | {"decode": bool(value.get("decode", False))}
    number = finite_number(value)
    if number is None:
        raise bad()
    return number


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: Linux's VmHWM, which starts afresh when a process
    starts a program (``ru_maxrss`` keeps the peak of the process it was forked from: a runner
    started by a 1.5 GB training would report 1.5 GB)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def stats(samples_ns: np.ndarray) -> dict[str, float]:
    """mean, std, min, p50, p90, p99 in ms and FPS (1000 / mean) of latency samples in ns."""
    ms = samples_ns.astype(np.float64) / 1e6
    mean = float(ms.mean())
    return {"mean_ms": mean, "std_ms": float(ms.std()), "min_ms": float(ms.min()),
            "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "fps": 1000.0 / mean if mean else 0.0}


def time_calls(call: Callable[[], object], runs: int, min_seconds: float) -> np.ndarray:
    """Latency of each call in ns: at least ``runs`` calls and at least ``min_seconds``."""
    clock = time.perf_counter_ns
    samples = np.empty(max(runs, 16), np.int64)
    n = 0
    deadline = clock() + int(min_seconds * 1e9)
    while n < runs or clock() < deadline:
        if n == len(samples):
            samples = np.resize(samples, 2 * n)
        t0 = clock()
        call()
        samples[n] = clock() - t0
        n += 1
    return samples[:n]


def bare_loop_ns(call: Callable[[], object], n: int) -> int:
    """Total ns of ``n`` calls with nothing but the loop around them."""
    clock = time.perf_counter_ns
    t0 = clock()
    for _ in range(n):
        call()
    return clock() - t0


def harness_overhead_pct(mean_ns: float, n: int = 20000) -> float:
    """What timing each call adds to a measured latency of ``mean_ns``, in %: the per-call samples
    of a call that does nothing, against a bare loop over the same call (best of three rounds each)."""
    def noop() -> None:
        return None

    per_sample = min(float(time_calls(noop, n, 0).mean()) for _ in range(3))
    per_bare = min(bare_loop_ns(noop, n) / n for _ in range(3))
    return 100.0 * max(0.0, per_sample - per_bare) / mean_ns if mean_ns else 0.0


def measure_callable(call: Callable[[], object], options: BenchOptions) -> dict:
    """Warm up, then time ``call``; returns the stats, the samples and the harness overhead."""
    for _ in range(options.warmup):
        call()
    samples = time_calls(call, options.runs, options.min_seconds)
    return stats(samples) | {"runs": len(samples), "samples_ms": (samples / 1e6).tolist(),
                             "harness_overhead_pct": harness_overhead_pct(float(samples.mean()))}


def bench_model(path: str | Path, options: BenchOptions, device: DeviceFacts | None = None) -> BenchResult:
    """Load a model through the runtime layer and measure it (see :class:`BenchResult`)."""
    from edgetl.runtime import load

    path = Path(path)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter_ns()
    clf = load(path, threads=options.threads)
    init_ms = (time.perf_counter_ns() - t0) / 1e6
    h, w = clf.pixels.height, clf.pixels.width
    x = clf.to_input(np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8))
    t0 = time.perf_counter_ns()
    clf.infer(x)
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    infer = clf.infer
    m = measure_callable(lambda: infer(x), options)
    e2e = _end_to_end(clf, options, m["p50_ms"]) if options.e2e_image else None
    peak = peak_rss_mb()
    return BenchResult(model=path.name, runtime=clf.runtime, **kind_of(clf), threads=options.threads,
                       size_bytes=path.stat().st_size,
                       init_ms=init_ms, first_ms=first_ms, peak_rss_mb=peak, rss_delta_mb=peak - rss0,
                       device=device or DeviceFacts(), e2e=e2e, **m)


def kind_of(clf) -> dict[str, str]:
    """``format`` and ``precision`` of a loaded model: from its manifest, else (a model from
    elsewhere) "int8" when its input is quantized and "float" otherwise."""
    contract = clf.manifest
    if contract is not None:
        return {"format": contract.format, "precision": contract.precision}
    return {"format": clf.path.suffix[1:], "precision": "int8" if clf.input.quantized else "float"}


def _end_to_end(clf, options: BenchOptions, inference_p50_ms: float) -> dict:
    """p50 of decoding (optional) + resizing + input mapping of a real image file, and that plus the
    steady-state inference p50: what a camera pipeline pays per frame, done in sequence."""
    from edgetl.errors import EdgetlError
    from edgetl.image import DecodeError, decode_bytes, read_file

    try:
        data = read_file(options.e2e_image)
        decoded = decode_bytes(data)
    except DecodeError as e:
        raise EdgetlError(f"cannot read image for --e2e ({e})", path=options.e2e_image,
                          fix="give a jpg, png, bmp, gif or webp photo") from e

    def prep():
        image = decode_bytes(data) if options.e2e_decode else decoded
        return clf.prepare(image)

    short = BenchOptions(runs=max(20, options.runs // 4), warmup=3, min_seconds=min(options.min_seconds, 2.0))
    pre = measure_callable(prep, short)["p50_ms"]
    return {"decode": options.e2e_decode, "preprocess_ms": pre, "total_ms": pre + inference_p50_ms}
