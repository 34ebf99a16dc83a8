"""The benchmark as a device runs it: `python -m edgetl.benchmark.runner MODEL... --json` or the same
inside the zipapp copied to a device without edgetl. Prints a JSON list of results on stdout.

Needs numpy and a TFLite or ONNX runtime only (OpenCV for --e2e)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading

from edgetl.benchmark.device import DeviceFacts, device_facts
from edgetl.benchmark.harness import BenchOptions, bench_model
from edgetl.errors import EdgetlError


def run(models: list[str], threads: list[int | None], options: BenchOptions, apart: bool = True) -> list[dict]:
    """Every (model, threads) result as a dict, with this device's facts. With ``apart``, each is
    measured in a fresh Python process of its own, so its memory figures are that model's alone (in
    one process the peak RSS is the highest so far: it climbs down a table, and after a training in
    the same process it is the training's)."""
    facts = device_facts()
    out = []
    for model in models:
        for t in threads:
            opts = BenchOptions(**{**options.__dict__, "threads": t})
            if apart:
                try:
                    out.append(_in_own_process(model, opts, facts))
                    continue
                except OSError:  # this Python cannot start itself (an emulator without binfmt): say so
                    apart = False
            out.append(bench_model(model, opts, facts).to_dict(samples=True) | {"own_process": False})
    return out


def _child_command() -> tuple[list[str], dict[str, str]]:
    """How to start this runner again: the same zipapp on a device, else this module by name with
    the same sys.path."""
    archive = getattr(globals().get("__loader__"), "archive", None)  # set when imported from a zip
    if archive:
        return [sys.executable, archive], dict(os.environ)
    code = "import sys; from edgetl.benchmark.runner import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code], os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def _in_own_process(model: str, options: BenchOptions, facts: DeviceFacts) -> dict:
    """:func:`bench_model` of one model at one thread count in a new interpreter; its result, with
    ``facts`` (measured once, by the parent)."""
    args = [model, "--threads", "default" if options.threads is None else str(options.threads), "--runs",
            str(options.runs), "--warmup", str(options.warmup), "--min-seconds", str(options.min_seconds),
            "--in-process"] + (["--e2e", options.e2e_image] if options.e2e_image else []) \
        + ([] if options.e2e_decode else ["--e2e-no-decode"])
    command, env = _child_command()
    proc = subprocess.run([*command, *args], capture_output=True, text=True, env=env)
    try:
        answer = json.loads(proc.stdout)
    except ValueError:
        raise EdgetlError(f"the benchmark process for {model} ended with code {proc.returncode} "
                          f"({(proc.stderr.strip().splitlines() or ['no output'])[-1][:300]})") from None
    if isinstance(answer, dict) and "error" in answer:
        raise EdgetlError(str(answer["error"]))
    return answer[0] | {"device": facts.to_dict(), "own_process": True}


def _end(message: str | None) -> None:
    """Stop this runner and anything it started (its own process group), from any thread."""
    if message:
        print(json.dumps({"error": message}), flush=True)
    try:
        os.killpg(os.getpgid(0), signal.SIGKILL)
    finally:
        os._exit(3)


def guard(deadline: float | None, stop_on_stdin_eof: bool) -> None:
    """Make this runner end by itself when a remote benchmark is abandoned: after ``deadline``
    seconds, and when standard input closes (the SSH connection that started it is gone).
    The runner leads its own process group, so ending it ends all of it."""
    try:
        os.setpgid(0, 0)
    except OSError:  # already a group leader
        pass
    if deadline:
        timer = threading.Timer(deadline, _end, [f"the benchmark took longer than {deadline:.0f} s (--timeout)"])
        timer.daemon = True
        timer.start()
    if stop_on_stdin_eof:
        def watch() -> None:
            # The raw descriptor, not sys.stdin: a daemon thread blocked inside a buffered reader
            # aborts the interpreter at exit.
            while os.read(0, 4096):
                pass
            _end(None)
        threading.Thread(target=watch, daemon=True).start()


def golden(model: str, golden_file: str, threads: int | None) -> dict:
    """The model's probabilities on the golden images (see :mod:`edgetl.runtime.golden`), with the
    runtime and device that computed them."""
    import numpy as np

    from edgetl.runtime import load
    from edgetl.runtime.golden import probabilities

    clf = load(model, threads=threads)
    pixels = np.load(golden_file, allow_pickle=False)
    return {"probabilities": probabilities(clf, pixels).tolist(), "runtime": clf.runtime, "device": device_facts().to_dict()}


def main(argv: list[str] | None = None) -> int:
    """Command line of the runner (the same options as `edgetl bench` on the device)."""
    p = argparse.ArgumentParser(prog="edgetl-bench-runner")
    p.add_argument("models", nargs="*")
    p.add_argument("--threads", default="")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--min-seconds", type=float, default=5.0)
    p.add_argument("--e2e", default=None)
    p.add_argument("--e2e-no-decode", action="store_true", help="Time --e2e without decoding the file.")
    p.add_argument("--deadline", type=float, default=None, help="Stop after this many seconds.")
    p.add_argument("--stop-on-stdin-eof", action="store_true", help="Stop when standard input closes.")
    p.add_argument("--golden", default=None, help="Run the golden images in this .npy through the model instead.")
    p.add_argument("--doctor", action="store_true", help="Report this device's runtimes and known conflicts instead.")
    p.add_argument("--in-process", action="store_true", help="Measure in this process (one model per process).")
    a = p.parse_args(argv)
    if not a.in_process:  # a runner's one-model child stays in its group: ending the runner ends it
        guard(a.deadline, a.stop_on_stdin_eof)
    # "default" stands for the runtime's own choice, so a list such as [None, 4] arrives whole
    threads = [None if t == "default" else int(t) for t in a.threads.split(",") if t] or [None]
    try:
        if a.doctor:
            from edgetl.doctor import device_diagnosis

            print(json.dumps(device_diagnosis().to_dict()))
            return 0
        if a.golden:
            print(json.dumps(golden(a.models[0], a.golden, threads[0])))
            return 0
        results = run(a.models, threads, BenchOptions(runs=a.runs, warmup=a.warmup, min_seconds=a.min_seconds,
                                                       e2e_image=a.e2e, e2e_decode=not a.e2e_no_decode),
                      apart=not a.in_process)
    except EdgetlError as e:
        print(json.dumps({"error": str(e)}))
        return 2
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
