"""`edgetl harvest HOST`: bring a device's outbox of doubtful frames home, laid out for labelling.

Over the same SSH path as bench and deploy (OpenSSH, the user's config, BatchMode). What crosses:
a short stdlib-only Python program runs on the device with the outbox path as a quoted argument; it
opens the folder without following a symlink, reads only complete pairs whose names are an outbox's
own (:data:`edgetl.live.outbox.NAME`), each file opened without following symlinks and checked to be
a regular file (a FIFO is opened without waiting for a writer), and streams them with their sizes
and sha256; it ends itself after --timeout. Here every name and size is checked again before it
is used, the stream is read with deadlines (a silent device stops the harvest, a chatty stderr is
drained), frames and bytes are capped (:class:`HarvestLimits`), each image's hash is verified and
it is written under a temporary name and renamed into ``DEST/unsorted/``, never over a different
frame of the same name. Only after the whole transfer, a second program removes on the device the
files that arrived intact, hashing each again first. A killed transfer leaves the device untouched
and no file here under a final name that is not complete (temporary files are
swept by the next harvest)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import select
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.atomic import sweep_temporaries, write_atomic
from edgetl.errors import EdgetlError
from edgetl.live.outbox import NAME
from edgetl.remote.ssh import SshTarget, check, remote_command, ssh, stream
from edgetl.runtime.manifest import file_sha256
from edgetl.text import clean, csv_cell, device_count, finite_number, shown

MAX_IMAGE = 50_000_000
"""Largest image accepted from a device."""
MAX_NOTE = 65_536
"""Largest score note (the .json of a frame)."""
MAX_HEADER = 4096
GUESSES = "guesses.csv"
COLUMNS = ["file", "answer", "guess", "score", "reason", "captured", "model", "host"]

_SEND = r'''
import hashlib, json, os, re, signal, stat, sys
# Ends itself when the host has given up: nothing here may outlive the harvest.
signal.alarm(max(1, int(float(sys.argv[2]))))
name = re.compile(NAME_PATTERN)
frames_left, bytes_left = int(sys.argv[3]), int(sys.argv[4])
try:
    box = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
except OSError as e:
    sys.stderr.write("cannot open the outbox %s (%s)\n" % (sys.argv[1], e.strerror)); sys.exit(3)
def read(n):
    # O_NONBLOCK: opening a FIFO named like a frame returns at once instead of waiting for a writer
    fd = os.open(n, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=box)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)
out = sys.stdout.buffer
for n in sorted(os.listdir(box)):
    if not (name.fullmatch(n) and n.endswith(".json")):
        continue
    stem = n[:-5]
    try:
        note, image = read(n), read(stem + ".jpg")
    except OSError:
        continue
    if note is None or image is None:
        continue
    frames_left -= 1; bytes_left -= len(image) + len(note)
    if frames_left < 0 or bytes_left < 0:
        break
    head = {"stem": stem, "image": len(image), "note": len(note),
            "image_sha256": hashlib.sha256(image).hexdigest(), "note_sha256": hashlib.sha256(note).hexdigest()}
    out.write(json.dumps(head).encode() + b"\n" + image + note)
    out.flush()
'''.replace("NAME_PATTERN", repr(NAME.pattern))

_REMOVE = r'''
import hashlib, json, os, re, signal, stat, sys
signal.alarm(max(1, int(float(sys.argv[2]))))
name = re.compile(NAME_PATTERN)
box = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
removed = 0
for stem, image_sha, note_sha in json.load(sys.stdin):
    pair = [(stem + ".json", note_sha), (stem + ".jpg", image_sha)]
    ok = True
    for n, sha in pair:
        if not name.fullmatch(n):
            ok = False; break
        try:
            fd = os.open(n, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=box)
        except OSError:
            ok = False; break
        with os.fdopen(fd, "rb") as f:
            ok = stat.S_ISREG(os.fstat(f.fileno()).st_mode) and hashlib.sha256(f.read()).hexdigest() == sha
        if not ok:
            break
    if ok:
        for n, _ in pair:  # the note first: a half-removed pair is never taken for a complete one
            os.unlink(n, dir_fd=box)
        removed += 1
print(removed)
'''.replace("NAME_PATTERN", repr(NAME.pattern))


@dataclass(frozen=True)
class HarvestLimits:
    """How much one harvest takes at the most: a device decides what it sends, so the workstation
    bounds what it writes. The outbox itself never holds more than 500 frames / 200 MB (live's
    caps), so a harvest of a device that plays fair is never cut; the rest of a larger one stays
    on the device for the next harvest."""

    frames: int = 500
    bytes: int = 200_000_000
    silence_s: float = 60.0
    """The longest the device may send nothing before the harvest stops (``timeout`` bounds the whole)."""

    def check(self) -> "HarvestLimits":
        """Itself, or one clear error naming the bad cap."""
        if self.frames < 1 or self.bytes < 1 or self.silence_s <= 0:
            raise EdgetlError("harvest caps must be positive", fix="give --max-frames and --max-mb of at least 1")
        return self


@dataclass
class HarvestResult:
    """What came home."""

    host: str
    folder: Path
    images: list[str] = field(default_factory=list)
    """Files written to ``folder/unsorted`` (names)."""
    removed: int = 0
    """Frames removed from the device's outbox (each arrived intact)."""
    refused: list[str] = field(default_factory=list)
    """What the device sent that was not taken, with the reason."""
    capped: str | None = None
    """Set when the harvest stopped at a cap (what the cap was); the rest stays on the device."""

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"host": self.host, "folder": str(self.folder), "images": self.images, "removed": self.removed,
                "refused": self.refused, "capped": self.capped}


