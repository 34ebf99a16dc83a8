"""Private temporary folders that a killed process does not leave behind for good.

A folder is named ``<prefix><pid>-<random>`` in the system's temporary directory. A process killed
outright (SIGKILL, the OOM killer) cannot remove its own, so the next one with the same prefix
removes those whose process is gone: export's scratch holds the calibration images and a
SavedModel, hundreds of megabytes that nothing else would ever sweep.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process holds the number: not ours to judge
        return True
    return True


def sweep_abandoned(prefix: str, root: str | Path | None = None) -> list[Path]:
    """Remove this user's ``prefix`` folders in ``root`` (the temporary directory) whose process
    has ended; returns what was removed. Never follows a link, never touches another user's."""
    root = Path(root or tempfile.gettempdir())
    pattern = re.compile(re.escape(prefix) + r"(\d+)-[^/]+")
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False) or st.st_uid != os.getuid() or _alive(int(match.group(1))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
        log.info("removed %s, left by a process that was killed", entry.path)
    return removed


@contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """A private folder (mode 0700) for the ``with`` block, removed after it; folders a killed
    process of the same ``prefix`` left are swept first."""
    sweep_abandoned(prefix)
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
