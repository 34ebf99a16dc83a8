"""Multi-label datasets as people have them: a CSV of ``path,labels[,split]`` (labels separated by
``;`` or ``|``, an empty cell meaning none of the labels), and the one-hot CSV labelling tools
export (``filename,<label1>,<label2>,...`` of 0 and 1 cells; Roboflow writes one ``_classes.csv``
beside the images of each split folder).

What could be read two ways is refused with the line and the fix: a cell that is not 0 or 1, an
image listed twice with different labels, a label that is also a column name (a second header, a
shifted row)."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.runtime.task import LABEL_SEPARATORS
from edgetl.text import clean

ROBOFLOW_FILE = "_classes.csv"
"""The one-hot CSV Roboflow's multi-label export writes in each split folder."""


class Form(StrEnum):
    """How a multi-label CSV gives an image's labels."""

    LIST = "path,labels"
    """One cell of labels separated by ; or |."""
    ONE_HOT = "one-hot"
    """One 0/1 column per label."""


@dataclass
class Columns:
    """Where a multi-label CSV keeps each thing."""

    form: Form
    path: int
    labels: int | None = None
    """LIST: the labels column."""
    one_hot: tuple[int, ...] = ()
    """ONE_HOT: the label columns, in the header's order (the labels' order)."""
    split: int | None = None


def _lower(header: list[str]) -> list[str]:
    return [h.strip().lower() for h in header]


def detect(header: list[str], first: list[str] | None) -> Columns | None:
    """The multi-label form of a CSV from its header (and first row, for one-hot), or None for a
    single-label ``path,label`` CSV."""
    from edgetl.data.layouts import CSV_COLUMNS, MULTI_LABEL_COLUMNS

    low = _lower(header)
    paths = [i for i, h in enumerate(low) if h in CSV_COLUMNS["path"]]
    if len(paths) != 1 or any(h in CSV_COLUMNS["label"] for h in low):
        return None
    splits = [i for i, h in enumerate(low) if h in CSV_COLUMNS["split"]]
    split = splits[0] if len(splits) == 1 else None
    lists = [i for i, h in enumerate(low) if h in MULTI_LABEL_COLUMNS]
    if len(lists) == 1:
        return Columns(Form.LIST, paths[0], labels=lists[0], split=split)
    rest = tuple(i for i in range(len(header)) if i != paths[0] and i != split)
    # One 0/1 cell is enough to read it as one-hot: a bad cell in the first row is then refused
    # with its line and column, not as "no label column".
    if len(rest) >= 2 and first is not None and len(first) == len(header) \
            and any(first[i].strip() in ("0", "1") for i in rest):
        return Columns(Form.ONE_HOT, paths[0], one_hot=rest, split=split)
    return None


@dataclass
class Read:
    """A multi-label CSV's rows: per split ("" to split here), each file and its label names."""

    rows: dict[str, list[tuple[Path, tuple[str, ...]]]]
    labels: list[str]
    """Every label: the one-hot header's order, else sorted."""
    where: dict[Path, str]
    """Where each file was named ("data.csv line 12")."""
    repeated: list[tuple[Path, str]]
    """Files named again with the same labels (the later row is left out), with where."""


