"""Where a labelled frame goes: into the dataset's own layout, under a name that never overwrites,
with its provenance recorded, and never twice.

- class folders ``DATA/<class>/``: the frame goes there;
- split folders ``DATA/<train>/<class>/``: into the training folder (the validation folder is
  the user's own choice of held-out images: a frame is never slipped into it);
- a CSV of ``path,label[,split]``: the frame goes to ``labelled/<class>/`` beside the CSV and a
  row is appended (``train`` in the split column when there is one).

"None of these" frames go to a folder outside DATA (``DATA-unknown/`` beside it by default),
because inside DATA they would be read as a class named "unknown"; that folder is what
``edgetl train --unknown`` takes.

Every placement is a hard link (a copy, fsync'ed, across file systems) made with O_EXCL
semantics: an existing file is never replaced, a crash leaves either no file or a whole one. The
dataset's provenance file (``.edgetl-provenance.jsonl``, hidden so that no layout reads it) gets
one line per placement, written with one ``write`` and fsync'ed before the frame leaves the
labelling folder."""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.atomic import write_atomic
from edgetl.data.layouts import CSV_COLUMNS, discover
from edgetl.errors import EdgetlError
from edgetl.runtime.manifest import file_sha256
from edgetl.progress import track
from edgetl.text import clean, has_control

logger = logging.getLogger(__name__)

PROVENANCE = ".edgetl-provenance.jsonl"
MAX_NAME_TRIES = 10_000


def place_file(src: Path, folder: Path, name: str) -> Path:
    """A new file in ``folder`` with ``src``'s content under ``name`` (``stem-2.jpg``, ... when
    taken), never replacing anything; returns its path. ``src`` stays where it is."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = Path(name).stem, Path(name).suffix
    for i in range(1, MAX_NAME_TRIES):
        dest = folder / (name if i == 1 else f"{stem}-{i}{suffix}")
        try:
            os.link(src, dest)  # fails when dest exists: never an overwrite
            return dest
        except FileExistsError:
            continue
        except OSError:  # another file system (or no hard links there): a whole copy, then the same link
            tmp = folder / f".{dest.name}.{os.getpid()}.tmp"
            try:
                with open(src, "rb") as a, open(tmp, "xb") as b:
                    shutil.copyfileobj(a, b)
                    b.flush()
                    os.fsync(b.fileno())
                try:
                    os.link(tmp, dest)
                    return dest
                except FileExistsError:
                    continue
            finally:
                tmp.unlink(missing_ok=True)
    raise EdgetlError(f"{MAX_NAME_TRIES} files named like {name} already", path=folder)


def append_line(path: Path, line: str) -> None:
    """Append one line with a single write, fsync'ed: after a crash the file ends with whole lines
    (readers skip a torn last one)."""
    data = line.rstrip("\n") + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        if os.fstat(fd).st_size and not _ends_with_newline(path):
            data = "\n" + data
        os.write(fd, data.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) in (b"\n", b"\r")


def read_lines(path: Path) -> list[dict]:
    """The JSON lines of ``path`` (a torn or foreign line is skipped)."""
    out = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict):
            out.append(d)
    return out


@dataclass
class Placed:
    """A frame placed in the dataset (what undo takes back)."""

    path: Path
    label: str
    csv_row: list[str] | None = None


@dataclass
class Dataset:
    """The dataset frames are labelled into."""

    root: Path
    kind: str
    """"folders", "splits" or "csv"."""
    classes: list[str]
    unknown_folder: Path
    train_folder: Path | None = None
    """Split folders: the training folder new frames go into."""
    csv_columns: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)
    """sha256 -> a file of the dataset with that content (a frame already there is not added)."""

    @property
    def provenance(self) -> Path:
        """The dataset's provenance file."""
        return (self.root.parent if self.kind == "csv" else self.root) / PROVENANCE

    def class_folder(self, label: str) -> Path:
        """The folder a frame of ``label`` goes into."""
        if self.kind == "csv":
            return self.root.parent / "labelled" / label
        return (self.train_folder or self.root) / label

    def place(self, src: Path, label: str, record: dict) -> Placed:
        """Put ``src`` in the dataset as ``label`` (a class, or "" for none of these) and record
        where it came from; raises when the content is already in the dataset."""
        sha = record.get("sha256", "")
        if label and sha in self.hashes:
            raise EdgetlError(f"already in the dataset as {self.hashes[sha]}", path=src)
        folder = self.class_folder(label) if label else self.unknown_folder
        dest = place_file(src, folder, src.name)
        row = None
        if label and self.kind == "csv":
            row = self._csv_row(dest, label)
            append_line(self.root, _csv_text(row))
        append_line(self.provenance, json.dumps({"file": str(dest), "label": label or None, "time": _now(),
                                                 "source": str(src)} | record))
        if label:
            self.hashes[sha] = str(dest)
        return Placed(dest, label, row)

    def take_back(self, placed: Placed, to: Path, sha: str) -> Path:
        """Undo :meth:`place`: the file goes back to ``to`` (never over another), its CSV row and its
        hash go, the provenance file says it was undone."""
        if placed.csv_row is not None:
            self._remove_csv_row(placed.csv_row)
        back = place_file(placed.path, to.parent, to.name)
        placed.path.unlink()
        if self.hashes.get(sha) == str(placed.path):
            del self.hashes[sha]
        append_line(self.provenance, json.dumps({"file": str(placed.path), "undone": True, "time": _now(),
                                                 "back_to": str(back)}))
        return back

    def _csv_row(self, dest: Path, label: str) -> list[str]:
        row = [""] * len(self.csv_columns)
        low = [c.strip().lower() for c in self.csv_columns]
        for name, value in (("path", os.path.relpath(dest, self.root.parent)), ("label", label), ("split", "train")):
            hit = next((i for i, c in enumerate(low) if c in CSV_COLUMNS[name]), None)
            if hit is not None:
                row[hit] = value
        return row

    def _remove_csv_row(self, row: list[str]) -> None:
        text = self.root.read_text(encoding="utf-8-sig")
        target = _csv_text(row)
        lines = text.splitlines(keepends=True)
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].rstrip("\r\n") == target:
                del lines[i]
                break
        write_atomic(self.root, "".join(lines))


