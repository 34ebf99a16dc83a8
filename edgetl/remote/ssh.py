"""The SSH transport to Linux devices (a Raspberry Pi, a Jetson, any host `ssh NAME` reaches): bench,
deploy, verify, doctor and harvest all go through it.

Host names go through OpenSSH, so aliases in ~/.ssh/config (HostName, Port, User, IdentityFile) and
the user's host-key checking apply; edgetl adds only BatchMode (never a password prompt) and
timeouts, and never overrides host-key checking.

What crosses to the device's shell: every remote command is a list of words joined by
:func:`remote_command`, so each word, including anything a user or a file supplied, reaches the
remote shell quoted. Files are copied under fixed names (``0.tflite``, ``1.onnx``); their local
names are used only for labelling. A watched run (:func:`run_watched`) ends with the connection
(done, error, timeout, Ctrl-C)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.image import IMAGE_EXTENSIONS
from edgetl.text import has_control

MODEL_SUFFIXES = (".tflite", ".onnx")
DEFAULT_TIMEOUT = 900.0
_REMOTE_DIR = re.compile(r"/[A-Za-z0-9._/-]+")
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()
"""Set by Ctrl-C (:func:`end_live_runs`): threads working on devices start nothing new there (only
their clean-up). Without it a thread between two steps when Ctrl-C came would go on to start its
runner after the live connections were ended, and the exit would wait for that runner to finish."""


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


def end_live_runs() -> None:
    """Kill every benchmark connection still open (their runners see the end of their input and
    stop), and let no host thread open another."""
    with _LIVE_LOCK:
        _STOPPING.set()
        for proc in _LIVE:
            proc.kill()


def remote_name(i: int, path: Path) -> str:
    suffix = path.suffix.lower()
    return f"{i}{suffix if suffix in MODEL_SUFFIXES or suffix in IMAGE_EXTENSIONS else '.bin'}"


def allow_new_runs() -> None:
    """After a Ctrl-C was handled and every thread that could start something has ended."""
    _STOPPING.clear()
