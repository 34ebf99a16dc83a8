"""Dataset layouts as people download them: which folder (or CSV row) is which split and class.

Three shapes are read:
- a one-level folder, ``DATA/<class>/*`` (split here, seeded and stratified);
- split folders by their common names, ``DATA/{train,validation,test}/<class>/*`` (any of the
  names in :data:`SPLIT_NAMES`, in any letter case); without a validation folder, one is carved
  out of the training folder the same way;
- a CSV, ``path,label[,split]`` with paths relative to the CSV (Kaggle's and labelling tools' form);
- multi-label: a CSV of ``path,labels[,split]`` or a one-hot CSV, or split folders each holding a
  one-hot ``_classes.csv`` (Roboflow's export), read by :mod:`edgetl.data.multilabel_csv`.

What cannot be right is refused with the reason and the fix: two folders naming one split,
class folders that are really split or batch folders (``training/0..9``, ``2023/cats``)."""
from __future__ import annotations

import csv
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.text import clean

SPLITS = ("train", "val", "test")
ERROR, WARNING, INFO = "error", "warning", "info"

SPLIT_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation", "dev"),
    "test": ("test", "testing", "eval"),
}
"""Folder names (and CSV split values) read as each split, compared case-insensitively."""

CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "path": ("path", "filepath", "file_path", "filename", "file", "image", "image_path", "img"),
    "label": ("label", "class", "category", "class_name"),
    "split": ("split", "subset", "set", "fold"),
}
"""Header names read as each CSV column, compared case-insensitively."""
MULTI_LABEL_COLUMNS = ("labels", "tags", "classes", "label_list")
MULTI_LABEL_SEPARATORS = (";", "|")
MULTI_LABEL_FIX = ("for several labels per image, name the column 'labels' (a multi-label CSV: path,labels); "
                   "for one label per image, give each row one label")
"""A ``label`` column holding several labels is refused: one class whose name holds a ; or several
labels? Named ``labels``, the column is read as multi-label."""


def split_named(name: str) -> str | None:
    """The split a folder name or CSV value stands for ("Validation" -> "val"), or None."""
    low = name.strip().lower()
    return next((split for split, names in SPLIT_NAMES.items() if low in names), None)


def _names(split: str) -> str:
    return "/".join(SPLIT_NAMES[split])


@dataclass
class Problem:
    """One thing wrong with a file, a class or the whole folder."""

    path: str
    reason: str
    severity: str = ERROR
    scope: str = "file"
    """"file" (that file is skipped when an error) or "dataset" (a class or the folder itself)."""
    skipped: bool = False
    """The file is left out of every split (unreadable, not an image, too large, corrupt)."""
    kind: str = ""
    """What went wrong in a few words, the same for every file with this problem: the summary
    groups by it (``tiny image``), while ``reason`` names this file's details."""


@dataclass
class Layout:
    """Where a dataset's images are: per split ("" for "split here"), per class, the files."""

    kind: str
    """"folders", "splits" or "csv"."""
    files: dict[str, dict[str, list[Path]]]
    sources: dict[str, str]
    """Per split, what it is read from, in words ("validation/", "20% of train/")."""
    carve_val: bool = False
    """The validation split is carved out of the training images (there is no validation folder)."""
    problems: list[Problem] = field(default_factory=list)
    folders: dict[str, str] = field(default_factory=dict)
    """Split folders only: the folder name each split was read from."""
    rows: dict[Path, str] = field(default_factory=dict)
    """CSV only: where each file was named ("data.csv line 12"), for the audit's messages."""
    multi: dict[str, list[tuple[Path, tuple[str, ...]]]] | None = None
    """Multi-label only (``files`` is then empty): per split ("" to split here), each file and its
    labels (none: the image shows none of them)."""
    label_names: list[str] = field(default_factory=list)
    """Multi-label only: every label, in the dataset's own order."""
    form: str = ""
    """Multi-label only: how the labels were given ("path,labels", "one-hot")."""


def _visible(entries) -> list[Path]:
    return sorted(p for p in entries if not p.name.startswith((".", "_")) and p.name != "Thumbs.db")


def _listing(folder: Path, problems: list[Problem]) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError as e:
        problems.append(Problem(str(folder), f"folder cannot be read ({e.strerror}): its images are left out", WARNING,
                                kind="unreadable folder"))
        return []


