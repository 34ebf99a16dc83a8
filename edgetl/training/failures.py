"""How a training run ends early, and what is left: resumable after its first epoch, removed before."""
from __future__ import annotations

import errno
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.runs import RunFolder
from edgetl.training.config import Strategy, TrainConfig


class Interrupted(EdgetlError):
    """Ctrl-C or SIGTERM during training (exit 130); the run can be resumed."""

    exit_code = 130


class PeerLost(EdgetlError):
    """Another worker of a multi-worker run stopped answering."""


class DiskFull(EdgetlError):
    """No space left (or over quota) while a run was being written."""


def disk_full(e: BaseException, work: Path) -> BaseException:
    """A full disk as one line naming where (the file, else the run folder), anything else as it is."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = e.filename or work
        return DiskFull(f"no space left on the disk while writing the run ({e.strerror})", path=where)
    return e


def peer_lost(e: BaseException, cfg: TrainConfig) -> BaseException:
    """Another worker died: TensorFlow's heartbeat notices within about ten seconds and aborts the
    collective with a page of text; say it in one line (the run stays resumable)."""
    if cfg.strategy == Strategy.MULTIWORKER and type(e).__name__ in ("UnavailableError", "AbortedError"):
        text = str(e)
        which = text.split("stopped sending heartbeats):")[-1].split()[0] \
            if "stopped sending heartbeats" in text else "another worker"
        return PeerLost(f"{which} stopped answering (TensorFlow's heartbeat); training cannot go on without it")
    return e


def has_finished_epoch(work: Path) -> bool:
    return RunFolder(work).checkpoint("last").exists()
