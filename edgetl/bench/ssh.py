"""Benchmark on Linux boards over SSH (a Raspberry Pi, a Jetson, any host `ssh NAME` reaches).

Host names go through OpenSSH, so aliases in ~/.ssh/config (HostName, Port, User, IdentityFile) work."""
from __future__ import annotations

import json
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edgetl.bench import zipapp
from edgetl.bench.harness import BenchOptions
from edgetl.errors import EdgetlError


@dataclass
class SshTarget:
    """Where and how to reach a device."""

    host: str
    remote_python: str = "python3"
    ssh_config: str | None = None
    connect_timeout: int = 10
    timeout: float = 900.0


def _ssh(t: SshTarget, command: str, stdin: bytes | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    args = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={t.connect_timeout}", "-o", "ServerAliveInterval=15"]
    if t.ssh_config:
        args += ["-F", t.ssh_config]
    try:
        return subprocess.run(args + [t.host, command], input=stdin, capture_output=True, timeout=timeout or t.timeout)
    except subprocess.TimeoutExpired:
        raise EdgetlError(f"{t.host}: no answer within {timeout or t.timeout:.0f} s", fix="check the device is up") from None
    except FileNotFoundError:
        raise EdgetlError("the ssh client is not installed", fix="install OpenSSH (apt-get install openssh-client)") from None


def _check(t: SshTarget, proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode == 0:
        return
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    last = lines[-1] if lines else f"exit code {proc.returncode}"
    if proc.returncode == 255:
        raise EdgetlError(f"{t.host}: cannot connect over SSH ({last})",
                          fix="check the host name, its ~/.ssh/config entry and that `ssh HOST true` works without a password")
    raise EdgetlError(f"{t.host}: {what} failed ({last})")


def bench_host(t: SshTarget, models: list[Path], threads: list[int | None], options: BenchOptions) -> list[dict]:
    """Copy the models (and the runner when edgetl is not installed there), run the harness on the
    device and return its results, marked with the host."""
    proc = _ssh(t, "mktemp -d", timeout=t.connect_timeout + 20)
    _check(t, proc, "creating a folder")
    remote = proc.stdout.decode().strip()
    try:
        files = list(models) + ([Path(options.e2e_image)] if options.e2e_image else [])
        names = []
        for i, f in enumerate(files):
            name = f"{i}_{f.name}"
            _check(t, _ssh(t, f"cat > {remote}/{name}", stdin=f.read_bytes()), f"copying {f.name}")
            names.append(name)
        py = shlex.quote(t.remote_python)
        has_edgetl = _ssh(t, f"{py} -c 'import edgetl.bench.runner'", timeout=120).returncode == 0
        if has_edgetl:
            runner = f"{py} -m edgetl.bench.runner"
        else:
            _check(t, _ssh(t, f"cat > {remote}/runner.pyz", stdin=zipapp.build().read_bytes()), "copying the runner")
            runner = f"{py} {remote}/runner.pyz"
        model_args = " ".join(f"{remote}/{n}" for n in names[: len(models)])
        given = ",".join(str(x) for x in threads if x)
        opts = (f"--runs {options.runs} --warmup {options.warmup} --min-seconds {options.min_seconds}"
                + (f" --threads {given}" if given else "") + (f" --e2e {remote}/{names[-1]}" if options.e2e_image else ""))
        proc = _ssh(t, f"cd {remote} && {runner} {model_args} {opts}")
        out = proc.stdout.decode(errors="replace").strip().splitlines()
        try:
            doc = json.loads(out[-1]) if out else None
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "error" in doc:
            raise EdgetlError(f"{t.host}: {doc['error']}")
        _check(t, proc, "the benchmark")
        if not isinstance(doc, list):
            raise EdgetlError(f"{t.host}: the runner printed no result", fix=f"check that `{t.remote_python}` runs there")
    finally:
        _ssh(t, f"rm -rf {remote}", timeout=t.connect_timeout + 20)
    for r, model in zip(doc, [m for m in models for _ in threads]):
        r["model"] = model.name
        r["device"]["target"] = f"ssh:{t.host}"
    return doc


def bench_hosts(targets: list[SshTarget], models: list[Path], threads: list[int | None], options: BenchOptions) -> list[dict]:
    """Run on every host in parallel; raise one EdgetlError listing each host that failed."""
    with ThreadPoolExecutor(max(1, len(targets))) as pool:
        futures = [pool.submit(bench_host, t, models, threads, options) for t in targets]
    results, failures = [], []
    for f in futures:
        try:
            results.extend(f.result())
        except EdgetlError as e:
            failures.append(str(e))
    if failures:
        raise EdgetlError("; ".join(failures))
    return results
