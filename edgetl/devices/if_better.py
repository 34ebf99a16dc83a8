"""`edgetl deploy MODEL --host H --if-better`: replace what the device runs only with a model proven
better on the same images.

What the device runs is identified by the sha256 of its deployed model file, hashed there by the
device's own Python; the run that exported a file of that hash is looked up here (``--than RUN``,
else every run beside MODEL's run and in ``runs/``). Both are then scored by
:func:`edgetl.comparison.compare` on the old run's validation images. A device cannot make this
deploy anything the user did not ask for: the worst a lying device does is name a model that is
not here (refused) or one that is (judged on this machine's own files)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edgetl import runs
from edgetl.comparison import Comparison, Verdict, compare
from edgetl.devices.deploy import _DIGESTS, DEFAULT_DIR
from edgetl.errors import EdgetlError
from edgetl.remote.ssh import SshTarget, remote_command, ssh
from edgetl.runs import RunFolder
from edgetl.text import clean

logger = logging.getLogger(__name__)

_FIND = ("import os, sys\nd = sys.argv[1]\nfor n in sorted(os.listdir(d)) if os.path.isdir(d) else []:\n"
         "    if n.startswith('model.') and os.path.isfile(os.path.join(d, n)) and not os.path.islink(os.path.join(d, n)):\n"
         "        print(os.path.join(d, n)); break\n")
"""What the device runs to name its deployed model file (none: nothing deployed)."""


@dataclass
class Judgement:
    """Whether to deploy, and why."""

    deploy: bool
    reason: str
    running: str | None = None
    """The local artifact the device runs (found by its hash), when found."""
    comparison: Comparison | None = None

    def to_dict(self) -> dict:
        return {"deploy": self.deploy, "reason": self.reason, "running": self.running,
                "comparison": self.comparison.to_dict() if self.comparison else None}


def deployed_sha256(target: SshTarget, remote_dir: str = DEFAULT_DIR) -> str | None:
    """The sha256 of the model deployed in ``remote_dir`` on the device, or None when there is none."""
    found = ssh(target, remote_command(target.remote_python, "-c", _FIND, remote_dir))
    name = found.stdout.decode(errors="replace").strip()[:4096] if found.returncode == 0 else ""
    if not name:
        return None
    proc = ssh(target, remote_command(target.remote_python, "-c", _DIGESTS, name))
    digest = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise EdgetlError(f"{target.host}: could not hash the deployed model ({clean(name)[:120]})",
                          fix="check the deployment with `edgetl deploy --status`")
    return digest


def find_export(sha256: str, roots: list[Path]) -> Path | None:
    """The exported artifact with this sha256 in the export manifests of the runs under ``roots``
    (each a run folder or a folder of runs)."""
    for root in roots:
        folders = [root] if RunFolder(root).is_finished_run() else sorted(p for p in root.glob("*") if p.is_dir())
        for folder in folders:
            export = RunFolder(folder).export
            if not export.manifest.is_file():
                continue
            try:
                artifacts = export.read_manifest().artifacts
            except EdgetlError:
                continue  # a damaged manifest names no model
            for a in artifacts:
                path = export.path / Path(a.file).name
                if a.manifest.sha256 == sha256 and path.is_file():
                    return path
    return None


def judge(model: str | Path, target: SshTarget, remote_dir: str = DEFAULT_DIR, than: str | Path | None = None,
          threads: int | None = None) -> Judgement:
    """Decide whether ``model`` may replace what the device runs: yes when nothing is deployed,
    when the device already runs exactly this model (the deploy is then a no-op exchange), or when
    ``model`` is proven better; no otherwise, with the verdict's line."""
    model = Path(model)
    new_run = runs.run_of(model)
    if new_run is None:
        raise EdgetlError("--if-better needs a model of a run folder (its validation images decide)", path=model,
                          fix="deploy RUN/export/<model>")
    sha = deployed_sha256(target, remote_dir)
    if sha is None:
        return Judgement(True, "nothing is deployed there yet")
    roots = [Path(than)] if than else [new_run.parent, Path("runs")]
    running = find_export(sha, roots)
    if running is None:
        raise EdgetlError(f"{target.host} runs a model (sha256 {sha[:12]}...) that no run here exported",
                          path=roots[0], fix="give --than RUN, the run whose export is on the device")
    from edgetl.runtime.manifest import file_sha256

    if file_sha256(model) == sha:
        return Judgement(True, "the device runs this very model", str(running))
    result = compare(running, model, threads=threads)
    logger.info("%s", result.line)
    return Judgement(result.verdict == Verdict.BETTER, result.line, str(running), result)
