"""Benchmark on an Android phone through adb with TFLite's own `benchmark_model` binary.

`adb shell` joins its arguments into one string for the phone's ``sh -c``, so every command is
built with ``shlex.join``; models are pushed under fixed names into a folder of their own, which is
removed after the run whatever happens."""
from __future__ import annotations

import re
import secrets
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgetl.benchmark.harness import BenchOptions, kind_of
from edgetl.runtime import load
from edgetl.errors import EdgetlError
from edgetl.text import has_control

REMOTE_DIR = "/data/local/tmp/edgetl"
_NUM = r"([\d.]+(?:e[+-]?\d+)?)"
_DETAIL = re.compile(rf"count={_NUM} first={_NUM} curr={_NUM} min={_NUM} max={_NUM} avg={_NUM} std={_NUM}"
                     rf"(?: p5={_NUM} median={_NUM} p95={_NUM})?")
_SUMMARY = re.compile(rf"Inference timings in us: Init: {_NUM}, First inference: {_NUM}, Warmup \(avg\): {_NUM}, "
                      rf"Inference \(avg\): {_NUM}")
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     rf"init={_NUM} overall={_NUM}")


@dataclass
class AdbTarget:
    """A phone and how to run the benchmark there."""

    serial: str | None = None
    benchmark_binary: str = f"{REMOTE_DIR}/benchmark_model"
    """On the phone, or a local file that is pushed first."""
    use_gpu: bool = False
    use_nnapi: bool = False
    timeout: float = 900.0

    def __post_init__(self) -> None:
        if self.serial is not None and (not self.serial or self.serial.startswith("-") or has_control(self.serial)
                                        or any(ch.isspace() for ch in self.serial)):
            raise EdgetlError(f"{self.serial!r} is not an adb serial", fix="give --serial as `adb devices` lists it")


def parse_benchmark_output(text: str) -> dict:
    """Init, first, warmup and steady-state figures of `benchmark_model` output, in ms, in the
    fields of edgetl's result schema (None where the tool does not report a figure)."""
    summary = _SUMMARY.search(text)
    if not summary:
        raise EdgetlError("benchmark_model printed no 'Inference timings' line",
                          fix="run it by hand with adb shell to see why (model path, delegate flags)")
    details = _DETAIL.findall(text)
    steady = details[-1] if details else None
    init_us, first_us, warmup_us, avg_us = (float(v) for v in summary.groups())
    out = {"init_ms": init_us / 1e3, "first_ms": first_us / 1e3, "warmup_mean_ms": warmup_us / 1e3,
           "mean_ms": avg_us / 1e3, "std_ms": None, "min_ms": None, "p50_ms": None, "p90_ms": None, "p99_ms": None,
           "runs": None, "fps": 1e6 / avg_us if avg_us else 0.0}
    if steady:
        count, _first, _curr, mn, _mx, _avg, std, _p5, median, _p95 = steady
        out |= {"runs": int(float(count)), "min_ms": float(mn) / 1e3, "std_ms": float(std) / 1e3,
                "p50_ms": float(median) / 1e3 if median else None}
    memory = _MEMORY.search(text)
    out["peak_rss_mb"] = float(memory.group(2)) if memory else None
    return out


def _adb(t: AdbTarget, *args: str, timeout: float | None = None) -> str:
    cmd = ["adb"] + (["-s", t.serial] if t.serial else []) + list(args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout or t.timeout)
    except FileNotFoundError:
        raise EdgetlError("adb is not installed", fix="install Android platform-tools (see devices/android/README.md)") from None
    except subprocess.TimeoutExpired:
        raise EdgetlError(f"adb {args[0]} took longer than {timeout or t.timeout:.0f} s") from None
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise EdgetlError(f"adb {args[0]} failed ({last[-1] if last else proc.returncode})",
                          fix="check `adb devices` lists the phone with USB debugging allowed")
    return proc.stdout


def _shell(t: AdbTarget, *words: str, timeout: float | None = None) -> str:
    """Run a command on the phone, every word quoted for its shell."""
    return _adb(t, "shell", shlex.join(words), timeout=timeout)


def bench_android(t: AdbTarget, models: list[Path], threads: list[int | None], options: BenchOptions) -> list[dict]:
    """Push each model (and a local benchmark binary) into a folder of this run's, run it per
    thread count, parse the output, and remove the folder."""
    work = f"{REMOTE_DIR}/run-{secrets.token_hex(4)}"
    _shell(t, "mkdir", "-p", work)
    try:
        binary = t.benchmark_binary
        if Path(binary).is_file():
            _adb(t, "push", str(Path(binary).resolve()), f"{work}/benchmark_model")  # absolute: never an option
            binary = f"{work}/benchmark_model"
            _shell(t, "chmod", "755", binary)
        props = {k: _shell(t, "getprop", k).strip() for k in
                 ("ro.product.model", "ro.board.platform", "ro.build.version.release", "ro.product.cpu.abi")}
        device = {"target": f"adb:{t.serial or 'default'}", "cpu": props["ro.board.platform"],
                  "model": props["ro.product.model"], "os": f"Android {props['ro.build.version.release']}",
                  "arch": props["ro.product.cpu.abi"], "runtime": "benchmark_model",
                  "delegate": "gpu" if t.use_gpu else "nnapi" if t.use_nnapi else "cpu"}
        results = []
        for i, model in enumerate(models):
            kind = kind_of(load(model))  # read here: the phone runs benchmark_model, not Python
            remote = f"{work}/{i}.tflite"
            _adb(t, "push", str(model.resolve()), remote)
            for n in threads:
                flags = [f"--graph={remote}", f"--num_runs={options.runs}", f"--warmup_runs={options.warmup}",
                         f"--min_secs={options.min_seconds}"]
                flags += [f"--num_threads={n}"] if n else []
                flags += ["--use_gpu=true"] if t.use_gpu else []
                flags += ["--use_nnapi=true"] if t.use_nnapi else []
                parsed = parse_benchmark_output(_shell(t, binary, *flags))
                results.append({"model": model.name, "runtime": f"benchmark_model ({device['delegate']})", "threads": n,
                                **kind, "size_bytes": model.stat().st_size, **parsed, "device": device})
        return results
    finally:
        try:
            _shell(t, "rm", "-rf", work, timeout=60)
        except EdgetlError:
            pass  # the phone went away; nothing more can be cleaned
