"""Where a benchmark runs: one entry per target, each returning result dicts of the same form."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgetl.benchmark.harness import BenchOptions, BenchResult
from edgetl.errors import EdgetlError
from edgetl.registry import Registry


def _local(models: list[Path], threads: list[int | None], options: BenchOptions, **_) -> list[BenchResult]:
    from edgetl.benchmark.runner import run
    from edgetl.progress import track

    combos = [(m, t) for m in models for t in threads]
    results = []
    for model, t in track(combos, f"Benchmarking {len(models)} model(s) x {len(threads)} thread count(s)"):
        results.extend(run([str(model)], [t], options))
    for r in results:
        r["device"]["target"] = "local"
    return [BenchResult.from_dict(r, "this machine's runner") for r in results]


def _ssh(models: list[Path], threads: list[int | None], options: BenchOptions, hosts: list[str],
         remote_python: str = "python3", ssh_config: str | None = None, timeout: float | None = None,
         **_) -> list[BenchResult]:
    from edgetl.benchmark.ssh import bench_hosts
    from edgetl.remote.ssh import DEFAULT_TIMEOUT, SshTarget

    if not hosts:
        raise EdgetlError("--device rpi needs --host", fix="give --host user@host or an alias from ~/.ssh/config")
    targets = [SshTarget(h, remote_python=remote_python, ssh_config=ssh_config, timeout=timeout or DEFAULT_TIMEOUT)
               for h in hosts]
    return [BenchResult.from_dict(r, (r.get("device") or {}).get("target", "the device") if isinstance(r, dict)
                                  else "the device") for r in bench_hosts(targets, models, threads, options)]


def _android(models: list[Path], threads: list[int | None], options: BenchOptions, serial: str | None = None,
             benchmark_binary: str | None = None, use_gpu: bool = False, use_nnapi: bool = False,
             timeout: float | None = None, **_) -> list[BenchResult]:
    from edgetl.benchmark.android import REMOTE_DIR, AdbTarget, bench_android
    from edgetl.remote.ssh import DEFAULT_TIMEOUT

    bad = [m for m in models if m.suffix != ".tflite"]
    if bad:
        raise EdgetlError("Android benchmarks run TFLite models only", path=bad[0], fix="give .tflite files")
    target = AdbTarget(serial, benchmark_binary or f"{REMOTE_DIR}/benchmark_model", use_gpu, use_nnapi,
                       timeout or DEFAULT_TIMEOUT)
    return [BenchResult.from_dict(r, f"adb:{serial or 'default'}") for r in bench_android(target, models, threads, options)]


TARGETS: Registry[Callable[..., list[BenchResult]]] = Registry(
    "bench target", [("local", _local), ("rpi", _ssh), ("ssh", _ssh), ("android", _android)])
