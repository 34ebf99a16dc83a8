"""edgetl's device program over SSH: started from the installed edgetl when the device has it, else
from a zipapp copied for the run; watched (it ends with the connection) and read back as one JSON
document. The golden check and the doctor run through it here; the benchmark in
:mod:`edgetl.benchmark.ssh`."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from edgetl.remote import zipapp
from edgetl.doctor import DeviceDiagnosis
from edgetl.errors import EdgetlError
from edgetl.text import clean
from edgetl.remote.ssh import (SshTarget, check, copy_file, make_remote_dir, remote_command, remote_name,
                               remove_remote_dir, run_watched, ssh)


def runner_command(t: SshTarget, remote: str) -> list[str]:
    """The words that start the benchmark runner there: edgetl's when installed, else the zipapp."""
    probe = ssh(t, remote_command(t.remote_python, "-c", "import edgetl.benchmark.runner"), timeout=120)
    if probe.returncode == 255:
        check(t, probe, "checking for edgetl")
    if probe.returncode == 0:
        return [t.remote_python, "-m", "edgetl.benchmark.runner"]
    copy_file(t, zipapp.build().read_bytes(), f"{remote}/runner.pyz", "the runner")
    return [t.remote_python, f"{remote}/runner.pyz"]


def runner_result(t: SshTarget, proc: subprocess.CompletedProcess, what: str, kind: type):
    """The runner's answer: the JSON document on its last line, of type ``kind``. Its own error
    line, a failed connection and a missing answer each become one clear error."""
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    try:
        doc = json.loads(lines[-1]) if lines else None
    except (ValueError, RecursionError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        raise EdgetlError(f"{t.host}: {clean(doc['error'])[:500]}")
    check(t, proc, what)
    if not isinstance(doc, kind):
        raise EdgetlError(f"{t.host}: the runner printed no result", fix=f"check that `{t.remote_python}` runs there")
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
        paths = [f"{remote}/{remote_name(0, model)}", f"{remote}/golden.npy"]
        copy_file(t, model.read_bytes(), paths[0], model.name)
        copy_file(t, golden_file.read_bytes(), paths[1], golden_file.name)
        return run_golden(t, runner_command(t, remote), paths[0], paths[1])
    finally:
        remove_remote_dir(t, remote)


def doctor_on_host(t: SshTarget) -> DeviceDiagnosis:
    """The device's runtimes, versions and known conflicts, from its own Python."""
    remote = make_remote_dir(t)
    try:
        words = runner_command(t, remote) + ["--doctor", "--deadline", str(t.timeout), "--stop-on-stdin-eof"]
        return DeviceDiagnosis.from_dict(runner_result(t, run_watched(t, words), "the doctor", dict), t.host)
    finally:
        remove_remote_dir(t, remote)
