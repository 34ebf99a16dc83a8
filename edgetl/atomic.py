"""Write a file so that nobody ever sees half of it: write a temporary name beside it, then rename.

The temporary file is created with O_CREAT | O_EXCL | O_NOFOLLOW: a symlink or a file planted at
its name in a shared folder makes the write fail instead of being followed or reused. Bottom
layer: standard library only; runs on the device.
"""
from __future__ import annotations

import os
from pathlib import Path

TMP_SUFFIX = ".tmp"


def temporary_name(path: str | Path) -> Path:
    """The temporary name :func:`write_atomic` writes ``path`` under: hidden, beside it, ending
    in ``.tmp`` (what a sweep of a killed writer's leftovers looks for)."""
    p = Path(path)
    return p.with_name(f".{p.name}{TMP_SUFFIX}")


def write_atomic(path: str | Path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` through :func:`temporary_name` and a rename; returns ``path``.

    Raises FileExistsError when something already holds the temporary name (a link planted there,
    or a second writer), and OSError for the disk's own errors; the temporary file never stays.
    """
    p = Path(path)
    tmp = temporary_name(p)
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
