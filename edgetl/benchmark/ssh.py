"""Benchmark on Linux boards over SSH: the models (and the runner when edgetl is not installed there)
are copied under fixed names, the harness runs on the device, its folder is removed on every path,
and every host runs in parallel."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from edgetl.benchmark.harness import BenchOptions
from edgetl.errors import EdgetlError
from edgetl.remote.runner import runner_command, runner_result
from edgetl.remote.ssh import (SshTarget, allow_new_runs, copy_file, end_live_runs, make_remote_dir, remote_name,
                               remove_remote_dir, run_watched)
from edgetl.text import clean, shown

CLEANUP_S = 60.0
"""How long Ctrl-C waits for each device to remove its benchmark folder."""


def bench_host(t: SshTarget, models: list[Path], threads: list[int | None], options: BenchOptions) -> list[dict]:
    """Copy the models (and the runner when edgetl is not installed there), run the harness on the
    device and return its results, marked with the host."""
    remote = make_remote_dir(t)
    try:
        files = list(models) + ([Path(options.e2e_image)] if options.e2e_image else [])
        paths = []
        for i, f in enumerate(files):
            paths.append(f"{remote}/{remote_name(i, f)}")
            copy_file(t, f.read_bytes(), paths[-1], f.name)
        given = ",".join("default" if x is None else str(x) for x in threads)
        words = runner_command(t, remote) + paths[: len(models)] + [
            "--runs", str(options.runs), "--warmup", str(options.warmup), "--min-seconds", str(options.min_seconds),
            "--deadline", str(t.timeout), "--stop-on-stdin-eof"]
        words += ["--threads", given] if given else []
        words += ["--e2e", paths[-1]] if options.e2e_image else []
        doc = runner_result(t, run_watched(t, words), "the benchmark", list)
    finally:
        remove_remote_dir(t, remote)
    expected = [(m, n) for m in models for n in threads]
    if len(doc) != len(expected) or not all(isinstance(r, dict) for r in doc):
        raise EdgetlError(f"{t.host}: the runner answered {len(doc)} result(s) for {len(expected)} (model, threads) "
                          "pairs; nothing is reported rather than a result under the wrong name",
                          fix="update edgetl (or the copied runner) on the device to this version")
    for r, (model, n) in zip(doc, expected):
        if r.get("threads") != n:
            raise EdgetlError(f"{t.host}: the runner's result for {clean(model.name)} ran at {shown(r.get('threads'))} threads, "
                              f"not {n}", fix="update edgetl on the device to this version")
        r["model"] = model.name
        r["device"] = (r["device"] if isinstance(r.get("device"), dict) else {}) | {"target": f"ssh:{t.host}"}
    return doc


def bench_hosts(targets: list[SshTarget], models: list[Path], threads: list[int | None], options: BenchOptions) -> list[dict]:
    """Run on every host in parallel; raise one EdgetlError listing each host that failed."""
    pool = ThreadPoolExecutor(max(1, len(targets)))
    futures = [pool.submit(bench_host, t, models, threads, options) for t in targets]
    try:
        wait(futures)
    except KeyboardInterrupt:
        # Ctrl-C: stop the runners, then give each host's thread the time to remove its folder
        # (a thread abandoned at interpreter exit would leave it behind).
        end_live_runs()
        wait(futures, timeout=CLEANUP_S)
        raise
    finally:
        pool.shutdown(wait=False)
        if all(f.done() for f in futures):  # no host thread left that could start something
            allow_new_runs()
    results, failures = [], []
    for f in futures:
        try:
            results.extend(f.result())
        except EdgetlError as e:
            failures.append(str(e))
    if failures:
        raise EdgetlError("; ".join(failures))
    return results
