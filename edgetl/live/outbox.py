"""`live --capture DIR`: keep the frames the model doubted, to label and train on later.

A frame is kept when its answer was "unknown", when its top two scores were close, or when the
label flip-flopped over the last few frames. The outbox is bounded (a cap in files and in bytes,
the oldest dropped first) and rate-limited; a writer thread encodes and writes, so inference on a
camera never waits for the disk (a frame that finds the writer busy is counted and dropped; a file
or folder, classified frame by frame, waits instead). Each kept frame is
``<nanoseconds>_<frame>.jpg`` and a ``.json`` beside it with the scores, both written to a
temporary name and renamed, the JSON last: a pair whose JSON exists is complete. `edgetl harvest`
takes only such pairs (:mod:`edgetl.devices.harvest`)."""
from __future__ import annotations

import json
import os
import queue
import re
import stat
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from edgetl.atomic import sweep_temporaries, write_atomic
from edgetl.errors import EdgetlError
from edgetl.text import clean

NAME = re.compile(r"[0-9]{19}_[0-9]{1,12}\.(jpg|json)")
"""The only names an outbox holds: what harvest accepts from a device, and nothing else."""
QUEUE = 4
"""Frames waiting for the writer; a camera's frame beyond them is dropped, never waited for."""


@dataclass(frozen=True)
class OutboxPolicy:
    """Which frames are kept and how much the outbox may hold."""

    folder: Path
    max_files: int = 500
    """Frames kept at most (each a .jpg and its .json); the oldest go first."""
    max_bytes: int = 200_000_000
    """Bytes kept at most, both files of each frame counted."""
    min_interval_s: float = 1.0
    """At most one frame per this many seconds (a camera held on one doubtful scene would
    otherwise fill the outbox with copies of it)."""
    margin: float = 0.15
    """A frame whose top two scores are closer than this is kept."""
    flip_window: int = 5
    """A frame is kept when the label changed twice or more over this many frames."""

    def check(self) -> "OutboxPolicy":
        """One clear error for a setting that cannot work."""
        if self.max_files < 1 or self.max_bytes < 1:
            raise EdgetlError("--capture-max-files and --capture-max-mb must be positive")
        if self.min_interval_s < 0:
            raise EdgetlError("--capture-every must be 0 or more seconds")
        if self.folder.exists() and not self.folder.is_dir():
            raise EdgetlError("--capture needs a folder", path=self.folder, fix="give a folder path")
        return self


def doubt(top: list[tuple[str, float]], unknown: bool, recent: deque, margin: float,
          multi_label: bool = False) -> str | None:
    """Why a frame is doubtful (``unknown``, ``low margin``, ``near a threshold``, ``flip-flop``),
    or None. ``recent`` holds the answers of the last frames, this one last. Multi-label: a label
    whose score sits within half the margin of 0.5 (its own threshold, folded) is doubtful."""
    if unknown:
        return "unknown"
    if multi_label:
        near = next((label for label, score in top if abs(score - 0.5) < margin / 2), None)
        if near is not None:
            return "near a threshold"
    elif len(top) > 1 and top[0][1] - top[1][1] < margin:
        return "low margin"
    labels = list(recent)
    if sum(a != b for a, b in zip(labels, labels[1:])) >= 2:
        return "flip-flop"
    return None


def _check_private(folder: Path) -> None:
    """Refuse a capture folder another user owns or everyone may write to: whoever can write
    there can plant links or files among the frames this process writes and the device sends."""
    st = folder.stat()
    if st.st_uid != os.getuid():
        raise EdgetlError("the capture folder belongs to another user", path=folder,
                          fix="give a folder of your own to --capture (e.g. ~/edgetl-outbox)")
    if st.st_mode & stat.S_IWOTH:
        raise EdgetlError("everyone may write to the capture folder", path=folder,
                          fix=f"give a folder of your own to --capture, or `chmod o-w {clean(folder)}`")