def default_folder(host: str) -> Path:
    """Where ``edgetl harvest HOST`` puts the frames: ``harvest/<host as a plain folder name>``.
    Anything but letters, digits and ``._-`` becomes ``_``, and a name that starts with a dot
    (``.``, ``..``) gets a ``_`` in front, so no host name points outside ``harvest/``."""
    name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in host) or "_"
    return Path("harvest") / ("_" + name if name.startswith(".") else name)


class _DeviceStream:
    """The device's output, read with deadlines: at most ``silence`` seconds without a byte, and
    all of it by ``deadline`` (time.monotonic). A device that stops sending ends the harvest with
    one clear error instead of holding it for ever."""

    def __init__(self, fd: int, host: str, silence: float, deadline: float):
        self.fd, self.host, self.silence, self.deadline = fd, host, silence, deadline
        self.buf = bytearray()

    def _more(self) -> bytes:
        wait = min(self.silence, self.deadline - time.monotonic())
        if wait <= 0:
            raise EdgetlError(f"{self.host}: the harvest did not finish within its --timeout; stopped",
                              fix="give a longer --timeout, or harvest again for the rest")
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            raise EdgetlError(f"{self.host}: the device sent nothing for {wait:.0f} s; harvest stopped",
                              fix="check the device and its outbox, then harvest again")
        return os.read(self.fd, 1 << 20)

    def readline(self, limit: int) -> bytes:
        """The next line with its newline, at most ``limit + 1`` bytes (longer: the caller refuses it); b"" at the end."""
        while True:
            i = self.buf.find(b"\n", 0, limit + 1)
            if i >= 0 or len(self.buf) > limit:
                end = i + 1 if i >= 0 else limit + 1
                line = bytes(self.buf[:end])
                del self.buf[:end]
                return line
            chunk = self._more()
            if not chunk:
                line = bytes(self.buf)
                self.buf.clear()
                return line
            self.buf += chunk

    def read_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes; the stream ending first is an error."""
        while len(self.buf) < n:
            chunk = self._more()
            if not chunk:
                raise EdgetlError("the device's stream ended in the middle of a file")
            self.buf += chunk
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data


class _Drain(threading.Thread):
    """Reads the device's stderr as it comes, keeping the first 64 KiB: a device that writes more
    to stderr than a pipe holds would otherwise stop, its output waiting for a reader."""

    KEEP = 65_536

    def __init__(self, pipe):
        super().__init__(name="edgetl-harvest-stderr", daemon=True)
        self.pipe, self.kept = pipe, bytearray()

    def run(self) -> None:
        while chunk := self.pipe.read1(1 << 16):
            if len(self.kept) < self.KEEP:
                self.kept += chunk[: self.KEEP - len(self.kept)]


def _header(stream: _DeviceStream) -> dict | None:
    """The next file's header line, checked; None at the end of the stream."""
    line = stream.readline(MAX_HEADER)
    if not line:
        return None
    if len(line) > MAX_HEADER or not line.endswith(b"\n"):
        raise EdgetlError("the device sent a header line that is too long or cut off")
    try:
        head = json.loads(line)
    except (ValueError, RecursionError):
        raise EdgetlError("the device sent something that is not an outbox stream") from None
    if not (isinstance(head, dict) and isinstance(head.get("stem"), str) and NAME.fullmatch(head["stem"] + ".jpg")):
        raise EdgetlError(f"the device sent a file name that is not an outbox's own: {shown(head, 80)}")
    for key, cap in (("image", MAX_IMAGE), ("note", MAX_NOTE)):
        v = head.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= cap:
            raise EdgetlError(f"the device sent a size that is not one ({key} {shown(v, 20)})")
        sha = head.get(f"{key}_sha256")
        if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            raise EdgetlError("the device sent a hash that is not one")
    return head


def _cell(value: object) -> str:
    """A CSV cell from device-supplied text: control characters removed, and a leading = + - @
    quoted away, so a spreadsheet never reads it as a formula."""
    return csv_cell(clean(str(value))[:200])


