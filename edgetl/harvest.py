"""`edgetl harvest HOST`: bring a device's outbox of doubtful frames home, laid out for labelling.

Over the same SSH path as bench and deploy (OpenSSH, the user's config, BatchMode). What crosses:
a short stdlib-only Python program runs on the device with the outbox path as a quoted argument; it
opens the folder without following a symlink, reads only complete pairs whose names are an outbox's
own (:data:`edgetl.live.outbox.NAME`), each file opened without following symlinks and checked to be
a regular file, and streams them with their sizes and sha256. Here every name and size is checked
again before it is used, each image is written under a temporary name, its hash verified, then
renamed into ``DEST/unsorted/``. Only after the whole transfer, a second program removes on the
device the files that arrived intact, hashing each again first. A killed transfer leaves the
device untouched and no file here under a final name that is not complete (temporary files are
swept by the next harvest)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.live.outbox import NAME
from edgetl.remote.ssh import SshTarget, check, remote_command, ssh, stream
from edgetl.text import clean

MAX_IMAGE = 50_000_000
"""Largest image accepted from a device."""
MAX_NOTE = 65_536
"""Largest score note (the .json of a frame)."""
MAX_HEADER = 4096
GUESSES = "guesses.csv"
COLUMNS = ["file", "answer", "guess", "score", "reason", "captured", "model", "host"]

_SEND = r'''
import hashlib, json, os, re, stat, sys
name = re.compile(NAME_PATTERN)
try:
    box = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
except OSError as e:
    sys.stderr.write("cannot open the outbox %s (%s)\n" % (sys.argv[1], e.strerror)); sys.exit(3)
def read(n):
    fd = os.open(n, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=box)
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
    head = {"stem": stem, "image": len(image), "note": len(note),
            "image_sha256": hashlib.sha256(image).hexdigest(), "note_sha256": hashlib.sha256(note).hexdigest()}
    out.write(json.dumps(head).encode() + b"\n" + image + note)
    out.flush()
'''.replace("NAME_PATTERN", repr(NAME.pattern))

_REMOVE = r'''
import hashlib, json, os, re, stat, sys
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
            fd = os.open(n, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=box)
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

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"host": self.host, "folder": str(self.folder), "images": self.images, "removed": self.removed,
                "refused": self.refused}


def _read_exact(stream, n: int, sink=None) -> bytes:
    """``n`` bytes from ``stream`` (into ``sink`` when given, else returned); EOF first is an error."""
    chunks, left = [], n
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise EdgetlError("the device's stream ended in the middle of a file")
        left -= len(chunk)
        if sink is not None:
            sink(chunk)
        else:
            chunks.append(chunk)
    return b"".join(chunks)


def _header(stream) -> dict | None:
    """The next file's header line, checked; None at the end of the stream."""
    line = stream.readline(MAX_HEADER + 1)
    if not line:
        return None
    if len(line) > MAX_HEADER or not line.endswith(b"\n"):
        raise EdgetlError("the device sent a header line that is too long or cut off")
    try:
        head = json.loads(line)
    except ValueError:
        raise EdgetlError("the device sent something that is not an outbox stream") from None
    if not (isinstance(head, dict) and isinstance(head.get("stem"), str) and NAME.fullmatch(head["stem"] + ".jpg")):
        raise EdgetlError(f"the device sent a file name that is not an outbox's own: {clean(str(head)[:80])!r}")
    for key, cap in (("image", MAX_IMAGE), ("note", MAX_NOTE)):
        v = head.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= cap:
            raise EdgetlError(f"the device sent a size that is not one ({key} {clean(str(v)[:20])})")
        sha = head.get(f"{key}_sha256")
        if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            raise EdgetlError("the device sent a hash that is not one")
    return head


def _cell(value: object) -> str:
    """A CSV cell from device-supplied text: control characters removed, and a leading = + - @
    quoted away, so a spreadsheet never reads it as a formula."""
    text = clean(str(value))[:200]
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _guess_row(stem: str, note: bytes, host: str) -> list[str]:
    try:
        d = json.loads(note)
    except ValueError:
        d = {}
    d = d if isinstance(d, dict) else {}
    top = d.get("top") if isinstance(d.get("top"), list) else []
    first = top[0] if top and isinstance(top[0], dict) else {}
    score = first.get("score")
    return [f"{stem}.jpg", _cell(d.get("answer", "")), _cell(first.get("label", "")),
            f"{score:.4f}" if isinstance(score, (int, float)) and not isinstance(score, bool) else "",
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
    tmp = folder / f".{GUESSES}.tmp"
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


def harvest(target: SshTarget, outbox: str, dest: str | Path, remove: bool = True) -> HarvestResult:
    """Copy every complete frame of ``outbox`` on the device into ``dest/unsorted`` (the model's
    guess in ``dest/guesses.csv``, the scores in ``dest/scores``), then remove on the device what
    arrived intact (unless ``remove`` is False)."""
    folder = Path(dest)
    unsorted, scores = folder / "unsorted", folder / "scores"
    for d in (unsorted, scores):
        d.mkdir(parents=True, exist_ok=True)
    for stale in list(unsorted.glob(".*.tmp")) + list(scores.glob(".*.tmp")):
        stale.unlink(missing_ok=True)  # a killed harvest's partial file, never under a final name
    result = HarvestResult(target.host, folder)
    rows, arrived = [], []
    words = remote_command(target.remote_python, "-c", _SEND, outbox)
    proc = stream(target, words)
    try:
        while (head := _header(proc.stdout)) is not None:
            stem = head["stem"]
            tmp = unsorted / f".{stem}.jpg.tmp"
            digest = hashlib.sha256()
            try:
                with open(tmp, "wb") as f:
                    def sink(chunk: bytes) -> None:
                        digest.update(chunk)
                        f.write(chunk)
                    _read_exact(proc.stdout, head["image"], sink)
                note = _read_exact(proc.stdout, head["note"])
                if digest.hexdigest() != head["image_sha256"] or hashlib.sha256(note).hexdigest() != head["note_sha256"]:
                    result.refused.append(f"{stem}: arrived damaged (hash differs); left on the device")
                    continue
                (scores / f"{stem}.json").write_bytes(note)
                os.replace(tmp, unsorted / f"{stem}.jpg")
            finally:
                tmp.unlink(missing_ok=True)
            result.images.append(f"{stem}.jpg")
            rows.append(_guess_row(stem, note, target.host))
            arrived.append([stem, head["image_sha256"], head["note_sha256"]])
        proc.wait(timeout=target.timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if rows:
            _write_guesses(folder, rows)
    err = proc.stderr.read().decode(errors="replace")
    check(target, subprocess.CompletedProcess(proc.args, proc.returncode, b"", err.encode()), "reading the outbox")
    if remove and arrived:
        done = ssh(target, remote_command(target.remote_python, "-c", _REMOVE, outbox), stdin=json.dumps(arrived).encode())
        check(target, done, "removing the harvested frames")
        result.removed = int(done.stdout.decode().strip() or 0)
    return result
