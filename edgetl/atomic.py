"""Write a file so that nobody ever sees half of it: write a temporary name beside it, then rename.

The temporary file is created with O_CREAT | O_EXCL | O_NOFOLLOW: a symlink or a file planted at
its name in a shared folder makes the write fail instead of being followed or reused. Bottom
layer: standard library only; runs on the device.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"


def temporary_name(path: str | Path) -> Path:
    """The temporary name :func:`write_atomic` writes ``path`` under: hidden, beside it, ending
    in ``.tmp`` (what a sweep of a killed writer's leftovers looks for)."""
    p = Path(path)
    return p.with_name(f".{p.name}{TMP_SUFFIX}")


def _clear_leftover(tmp: Path) -> None:
    """Remove what a killed writer left at ``tmp``: a file, or a folder some writers make (a
    SavedModel); a link is removed itself, never followed."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(tmp, ignore_errors=True)


def write_atomic(path: str | Path, data: bytes | str, mode: int = 0o644, *, leftover_ok: bool = False) -> Path:
    """Write ``data`` to ``path`` through :func:`temporary_name` and a rename; returns ``path``.

    Raises FileExistsError when something already holds the temporary name (a link planted there,
    or a second writer), and OSError for the disk's own errors; the temporary file never stays.
    ``leftover_ok``: in a folder only this process writes (a run folder under its lock), a file at
    the temporary name is a killed writer's and is removed first.
    """
    p = Path(path)
    tmp = temporary_name(p)
    if leftover_ok:
        _clear_leftover(tmp)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """For writers that take a name (Keras, matplotlib, numpy, a SavedModel's folder): a temporary name beside
    ``path`` with the same suffix (Keras and matplotlib read the format from it), renamed over
    ``path`` when the block ends, removed when it fails. Only for folders this process alone
    writes (a run folder under its lock, edgetl's cache): a leftover there is a killed writer's."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}{TMP_SUFFIX}{p.suffix}")
    _clear_leftover(tmp)
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException:
        _clear_leftover(tmp)
        raise


def sweep_temporaries(folder: str | Path, owned: "callable[[str], bool]") -> int:
    """Remove a killed writer's temporary files in ``folder`` whose final name ``owned`` accepts
    (never following a link: unlink removes the link itself). Returns how many went."""
    gone = 0
    for entry in os.scandir(folder):
        name = entry.name
        if name.startswith(".") and name.endswith(TMP_SUFFIX) and owned(name[1:-len(TMP_SUFFIX)]):
            try:
                os.unlink(entry.path)
                gone += 1
            except FileNotFoundError:
                pass
    return gone