def _guess_row(stem: str, note: bytes, host: str) -> list[str]:
    try:
        d = json.loads(note)
    except (ValueError, RecursionError):  # a note nested 60,000 deep is no note: the frame still comes home
        d = {}
    d = d if isinstance(d, dict) else {}
    top = d.get("top") if isinstance(d.get("top"), list) else []
    first = top[0] if top and isinstance(top[0], dict) else {}
    score = finite_number(first.get("score"))
    return [f"{stem}.jpg", _cell(d.get("answer", "")), _cell(first.get("label", "")),
            f"{score:.4f}" if score is not None else "",
            _cell(d.get("reason", "")), _cell(d.get("captured", "")), _cell(d.get("model", "")), _cell(host)]


def _write_guesses(folder: Path, rows: list[list[str]]) -> None:
    """Add ``rows`` to folder/guesses.csv (replacing a row of the same file), rewritten whole under
    a temporary name and renamed."""
    path = folder / GUESSES
    new = {row[0] for row in rows}
    # a frame taken again (a harvest stopped before its removal step) keeps one row, the newest
    old = [r for r in csv.reader(io.StringIO(path.read_text(encoding="utf-8")))][1:] if path.exists() else []
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerows(r for r in old if r and r[0] not in new)
    writer.writerows(rows)
    write_atomic(path, buf.getvalue())


def harvest(target: SshTarget, outbox: str, dest: str | Path, remove: bool = True,
            limits: HarvestLimits | None = None) -> HarvestResult:
    """Copy the complete frames of ``outbox`` on the device into ``dest/unsorted`` (the model's
    guess in ``dest/guesses.csv``, the scores in ``dest/scores``), then remove on the device what
    arrived intact (unless ``remove`` is False).

    Args:
        target: the device.
        outbox: the device's ``live --capture`` folder.
        dest: the folder here; nothing is written outside it.
        remove: remove what arrived intact from the device.
        limits: frames and bytes one harvest takes at most (default :class:`HarvestLimits`);
            ``target.timeout`` bounds the whole transfer.

    Returns:
        What came home, what was refused and why, and whether a cap stopped it.

    Raises:
        EdgetlError: the device could not be reached, sent something that is not an outbox
            stream, or stopped sending.
    """
    limits = (limits or HarvestLimits()).check()
    folder = Path(dest)
    unsorted, scores = folder / "unsorted", folder / "scores"
    for d in (unsorted, scores):
        d.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(d, NAME.fullmatch)  # a killed harvest's partial file, never under a final name
    result = HarvestResult(target.host, folder)
    rows, arrived, seen, taken = [], [], set(), 0
    words = remote_command(target.remote_python, "-c", _SEND, outbox, str(target.timeout), str(limits.frames),
                           str(limits.bytes))
    proc = stream(target, words)
    drain = _Drain(proc.stderr)
    drain.start()
    device = _DeviceStream(proc.stdout.fileno(), target.host, limits.silence_s, time.monotonic() + target.timeout)
    try:
        while (head := _header(device)) is not None:
            stem, size = head["stem"], head["image"] + head["note"]
            if len(seen) >= limits.frames or taken + size > limits.bytes:
                result.capped = (f"{limits.frames} frames" if len(seen) >= limits.frames
                                 else f"{limits.bytes / 1e6:.0f} MB")
                break  # the rest stays on the device, for the next harvest
            taken += size
            image, note = device.read_exact(head["image"]), device.read_exact(head["note"])
            if stem in seen:
                result.refused.append(f"{stem}: sent twice in one harvest; the first copy kept")
                continue
            seen.add(stem)
            if hashlib.sha256(image).hexdigest() != head["image_sha256"] or \
                    hashlib.sha256(note).hexdigest() != head["note_sha256"]:
                result.refused.append(f"{stem}: arrived damaged (hash differs); left on the device")
                continue
            final = unsorted / f"{stem}.jpg"
            if final.exists() and file_sha256(final) != head["image_sha256"]:
                result.refused.append(f"{stem}: a different frame of that name is already in {unsorted}; "
                                      "left on the device")
                continue
            write_atomic(scores / f"{stem}.json", note)
            write_atomic(final, image)
            result.images.append(final.name)
            rows.append(_guess_row(stem, note, target.host))
            arrived.append([stem, head["image_sha256"], head["note_sha256"]])
        if result.capped is None:
            proc.wait(timeout=max(1.0, device.deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drain.join(timeout=5)
        if rows:
            _write_guesses(folder, rows)
    if result.capped is None:
        check(target, subprocess.CompletedProcess(proc.args, proc.returncode, b"", bytes(drain.kept)), "reading the outbox")
    if remove and arrived:
        done = ssh(target, remote_command(target.remote_python, "-c", _REMOVE, outbox, str(target.timeout)),
                   stdin=json.dumps(arrived).encode())
        check(target, done, "removing the harvested frames")
        result.removed = device_count(done.stdout.decode(errors="replace").strip(), digits=8) or 0
    return result