def _files_under(folder: Path, problems: list[Problem]) -> list[Path]:
    """Every file below ``folder``; symlinked folders are followed once (a link loop is reported,
    not walked forever) and a folder that cannot be read is reported, never silently skipped."""
    out: list[Path] = []
    seen: set[str] = set()

    def unreadable(e: OSError) -> None:
        problems.append(Problem(str(e.filename), f"folder cannot be read ({e.strerror}): its images are left out",
                                WARNING, kind="unreadable folder"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            problems.append(Problem(dirpath, "symlinked folder already read through another path: left out", INFO,
                                    kind="symlinked folder read once"))
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        out.extend(Path(dirpath) / f for f in filenames if not f.startswith(".") and f != "Thumbs.db")
    return sorted(out)


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [p for p in _visible(folder.iterdir()) if p.is_dir()]
    except OSError:
        return []


def _direct_files(folder: Path) -> int:
    try:
        return sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError:
        return 0


def _check_not_nested_splits(where: Path, class_dirs: list[Path], class_depth: int) -> None:
    """Refuse class folders that all hold the same sub-folders (``training/0..9``, ``2023/cats``):
    those are split or batch folders, and reading them as classes would fit a model that tells
    the batches apart."""
    if class_depth != 1 or len(class_dirs) < 2:
        return
    subs = {d: {s.name for s in _subfolders(d)} for d in class_dirs}
    if not all(subs.values()):
        return
    shared = set.intersection(*subs.values())
    if len(shared) < 2 or any(len(shared) < len(s) / 2 for s in subs.values()):
        return
    direct = sum(_direct_files(d) for d in class_dirs)
    deeper = sum(_direct_files(s) for d in class_dirs for s in _subfolders(d))
    tops = ", ".join(f"{clean(d.name)}/" for d in class_dirs[:4]) + (", ..." if len(class_dirs) > 4 else "")
    inner = ", ".join(clean(n) for n in sorted(shared)[:6]) + (", ..." if len(shared) > 6 else "")
    raise EdgetlError(
        f"{tops} each hold the same sub-folders ({inner}): they look like split or batch folders, not classes "
        f"({direct} files directly inside them, {deeper} one level down)", path=where,
        fix=f"rename split folders to {_names('train')}, {_names('val')} or {_names('test')}; or, for batch "
            "folders, pass --class-depth 2 to read the classes from the sub-folders")


def _classes(folder: Path, class_depth: int, problems: list[Problem]) -> dict[str, list[Path]]:
    """{class: files} below one folder: its sub-folders are the classes (depth 1), or their
    sub-folders are, merged across the folders above them (depth 2: ``2023/cats``, ``2024/cats``)."""
    tops = [p for p in _visible(_listing(folder, problems)) if p.is_dir()]
    _check_not_nested_splits(folder, tops, class_depth)
    out: dict[str, list[Path]] = defaultdict(list)
    for top in tops:
        if class_depth == 1:
            out[top.name] = _files_under(top, problems)
            _say_nested(top, out[top.name], problems)
            continue
        loose = _direct_files(top)
        if loose:
            problems.append(Problem(str(top), f"{loose} file(s) directly in {clean(top.name)}/ are left out: with "
                                    "--class-depth 2 the classes are its sub-folders", WARNING, "dataset",
                                    kind="files above the class folders"))
        for cls in _subfolders(top):
            out[cls.name].extend(_files_under(cls, problems))
    return {c: sorted(fs) for c, fs in sorted(out.items())}


def _say_nested(class_dir: Path, files: list[Path], problems: list[Problem]) -> None:
    """An image from a sub-folder of a class folder is counted toward that class, and said so."""
    nested = [f for f in files if f.parent != class_dir]
    if not nested:
        return
    where = sorted({f.relative_to(class_dir).parts[0] for f in nested})
    names = ", ".join(f"{clean(w)}/" for w in where[:3]) + (", ..." if len(where) > 3 else "")
    problems.append(Problem(str(class_dir), f"class '{clean(class_dir.name)}': {len(nested)} of {len(files)} files are in "
                            f"its sub-folders ({names}) and are counted toward '{clean(class_dir.name)}'", INFO,
                            "dataset", kind="images in sub-folders of a class"))


def discover(root: Path, class_depth: int = 1, val_fraction: float = 0.2) -> Layout:
    """Find how ``root`` (a folder or a CSV file) is laid out; raise :class:`EdgetlError` when it
    is not a dataset or could mean two things."""
    if not root.exists():
        raise EdgetlError("no such folder or CSV file", path=root,
                          fix="give the folder that holds one sub-folder per class, or a CSV of path,label")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise EdgetlError("not a folder or a .csv file", path=root,
                              fix="give the folder that holds one sub-folder per class, or a CSV of path,label")
        return _from_csv(root, val_fraction)
    if class_depth not in (1, 2):
        raise EdgetlError("--class-depth must be 1 or 2", path=root)
    problems = [Problem(str(p), "file at the top level is ignored (images go in class folders)", INFO,
                        kind="files at the top level")
                for p in _visible(_listing(root, [])) if p.is_file()]
    subdirs = [p for p in _visible(_listing(root, problems)) if p.is_dir()]
    by_split: dict[str, list[Path]] = defaultdict(list)
    for p in subdirs:
        if (s := split_named(p.name)) is not None:
            by_split[s].append(p)
    if not by_split:
        return Layout("folders", {"": _classes(root, class_depth, problems)},
                      {"train": f"{1 - val_fraction:.0%} of each class folder",
                       "val": f"{val_fraction:.0%} of each class folder"}, problems=problems)
    for split, dirs in by_split.items():
        if len(dirs) > 1:
            raise EdgetlError(f"{' and '.join(clean(d.name) + '/' for d in dirs)} both read as the {split} split: "
                              "which one is meant?", path=root, fix="merge them, or rename or move one away")
    if "train" not in by_split:
        found = ", ".join(f"{clean(by_split[s][0].name)}/" for s in SPLITS if s in by_split)
        raise EdgetlError(f"has {found} but no training folder", path=root,
                          fix=f"name the training folder {' or '.join(SPLIT_NAMES['train'])}, "
                              "or put class folders directly in DATA")
    for p in subdirs:
        if split_named(p.name) is None:
            problems.append(Problem(str(p), f"folder beside the split folders is ignored: folders named "
                                    f"{_names('train')}, {_names('val')} or {_names('test')} are read as splits",
                                    WARNING, "dataset", kind="folder beside the split folders"))
    from edgetl.data import multilabel_csv

    if all((dirs[0] / multilabel_csv.ROBOFLOW_FILE).is_file() for dirs in by_split.values()):
        return _multi_layout(multilabel_csv.read_split_files({s: dirs[0] for s, dirs in by_split.items()}),
                             multilabel_csv.Form.ONE_HOT, val_fraction, problems, "splits",
                             {s: f"{dirs[0].name}/{multilabel_csv.ROBOFLOW_FILE}" for s, dirs in by_split.items()}, root)
    files = {split: _classes(dirs[0], class_depth, problems) for split, dirs in by_split.items()}
    sources = {split: f"{dirs[0].name}/" for split, dirs in by_split.items()}
    carve = "val" not in by_split
    if carve:
        train_dir = by_split["train"][0].name
        sources["train"] = f"{1 - val_fraction:.0%} of {train_dir}/"
        sources["val"] = f"{val_fraction:.0%} of {train_dir}/, as there is no {_names('val')} folder"
    return Layout("splits", files, sources, carve, problems, {split: dirs[0].name for split, dirs in by_split.items()})


def open_csv(path: Path):
    """A CSV file opened for ``csv.reader`` (UTF-8, a leading BOM skipped), or one error naming it."""
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise EdgetlError(f"cannot read the CSV ({e.strerror})", path=path) from None


def _csv_columns(header: list[str], path: Path) -> dict[str, int]:
    low = [h.strip().lower() for h in header]
    cols: dict[str, int] = {}
    for name, accepted in CSV_COLUMNS.items():
        hits = [i for i, h in enumerate(low) if h in accepted]
        if len(hits) > 1:
            raise EdgetlError(f"columns {', '.join(header[i] for i in hits)} could each be the {name} column", path=path,
                              fix="rename all but one")
        if hits:
            cols[name] = hits[0]
    if "label" not in cols:
        many = [header[i] for i, h in enumerate(low) if h in MULTI_LABEL_COLUMNS]
        if many:
            raise EdgetlError(f"column {clean(many[0])!r} reads as several labels per image (a multi-label CSV)",
                              path=path, fix=MULTI_LABEL_FIX)
    for need in ("path", "label"):
        if need not in cols:
            raise EdgetlError(f"no {need} column in the header ({', '.join(clean(h) for h in header[:8])})", path=path,
                              fix=f"the first line names the columns: path,label[,split] ({need} may also be "
                                  f"{'/'.join(CSV_COLUMNS[need][1:])})")
    return cols


def _from_csv(path: Path, val_fraction: float) -> Layout:
    """A CSV of ``path,label[,split]``, read row by row; a bad row is a skipped file with its reason."""
    problems: list[Problem] = []
    files: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    rows: dict[Path, str] = {}
    base = path.parent.absolute()
    with open_csv(path) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if not header:
                raise EdgetlError("the CSV is empty", path=path, fix="the first line names the columns: path,label[,split]")
            from edgetl.data import multilabel_csv

            multi = multilabel_csv.detect(header, next(reader, None))
            if multi is not None:
                return _multi_layout(multilabel_csv.read(path, multi), multi.form, val_fraction, problems, "csv",
                                     None, path)
            handle.seek(0)
            reader = csv.reader(handle)
            next(reader)
            cols = _csv_columns(header, path)
            has_split = "split" in cols
            for row in reader:
                where = f"{path.name} line {reader.line_num}"
                if not any(c.strip() for c in row):
                    continue
                if len(row) <= max(cols.values()):
                    problems.append(Problem(where, f"{len(row)} column(s), the header has {len(header)}", skipped=True,
                                            kind="CSV row with missing columns"))
                    continue
                file, label = row[cols["path"]].strip(), row[cols["label"]].strip()
                if not file:
                    problems.append(Problem(where, "empty path", skipped=True, kind="CSV row with an empty path"))
                    continue
                full = Path(file) if Path(file).is_absolute() else base / file
                if not label:
                    problems.append(Problem(str(full), f"empty label ({where})", skipped=True, kind="empty label"))
                    continue
                split = ""
                if has_split:
                    value = row[cols["split"]]
                    split = split_named(value) or ""
                    if not split:
                        problems.append(Problem(str(full), f"unknown split value {clean(value)!r} ({where}); read are "
                                                + ", ".join(n for names in SPLIT_NAMES.values() for n in names),
                                                skipped=True, kind="unknown split value"))
                        continue
                if full in rows:
                    problems.append(Problem(str(full), f"named again ({where}; first {rows[full]}): the later row is "
                                            "left out", WARNING, kind="file named twice in the CSV"))
                    continue
                if any(sep in label for sep in MULTI_LABEL_SEPARATORS):
                    raise EdgetlError(f"{where} gives several labels to one image ({clean(label)!r})", path=path,
                                      fix=MULTI_LABEL_FIX + (f"; or, if {clean(label)!r} is one class's name, "
                                                             "name it without ; or |"))
                rows[full] = where
                files[split][label].append(full)
        except csv.Error as e:
            raise EdgetlError(f"not a readable CSV (line {reader.line_num}: {e})", path=path) from None
        except UnicodeDecodeError:
            raise EdgetlError("the CSV is not UTF-8 text", path=path, fix="save it as UTF-8") from None
    _refuse_lookalike_labels({c for per in files.values() for c in per}, path)
    present = {s for s in files if files[s]}
    if has_split and present and "train" not in present:
        raise EdgetlError(f"no row has a training split value ({'/'.join(SPLIT_NAMES['train'])})", path=path,
                          fix="mark the training rows, or leave out the split column to split here")
    if not has_split or not present:
        sources = {"train": f"{1 - val_fraction:.0%} of each label's rows", "val": f"{val_fraction:.0%} of each label's rows"}
        return Layout("csv", {"": dict(files.get("", {}))}, sources, False, problems, rows=rows)
    carve = "val" not in present
    sources = {s: f"rows marked {s}" for s in present}
    if carve:
        sources["train"] = f"{1 - val_fraction:.0%} of the rows marked train"
        sources["val"] = f"{val_fraction:.0%} of the rows marked train, as no row is marked val"
    return Layout("csv", {s: dict(files[s]) for s in SPLITS if s in present}, sources, carve, problems, rows=rows)


def _multi_layout(read, form, val_fraction: float, problems: list[Problem], kind: str,
                  sources: dict[str, str] | None, where: Path) -> Layout:
    """A multi-label dataset's layout from its rows (see :mod:`edgetl.data.multilabel_csv`)."""
    _refuse_lookalike_labels(set(read.labels), where)
    for full, where in read.repeated:
        problems.append(Problem(str(full), f"named again with the same labels ({where}): the later row is left out",
                                WARNING, kind="file named twice in the CSV"))
    present = {s for s, rows in read.rows.items() if rows}
    if present and "" not in present and "train" not in present:
        raise EdgetlError("no row is in the training split", path=where,
                          fix="mark the training rows, or leave out the split column to split here")
    if sources is None:
        if "" in present or not present:
            sources = {"train": f"{1 - val_fraction:.0%} of the rows", "val": f"{val_fraction:.0%} of the rows"}
        else:
            sources = {s: f"rows marked {s}" for s in present}
    carve = bool(present) and "" not in present and "val" not in present
    if carve:
        sources["train"] = f"{1 - val_fraction:.0%} of the training rows"
        sources["val"] = f"{val_fraction:.0%} of the training rows, as none is marked val"
    return Layout(kind, {}, sources, carve, problems, rows=read.where, multi=read.rows, label_names=read.labels,
                  form=str(form))


def _refuse_lookalike_labels(labels: set[str], path: Path) -> None:
    """Labels that differ only in case or white space are one class typed two ways, or two
    classes a person cannot tell apart: either way, not something to guess."""
    groups: dict[str, list[str]] = defaultdict(list)
    for label in labels:
        groups[" ".join(label.split()).casefold()].append(label)
    clash = next((sorted(g) for g in groups.values() if len(g) > 1), None)
    if clash:
        shown = " and ".join(repr(clean(c)) for c in clash[:3])
        raise EdgetlError(f"labels {shown} differ only in letter case or white space: one class or two?", path=path,
                          fix="write each class's label the same way in every row")