def _csv_text(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def check_folder_names(classes: list[str], root: Path) -> None:
    """Every class must be able to name a folder of its own: a label such as ``../x`` or ``a/b``
    would put frames outside the dataset."""
    for c in classes:
        if c in ("", ".", "..") or "/" in c or "\\" in c or has_control(c) or c.startswith("."):
            raise EdgetlError(f"class {clean(c)!r} cannot be a folder name, so frames cannot be filed under it",
                              path=root, fix="rename the class (in the run: retrain with DATA's folder renamed)")


def open_dataset(data: str | Path, classes: list[str] | None = None, unknown: str | Path | None = None) -> Dataset:
    """The dataset at ``data`` (created as class folders when it does not exist yet and
    ``classes`` are given), its classes (``classes`` when given: a run's, then any DATA has
    beside them), and the hash of every image in it, read in blocks."""
    root = Path(data).absolute()
    unknown_folder = Path(unknown).absolute() if unknown else root.with_name(f"{root.stem}-unknown")
    if not root.exists():
        if not classes:
            raise EdgetlError("no such dataset, and no run to take the classes from", path=root,
                              fix="give --run RUN (its classes become DATA's folders), or an existing DATA")
        check_folder_names(classes, root)
        return Dataset(root, "folders", list(classes), unknown_folder)
    layout = discover(root)
    if layout.multi is not None:
        raise EdgetlError("a multi-label dataset: the labelling page files each frame into one class", path=root,
                          fix="label into a single-label dataset (--into DIR), or add rows to the multi-label CSV yourself")
    found = sorted({c for per in layout.files.values() for c in per})
    wanted = list(classes or []) + [c for c in found if c not in (classes or [])]
    if not wanted:
        raise EdgetlError("no classes in the dataset", path=root, fix="give --run RUN to take its classes")
    check_folder_names(wanted, root)
    ds = Dataset(root, layout.kind, wanted, unknown_folder)
    if layout.kind == "splits":
        train = layout.folders["train"]
        ds.train_folder = root / train
    if layout.kind == "csv":
        with open(root, newline="", encoding="utf-8-sig") as f:
            ds.csv_columns = next(csv.reader(f))
    files = [p for per in layout.files.values() for fs in per.values() for p in fs]
    for p in track(files, "Hashing the dataset", total=len(files)):
        try:
            ds.hashes.setdefault(file_sha256(p), str(p))
        except OSError:
            continue  # data check names unreadable files; here they only cannot be duplicates
    logger.info("%s: %s layout, %d classes, %d images", clean(str(root)), layout.kind, len(wanted), len(ds.hashes))
    return ds


