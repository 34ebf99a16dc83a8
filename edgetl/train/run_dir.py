"""Run folders: auto-named (runs/exp, runs/exp2, ...), built under a hidden in-progress name and
renamed when the run completes, so a crash never leaves a folder that looks finished."""
from __future__ import annotations

import os
from pathlib import Path

from edgetl.errors import EdgetlError

INCOMPLETE = ".incomplete"


def in_progress(final: Path) -> Path:
    """Where a run lives until it completes: runs/.exp3.incomplete for runs/exp3."""
    return final.parent / f".{final.name}{INCOMPLETE}"


def final_path(path: Path) -> Path:
    """The finished name of a run folder given either name."""
    if path.name.startswith(".") and path.name.endswith(INCOMPLETE):
        return path.parent / path.name[1: -len(INCOMPLETE)]
    return path


def new_run(project: str | Path, name: str, out: str | Path | None = None) -> Path:
    """Reserve a run folder and return its in-progress path."""
    if out is not None:
        final = Path(out)
        if final.exists() and any(final.iterdir()):
            raise EdgetlError("run folder exists and is not empty", path=final,
                              fix="choose another --out, or delete it")
    else:
        root = Path(project)
        root.mkdir(parents=True, exist_ok=True)
        taken = {final_path(p).name for p in root.iterdir()}
        n = 1
        while (f"{name}{n}" if n > 1 else name) in taken:
            n += 1
        final = root / (f"{name}{n}" if n > 1 else name)
    work = in_progress(final)
    work.mkdir(parents=True, exist_ok=False)
    return work


def resume_path(run: str | Path) -> Path:
    """The in-progress folder of an interrupted run named either way."""
    p = Path(run)
    work = in_progress(final_path(p))
    if work.is_dir():
        return work
    if final_path(p).is_dir():
        raise EdgetlError("this run already completed", path=final_path(p), fix="start a new run without --resume")
    raise EdgetlError("no interrupted run here", path=p, fix="give the folder `edgetl train` printed when it stopped")


def finish(work: Path) -> Path:
    """Rename a completed run to its final name."""
    final = final_path(work)
    if final.exists() and not any(final.iterdir()):
        final.rmdir()
    os.replace(work, final)
    return final


def latest_run(project: str | Path = "runs") -> Path:
    """The most recently finished run under ``project`` (for `edgetl export` without RUN)."""
    root = Path(project)
    runs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "model.keras").exists()] \
        if root.is_dir() else []
    if not runs:
        raise EdgetlError("no finished training run found", path=root, fix="train one with `edgetl train DATA`, or name RUN")
    return max(runs, key=lambda p: (p / "model.keras").stat().st_mtime)