@dataclass
class OutboxReport:
    """What ``--capture`` did in one run, for its summary."""

    folder: str
    kept: int
    """Frames written this run."""
    dropped: int
    """Doubtful frames not written because the writer was still busy with the previous one."""
    files: int
    """Frames in the outbox now (this run's and earlier ones')."""
    bytes: int


class Outbox:
    """The bounded folder of doubtful frames, written by a thread of its own."""

    def __init__(self, policy: OutboxPolicy, model: str, wait: bool = False):
        self.policy = policy.check()
        self.wait = wait
        """Wait for the writer instead of dropping a frame: for files and folders, which are
        classified frame by frame anyway (a camera's frames never wait)."""
        self.model = model
        self.folder = policy.folder
        self.folder.mkdir(parents=True, exist_ok=True)
        _check_private(self.folder)
        sweep_temporaries(self.folder, NAME.fullmatch)  # a killed run's half-written files
        self.kept = 0
        self.dropped = 0
        """Doubtful frames not kept because the writer was busy."""
        self._recent: deque = deque(maxlen=policy.flip_window)
        self._last = -float("inf")
        self._files: deque[tuple[str, int]] = deque(self._existing())
        self._bytes = sum(size for _, size in self._files)
        self._queue: queue.Queue = queue.Queue(QUEUE)
        self._thread = threading.Thread(target=self._write_loop, name="edgetl-outbox", daemon=True)
        self._thread.start()

    def _existing(self) -> list[tuple[str, int]]:
        """Frames already in the outbox (from an earlier run), oldest first, by stem and size."""
        sizes: dict[str, int] = {}
        for entry in os.scandir(self.folder):
            if NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                stem = entry.name.rsplit(".", 1)[0]
                sizes[stem] = sizes.get(stem, 0) + entry.stat(follow_symlinks=False).st_size
        return sorted(sizes.items())

    def offer(self, result) -> str | None:
        """Keep ``result`` (a live FrameResult) when it is doubtful and the rate allows; returns
        why it was kept, else None. Blocks only when the outbox was made to ``wait``."""
        multi = result.labels is not None
        self._recent.append(result.label if multi else result.top[0][0] if result.top else "")
        why = doubt(result.top, result.unknown, self._recent, self.policy.margin, multi)
        now = time.monotonic()
        if why is None or now - self._last < self.policy.min_interval_s:
            return None
        try:
            self._queue.put((result, why), block=self.wait)
        except queue.Full:
            self.dropped += 1
            return None
        self._last = now
        return why

    def _write_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._write(*item)
            except OSError:
                self.dropped += 1  # a full disk must not stop the classification

    def _write(self, result, why: str) -> None:
        from edgetl.image import cv2

        ok, jpeg = cv2().imencode(".jpg", result.frame, [cv2().IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            self.dropped += 1
            return
        stem = f"{time.time_ns():019d}_{result.index}"
        note = json.dumps({"model": clean(self.model), "frame": result.index, "reason": why,
                           "answer": result.label, "unknown": result.unknown,
                           **({"labels": result.labels} if result.labels is not None else {}),
                           "top": [{"label": label, "score": round(score, 5)} for label, score in result.top],
                           "captured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode()
        for suffix, data in ((".jpg", jpeg.tobytes()), (".json", note)):  # the JSON last: it marks the pair complete
            write_atomic(self.folder / f"{stem}{suffix}", data)  # never through a link planted in the folder
        self._files.append((stem, len(jpeg) + len(note)))
        self._bytes += len(jpeg) + len(note)
        self.kept += 1
        while len(self._files) > self.policy.max_files or self._bytes > self.policy.max_bytes:
            old, size = self._files.popleft()
            for suffix in (".json", ".jpg"):  # the JSON first: a half-removed pair is never complete
                (self.folder / f"{old}{suffix}").unlink(missing_ok=True)
            self._bytes -= size

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def report(self) -> "OutboxReport":
        """For the run's summary."""
        return OutboxReport(str(self.folder), self.kept, self.dropped, len(self._files), self._bytes)