def read(path: Path, columns: Columns, forced_split: str | None = None) -> Read:
    """Every row of the CSV at ``path`` (a bad row is refused with its line and the fix)."""
    from edgetl.data.layouts import SPLIT_NAMES, open_csv, split_named

    base = path.parent.absolute()
    rows: dict[str, list[tuple[Path, tuple[str, ...]]]] = {}
    where: dict[Path, str] = {}
    labels_of: dict[Path, tuple[str, ...]] = {}
    repeated: list[tuple[Path, str]] = []
    seen: set[str] = set()
    with open_csv(path) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
            names = [h.strip() for h in header]
            columns_low = {n.lower() for n in names}
            one_hot = [names[i] for i in columns.one_hot]
            for row in reader:
                line = f"{path.name} line {reader.line_num}"
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise EdgetlError(f"{line} has {len(row)} cells, the header {len(header)}", path=path,
                                      fix="give every row one cell per column")
                file = row[columns.path].strip()
                if not file:
                    raise EdgetlError(f"{line} has an empty path", path=path, fix="name an image in every row")
                if columns.form == Form.LIST:
                    cell = row[columns.labels]
                    for sep in LABEL_SEPARATORS[1:]:
                        cell = cell.replace(sep, LABEL_SEPARATORS[0])
                    found = tuple(sorted({p.strip() for p in cell.split(LABEL_SEPARATORS[0]) if p.strip()}))
                    clash = next((x for x in found if x.lower() in columns_low), None)
                    if clash is not None:
                        raise EdgetlError(f"{line}: the label {clean(clash)!r} is also a column name: a second header "
                                          "line, or a row whose cells moved?", path=path,
                                          fix="remove the repeated header, or rename the label")
                else:
                    cells = [row[i].strip() for i in columns.one_hot]
                    bad = next((i for i, c in zip(columns.one_hot, cells) if c not in ("0", "1")), None)
                    if bad is not None:
                        raise EdgetlError(f"{line}, column {clean(names[bad])!r}: {clean(row[bad].strip())[:20]!r} is "
                                          "not 0 or 1", path=path, fix="write 1 where the label is present, 0 where not")
                    found = tuple(sorted(n for n, c in zip(one_hot, cells) if c == "1"))
                split = forced_split or ""
                if columns.split is not None and forced_split is None:
                    value = row[columns.split]
                    split = split_named(value) or ""
                    if not split:
                        raise EdgetlError(f"{line}: unknown split value {clean(value)!r}", path=path,
                                          fix="use one of " + ", ".join(n for ns in SPLIT_NAMES.values() for n in ns))
                full = Path(file) if Path(file).is_absolute() else base / file
                if full in labels_of:
                    if labels_of[full] != found:
                        raise EdgetlError(f"{line} lists {clean(file)} again with other labels ({where[full]}: "
                                          f"{', '.join(map(clean, labels_of[full])) or 'none'}; here: "
                                          f"{', '.join(map(clean, found)) or 'none'}): which is right?", path=path,
                                          fix="keep one row per image, with all its labels")
                    repeated.append((full, line))
                    continue
                labels_of[full], where[full] = found, line
                seen.update(found)
                rows.setdefault(split, []).append((full, found))
        except csv.Error as e:
            raise EdgetlError(f"not a readable CSV (line {reader.line_num}: {e})", path=path) from None
        except UnicodeDecodeError:
            raise EdgetlError("the CSV is not UTF-8 text", path=path, fix="save it as UTF-8") from None
    labels = one_hot if columns.form == Form.ONE_HOT else sorted(seen)
    return Read(rows, labels, where, repeated)


def read_split_files(folders: dict[str, Path]) -> Read:
    """Roboflow's multi-label export: a one-hot ``_classes.csv`` in each split folder, its rows
    naming the images beside it. The label columns must agree across splits."""
    from edgetl.data.layouts import open_csv

    merged = Read({}, [], {}, [])
    for split, folder in folders.items():
        path = folder / ROBOFLOW_FILE
        with open_csv(path) as f:
            reader = csv.reader(f)
            header, first = next(reader, None), next(reader, None)
        columns = detect(header or [], first)
        if columns is None or columns.form != Form.ONE_HOT:
            raise EdgetlError("not a one-hot CSV (a file column, then one 0/1 column per label)", path=path,
                              fix="export the split again as multi-label classification")
        part = read(path, columns, forced_split=split)
        if merged.labels and part.labels != merged.labels:
            raise EdgetlError(f"its label columns ({', '.join(map(clean, part.labels))}) differ from the other "
                              f"splits' ({', '.join(map(clean, merged.labels))})", path=path,
                              fix="export every split from the same project version")
        merged.labels = part.labels
        for s, rows in part.rows.items():
            merged.rows.setdefault(s, []).extend(rows)
        merged.where |= part.where
        merged.repeated += part.repeated
    return merged
