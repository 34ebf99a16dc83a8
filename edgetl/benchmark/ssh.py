"""Benchmark and verify on Linux boards over SSH (a Raspberry Pi, a Jetson, any host `ssh NAME` reaches).

Host names go through OpenSSH, so aliases in ~/.ssh/config (HostName, Port, User, IdentityFile) and
the user's host-key checking apply; edgetl adds only BatchMode (never a password prompt) and
timeouts, and never overrides host-key checking.

What crosses to the device's shell: every remote command is a list of words joined with
``shlex.join``, so each word, including anything a user or a file supplied, reaches the remote
shell quoted. Model files are copied under fixed names (``0.tflite``, ``1.onnx``); their local
names are used only for labelling results. The remote runner watches its standard input and its
own deadline, so it ends with the connection (done, error, timeout, Ctrl-C), and its folder is
removed on every path."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from edgetl.benchmark import zipapp
from edgetl.benchmark.harness import BenchOptions
from edgetl.errors import EdgetlError
from edgetl.image import IMAGE_EXTENSIONS
from edgetl.text import clean, has_control

MODEL_SUFFIXES = (".tflite", ".onnx")
DEFAULT_TIMEOUT = 900.0
_REMOTE_DIR = re.compile(r"/[A-Za-z0-9._/-]+")
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()
"""Set by Ctrl-C during :func:`bench_hosts`: host threads start nothing new on the device (only
their clean-up). Without it a thread between two steps when Ctrl-C came would go on to start its
runner after the live connections were ended, and the exit would wait for that runner to finish."""
CLEANUP_S = 60.0
"""How long Ctrl-C waits for each device to remove its benchmark folder."""


@dataclass
class SshTarget:
    """Where and how to reach a device."""

    host: str
    remote_python: str = "python3"
    ssh_config: str | None = None
    connect_timeout: int = 10
    timeout: float = DEFAULT_TIMEOUT
    """Seconds the whole remote benchmark may take; the runner stops itself after this too."""

    def __post_init__(self) -> None:
        check_host(self.host)


def check_host(host: str) -> str:
    """``host`` if it can only be read as a host name or alias: never as an ssh option
    (``-oProxyCommand=...``), never with spaces or control characters."""
    if not host or host.startswith("-") or any(ch.isspace() for ch in host) or has_control(host):
        raise EdgetlError(f"{host!r} is not a host name", fix="give --host NAME, user@NAME or an alias from ~/.ssh/config")
    return host


def _base_args(t: SshTarget) -> list[str]:
    args = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={t.connect_timeout}", "-o", "ServerAliveInterval=15"]
    if t.ssh_config:
        args += ["-F", t.ssh_config]
    return args + ["--", t.host]  # "--": nothing after it is read as an option by ssh


def remote_command(*words: str) -> str:
    """One remote shell command from words, each quoted: what ssh sends to the device's shell. A
    leading ``~/`` (``--remote-python ~/edgetl-venv/bin/python``) becomes the device's ``"$HOME"/``,
    the one expansion kept: the rest of the word stays quoted."""
    return " ".join(f'"$HOME"/{shlex.quote(w[2:])}' if w.startswith("~/") else shlex.quote(w) for w in words)


def ssh(t: SshTarget, command: str, stdin: bytes | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` (built with :func:`remote_command`) on the device and wait for it."""
    try:
        return subprocess.run(_base_args(t) + [command], input=stdin, capture_output=True, timeout=timeout or t.timeout)
    except subprocess.TimeoutExpired:
        raise EdgetlError(f"{t.host}: no answer within {timeout or t.timeout:.0f} s",
                          fix="check the device is up, or give a longer --timeout") from None
    except FileNotFoundError:
        raise EdgetlError("the ssh client is not installed", fix="install OpenSSH (apt-get install openssh-client)") from None


def stream(t: SshTarget, command: str) -> subprocess.Popen:
    """Start ``command`` (built with :func:`remote_command`) on the device, its output a pipe to
    read as it comes (a transfer larger than memory)."""
    try:
        return subprocess.Popen(_base_args(t) + [command], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise EdgetlError("the ssh client is not installed", fix="install OpenSSH (apt-get install openssh-client)") from None


def check(t: SshTarget, proc: subprocess.CompletedProcess, what: str) -> None:
    """Raise one clear error when a remote step failed (exit 255 is ssh's own: no connection)."""
    if proc.returncode == 0:
        return
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    last = lines[-1] if lines else f"exit code {proc.returncode}"
    if proc.returncode == 255:
        raise EdgetlError(f"{t.host}: cannot connect over SSH ({last})",
                          fix="check the host name, its ~/.ssh/config entry and that `ssh HOST true` works without a password")
    raise EdgetlError(f"{t.host}: {what} failed ({last})")


def make_remote_dir(t: SshTarget) -> str:
    """A new private folder on the device; its path is checked before anything uses it."""
    proc = ssh(t, remote_command("mktemp", "-d"), timeout=t.connect_timeout + 20)
    check(t, proc, "creating a folder")
    remote = proc.stdout.decode(errors="replace").strip()
    if not _REMOTE_DIR.fullmatch(remote) or ".." in remote.split("/"):
        raise EdgetlError(f"{t.host}: mktemp printed {remote[:80]!r}, not one absolute path",
                          fix="check that `ssh HOST mktemp -d` prints a folder (a login script printing text breaks it)")
    return remote


def _not_stopping(t: SshTarget) -> None:
    if _STOPPING.is_set():
        raise EdgetlError(f"{t.host}: stopped (Ctrl-C)")


def copy_file(t: SshTarget, data: bytes, remote_path: str, label: str) -> None:
    """Write ``data`` to ``remote_path`` on the device (the path travels as a quoted argument)."""
    _not_stopping(t)
    check(t, ssh(t, remote_command("sh", "-c", 'cat > "$1"', "sh", remote_path), stdin=data), f"copying {label}")


def remove_remote_dir(t: SshTarget, remote: str) -> None:
    """Best effort: remove the run's folder (never raises: it runs on error paths too)."""
    try:
        ssh(t, remote_command("rm", "-rf", "--", remote), timeout=t.connect_timeout + 20)
    except EdgetlError:
        pass


def runner_command(t: SshTarget, remote: str) -> list[str]:
    """The words that start the benchmark runner there: edgetl's when installed, else the zipapp."""
    probe = ssh(t, remote_command(t.remote_python, "-c", "import edgetl.benchmark.runner"), timeout=120)
    if probe.returncode == 255:
        check(t, probe, "checking for edgetl")
    if probe.returncode == 0:
        return [t.remote_python, "-m", "edgetl.benchmark.runner"]
    copy_file(t, zipapp.build().read_bytes(), f"{remote}/runner.pyz", "the runner")
    return [t.remote_python, f"{remote}/runner.pyz"]


def run_watched(t: SshTarget, words: list[str]) -> subprocess.CompletedProcess:
    """Run a runner command that ends itself when its standard input closes. This process holds
    the write end of that pipe until the command is done, and lets go of it (by ending the ssh
    client) on timeout and on Ctrl-C, so the runner on the device stops too."""
    keep_open, write_end = os.pipe()
    try:
        # Started and registered under the lock that Ctrl-C's _end_live_runs takes: a connection
        # is either ended by it or never started.
        with _LIVE_LOCK:
            _not_stopping(t)
            proc = subprocess.Popen(_base_args(t) + [remote_command(*words)], stdin=keep_open,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            _LIVE.add(proc)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(keep_open)
    try:
        out, err = proc.communicate(timeout=t.timeout + t.connect_timeout + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise EdgetlError(f"{t.host}: the benchmark did not finish within {t.timeout:.0f} s; it was stopped",
                          fix="give a longer --timeout, or fewer models and thread counts") from None
    except BaseException:  # Ctrl-C: end the connection so the runner stops, then let it propagate
        proc.kill()
        proc.communicate()
        raise
    finally:
        os.close(write_end)
        with _LIVE_LOCK:
            _LIVE.discard(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _end_live_runs() -> None:
    """Kill every benchmark connection still open (their runners see the end of their input and
    stop), and let no host thread open another."""
    with _LIVE_LOCK:
        _STOPPING.set()
        for proc in _LIVE:
            proc.kill()


def runner_result(t: SshTarget, proc: subprocess.CompletedProcess, what: str, kind: type):
    """The runner's answer: the JSON document on its last line, of type ``kind``. Its own error
    line, a failed connection and a missing answer each become one clear error."""
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    try:
        doc = json.loads(lines[-1]) if lines else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        raise EdgetlError(f"{t.host}: {doc['error']}")
    check(t, proc, what)
    if not isinstance(doc, kind):
        raise EdgetlError(f"{t.host}: the runner printed no result", fix=f"check that `{t.remote_python}` runs there")
    return doc


def _remote_name(i: int, path: Path) -> str:
    suffix = path.suffix.lower()
    return f"{i}{suffix if suffix in MODEL_SUFFIXES or suffix in IMAGE_EXTENSIONS else '.bin'}"


def bench_host(t: SshTarget, models: list[Path], threads: list[int | None], options: BenchOptions) -> list[dict]:
    """Copy the models (and the runner when edgetl is not installed there), run the harness on the
    device and return its results, marked with the host."""
    remote = make_remote_dir(t)
    try:
        files = list(models) + ([Path(options.e2e_image)] if options.e2e_image else [])
        paths = []
        for i, f in enumerate(files):
            paths.append(f"{remote}/{_remote_name(i, f)}")
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
            raise EdgetlError(f"{t.host}: the runner's result for {clean(model.name)} ran at {r.get('threads')} threads, "
                              f"not {n}", fix="update edgetl on the device to this version")
        r["model"] = model.name
        r["device"]["target"] = f"ssh:{t.host}"
    return doc


def run_golden(t: SshTarget, runner: list[str], model: str, golden: str) -> dict:
    """Run the golden images (``golden``, a .npy already on the device) through ``model`` there
    with the runner words ``runner``: the probabilities, the runtime and the device's facts."""
    words = runner + [model, "--golden", golden, "--deadline", str(t.timeout), "--stop-on-stdin-eof"]
    doc = runner_result(t, run_watched(t, words), "the golden check", dict)
    if "probabilities" not in doc:
        raise EdgetlError(f"{t.host}: the runner printed no golden result", fix="update edgetl on the device")
    return doc


def golden_on_host(t: SshTarget, model: Path, golden_file: Path) -> dict:
    """Run the golden images through ``model`` on the device: its probabilities, runtime and facts."""
    remote = make_remote_dir(t)
    try:
        paths = [f"{remote}/{_remote_name(0, model)}", f"{remote}/golden.npy"]
        copy_file(t, model.read_bytes(), paths[0], model.name)
        copy_file(t, golden_file.read_bytes(), paths[1], golden_file.name)
        return run_golden(t, runner_command(t, remote), paths[0], paths[1])
    finally:
        remove_remote_dir(t, remote)


def doctor_on_host(t: SshTarget) -> dict:
    """The device's runtimes, versions and known conflicts, from its own Python."""
    remote = make_remote_dir(t)
    try:
        words = runner_command(t, remote) + ["--doctor", "--deadline", str(t.timeout), "--stop-on-stdin-eof"]
        return runner_result(t, run_watched(t, words), "the doctor", dict)
    finally:
        remove_remote_dir(t, remote)


def bench_hosts(targets: list[SshTarget], models: list[Path], threads: list[int | None], options: BenchOptions) -> list[dict]:
    """Run on every host in parallel; raise one EdgetlError listing each host that failed."""
    pool = ThreadPoolExecutor(max(1, len(targets)))
    futures = [pool.submit(bench_host, t, models, threads, options) for t in targets]
    try:
        wait(futures)
    except KeyboardInterrupt:
        # Ctrl-C: stop the runners, then give each host's thread the time to remove its folder
        # (a thread abandoned at interpreter exit would leave it behind).
        _end_live_runs()
        wait(futures, timeout=CLEANUP_S)
        raise
    finally:
        pool.shutdown(wait=False)
        if all(f.done() for f in futures):  # no host thread left that could start something
            _STOPPING.clear()
    results, failures = [], []
    for f in futures:
        try:
            results.extend(f.result())
        except EdgetlError as e:
            failures.append(str(e))
    if failures:
        raise EdgetlError("; ".join(failures))
    return results
