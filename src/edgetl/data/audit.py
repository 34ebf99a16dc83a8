"""Audit a photo folder: find the classes and splits, decode every file, explain every problem."""
from __future__ import annotations

import hashlib
import json
import os
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgetl.console import track
from edgetl.data.cache import decode_workers
from edgetl.errors import EdgetlError
from edgetl.image import IMAGE_EXTENSIONS, DecodeError, TooLarge, decode_bytes, is_supported, looks_truncated, max_pixels, read_file, sniff
from edgetl.text import clean, has_control

SPLITS = ("train", "val", "test")
ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass
class AuditOptions:
    """How strict the audit is and how a one-level folder is split."""

    val_split: float = 0.2
    """Fraction of each class held out for validation when DATA has no train/ val/ folders."""
    seed: int = 0
    """Seed of the stratified split."""
    min_side: int = 32
    """Images whose shorter side is below this are reported (warning)."""
    imbalance_ratio: float = 3.0
    """Largest/smallest class count above which imbalance is reported (warning)."""
    min_per_class: int = 2
    """A class needs this many usable images to be split into train and val."""
    max_pixels: int = field(default_factory=max_pixels)
    """Images whose header claims more pixels are refused before decoding (decompression bombs)."""


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


@dataclass
class ImageRecord:
    """An image the audit accepted."""

    path: str
    label: int
    split: str
    width: int
    height: int
    sha256: str = field(repr=False, default="")


@dataclass
class Audit:
    """The result of :func:`audit`: classes, accepted images per split, and problems."""

    root: str
    layout: str
    classes: list[str]
    records: list[ImageRecord]
    problems: list[Problem]
    scanned: int = 0

    def split(self, name: str) -> list[ImageRecord]:
        """Accepted images of one split ("train", "val" or "test")."""
        return [r for r in self.records if r.split == name]

    @property
    def splits(self) -> list[str]:
        """Splits that hold images, in train/val/test order."""
        present = {r.split for r in self.records}
        return [s for s in SPLITS if s in present]

    def counts(self) -> dict[str, dict[str, int]]:
        """{class: {split: count}} over accepted images."""
        table = {c: {s: 0 for s in self.splits} for c in self.classes}
        for r in self.records:
            table[self.classes[r.label]][r.split] += 1
        return table

    @property
    def errors(self) -> list[Problem]:
        """Problems that make the folder unusable for training (class or layout level)."""
        return [p for p in self.problems if p.severity == ERROR and p.scope == "dataset"]

    @property
    def skipped(self) -> list[Problem]:
        """Files that were left out, each with its reason."""
        return [p for p in self.problems if p.skipped]

    @property
    def clean(self) -> bool:
        """No errors and no warnings (info notes do not count)."""
        return not any(p.severity in (ERROR, WARNING) for p in self.problems)

    def size_stats(self) -> dict[str, dict[str, float]]:
        """Min, median and max of image widths and heights."""
        if not self.records:
            return {}
        w = np.array([r.width for r in self.records])
        h = np.array([r.height for r in self.records])
        return {k: {"min": int(v.min()), "median": float(np.median(v)), "max": int(v.max())}
                for k, v in (("width", w), ("height", h))}

    def require_trainable(self) -> None:
        """Raise :class:`EdgetlError` naming the first problem that makes training impossible."""
        if self.errors:
            p = self.errors[0]
            raise EdgetlError(p.reason, path=p.path)
        for s in ("train", "val"):
            if s not in self.splits:
                raise EdgetlError(f"no usable images in the {s} split", path=self.root,
                                  fix="run `edgetl data check` to see why each file was rejected")

    def to_dict(self) -> dict:
        """JSON-ready summary: classes with counts, problems, image sizes."""
        return {
            "root": self.root, "layout": self.layout, "classes": self.counts(),
            "images": len(self.records), "scanned": self.scanned,
            "sizes": self.size_stats(), "problems": [asdict(p) for p in self.problems],
            "clean": self.clean,
        }

    def save(self, path: str | Path) -> None:
        """Write the accepted file list and problems, for later stages and for people."""
        data = self.to_dict() | {"class_names": self.classes, "records": [asdict(r) for r in self.records]}
        Path(path).write_text(json.dumps(data, indent=1))

    @classmethod
    def load_file(cls, path: str | Path) -> "Audit":
        """Read what :meth:`save` wrote."""
        d = json.loads(Path(path).read_text())
        return cls(root=d["root"], layout=d["layout"], classes=d["class_names"],
                   records=[ImageRecord(**r) for r in d["records"]],
                   problems=[Problem(**p) for p in d["problems"]], scanned=d.get("scanned", 0))


@dataclass
class _FileCheck:
    path: Path
    problems: list[Problem]
    width: int = 0
    height: int = 0
    sha256: str = ""

    @property
    def ok(self) -> bool:
        """Decoded and usable: only such files become records (a skipped non-image never does)."""
        return bool(self.sha256) and not any(p.severity == ERROR for p in self.problems)


def _visible(entries) -> list[Path]:
    return sorted(p for p in entries if not p.name.startswith((".", "_")) and p.name != "Thumbs.db")


def _check_file(path: Path, opts: AuditOptions) -> _FileCheck:
    """Everything that can be wrong with one file, without raising."""
    check = _FileCheck(path, [])

    def add(reason: str, severity: str = ERROR) -> None:
        check.problems.append(Problem(str(path), reason, severity))

    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        add(f"skipped: not an image extension ({ext or 'none'}); edgetl reads {', '.join(sorted(IMAGE_EXTENSIONS))}",
            WARNING)
        return check
    try:
        data = read_file(path)
    except DecodeError as e:
        add(f"unreadable: {e}")
        return check
    if not data:
        add("empty file (0 bytes)")
        return check
    fmt = sniff(data[:16])
    if fmt is None:
        kind = "text" if all(32 <= b < 127 or b in (9, 10, 13) for b in data[:256]) else "unknown binary data"
        add(f"not an image: the content is {kind} despite the {ext} extension")
        return check
    if not is_supported(fmt):
        add(f"unsupported format {fmt} (named {ext}); convert it to jpg or png")
        return check
    if looks_truncated(fmt, data):
        add(f"truncated {fmt.upper()}: the file ends before its end marker")
        return check
    try:
        img = decode_bytes(data, opts.max_pixels)
    except TooLarge as e:
        add(f"too large: {e}")
        return check
    except DecodeError:
        add(f"corrupt {fmt.upper()}: it cannot be decoded")
        return check
    check.height, check.width = img.shape[:2]
    check.sha256 = hashlib.sha256(data).hexdigest()
    if fmt != IMAGE_EXTENSIONS[ext]:
        add(f"a {fmt.upper()} file with a {ext} extension (read fine)", INFO)
    if fmt == "gif":
        add("GIF: the first frame is used", INFO)
    if min(check.height, check.width) < opts.min_side:
        add(f"tiny image {check.width}x{check.height} (under {opts.min_side} px): probably a thumbnail or icon",
            WARNING)
    flat = _flat_fraction(img)
    if flat > 0.93:
        add(f"{flat:.0%} of the image is one flat colour: a placeholder or blank image?", WARNING)
    return check


def _flat_fraction(img: np.ndarray) -> float:
    """Share of pixels within a few levels of the most common colour (real photos stay well below)."""
    small = img[:: max(1, img.shape[0] // 64), :: max(1, img.shape[1] // 64)].reshape(-1, 3).astype(np.int16)
    q = small // 8
    keys, counts = np.unique(q[:, 0] * 1024 + q[:, 1] * 32 + q[:, 2], return_counts=True)
    mode = keys[counts.argmax()]
    centre = np.array([mode // 1024, (mode // 32) % 32, mode % 32]) * 8 + 4
    return float((np.abs(small - centre).max(axis=1) <= 8).mean())


def _discover(root: Path) -> tuple[str, dict[str, dict[str, list[Path]]], list[Problem]]:
    """Find the layout and the files per (split, class); splits are "" for a one-level folder."""
    if not root.exists():
        raise EdgetlError("no such folder", path=root, fix="give the folder that holds one sub-folder per class")
    if not root.is_dir():
        raise EdgetlError("not a folder", path=root, fix="give the folder that holds one sub-folder per class")
    subdirs = [p for p in _visible(root.iterdir()) if p.is_dir()]
    problems = [Problem(str(p), "file at the top level is ignored (images go in class folders)", INFO)
                for p in _visible(root.iterdir()) if p.is_file()]
    split_dirs = [p for p in subdirs if p.name.lower() in SPLITS]
    if split_dirs:
        if "train" not in {p.name.lower() for p in split_dirs}:
            raise EdgetlError("has val/ or test/ but no train/ folder", path=root,
                              fix="add DATA/train/<class>/ folders, or put class folders directly in DATA")
        layout = "splits"
        for p in subdirs:
            if p not in split_dirs:
                problems.append(Problem(str(p), "folder beside train/ val/ test/ is ignored", WARNING, "dataset"))
        files = {p.name.lower(): {c.name: _files_under(c, problems) for c in _visible(_listing(p, problems))
                                  if c.is_dir()} for p in split_dirs}
    else:
        layout = "folders"
        files = {"": {c.name: _files_under(c, problems) for c in subdirs}}
    return layout, files, problems


def _listing(folder: Path, problems: list[Problem]) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError as e:
        problems.append(Problem(str(folder), f"folder cannot be read ({e.strerror}): its images are left out", WARNING))
        return []


def _files_under(folder: Path, problems: list[Problem]) -> list[Path]:
    """Every file below ``folder``; symlinked folders are followed once (a link loop is reported,
    not walked forever) and a folder that cannot be read is reported, never silently skipped."""
    out: list[Path] = []
    seen: set[str] = set()

    def unreadable(e: OSError) -> None:
        problems.append(Problem(str(e.filename), f"folder cannot be read ({e.strerror}): its images are left out", WARNING))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            problems.append(Problem(dirpath, "symlinked folder already read through another path: left out", INFO))
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        out.extend(Path(dirpath) / f for f in filenames if not f.startswith(".") and f != "Thumbs.db")
    return sorted(out)


def audit(root: str | Path, options: AuditOptions | None = None, workers: int | None = None) -> Audit:
    """Audit DATA: either ``DATA/<class>/*`` (split here, stratified and seeded) or
    ``DATA/{train,val[,test]}/<class>/*``. Never raises for a bad file; raises
    :class:`EdgetlError` only when DATA itself is not a dataset folder."""
    opts = options or AuditOptions()
    root = Path(root).absolute()  # later stages read these paths from any working directory
    layout, files, problems = _discover(root)
    classes = sorted({c for per_split in files.values() for c in per_split})
    if not classes:
        raise EdgetlError("no class folders found", path=root,
                          fix="put images in DATA/<class>/ or DATA/train/<class>/ folders")
    named = [c for c in classes if has_control(c)]
    for c in named:  # a newline in a class name would shift every label after it in labels.txt
        problems.append(Problem(str(root / c), f"class folder name {clean(c)!r} holds a control character "
                                "(newline, tab, escape): rename the folder", scope="dataset"))
    todo = [(s, c, f) for s, per in files.items() for c, fs in per.items() for f in fs]
    with ThreadPoolExecutor(workers or decode_workers()) as pool:
        checks = list(track(pool.map(lambda t: _check_file(t[2], opts), todo),
                            "Checking images", total=len(todo)))
    good: dict[tuple[str, str], list[_FileCheck]] = defaultdict(list)
    for (split, cls, _), check in zip(todo, checks):
        if not check.ok:
            check.problems[0].skipped = True
        problems.extend(check.problems)
        if check.ok:
            good[(split, cls)].append(check)

    records: list[ImageRecord] = []
    label = {c: i for i, c in enumerate(classes)}
    class_dir = (lambda s, c: root / c) if layout == "folders" else (lambda s, c: root / s / c)
    if len(classes) < 2:
        problems.append(Problem(str(root), f"only one class ({classes[0]}): a classifier needs at least 2 class "
                                "folders", scope="dataset"))
    if layout == "folders":
        rng = random.Random(opts.seed)
        for c in classes:
            items = good.get(("", c), [])
            if not items:
                problems.append(Problem(str(class_dir("", c)), f"class '{c}' has no usable images: add images or remove the folder",
                                        scope="dataset"))
                continue
            if len(items) < opts.min_per_class:
                problems.append(Problem(str(class_dir("", c)), f"class '{c}' has {len(items)} usable image(s); "
                                        f"splitting into train and val needs at least {opts.min_per_class}",
                                        scope="dataset"))
                continue
            order = items[:]
            rng.shuffle(order)
            n_val = min(len(order) - 1, max(1, round(len(order) * opts.val_split)))
            for i, ch in enumerate(order):
                records.append(ImageRecord(str(ch.path), label[c], "val" if i < n_val else "train",
                                           ch.width, ch.height, ch.sha256))
    else:
        for split in files:
            for c in classes:
                items = good.get((split, c), [])
                if not items:
                    where = class_dir(split, c)
                    reason = (f"class '{c}' has no usable images in {split}/"
                              + ("" if where.exists() else f" (no {split}/{c}/ folder)"))
                    problems.append(Problem(str(where), reason + ": add images or remove the class", scope="dataset"))
                records.extend(ImageRecord(str(ch.path), label[c], split, ch.width, ch.height, ch.sha256)
                               for ch in items)
    records.sort(key=lambda r: (SPLITS.index(r.split), r.label, r.path))
    problems.extend(_duplicates(records))
    result = Audit(str(root), layout, classes, records, problems, scanned=len(todo))
    problems.extend(_imbalance(result, opts.imbalance_ratio))
    return result


def _duplicates(records: list[ImageRecord]) -> list[Problem]:
    by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in records:
        by_hash[r.sha256].append(r)
    out = []
    for group in by_hash.values():
        if len(group) < 2:
            continue
        first = group[0]
        for r in group[1:]:
            if r.label != first.label:
                out.append(Problem(r.path, f"same file as {first.path} but in another class: one label is wrong", WARNING))
            elif r.split != first.split:
                out.append(Problem(r.path, f"same file as {first.path} in {first.split}: a {r.split} image seen "
                                           "in training inflates accuracy; delete one copy", WARNING))
            else:
                out.append(Problem(r.path, f"duplicate of {first.path}", INFO))
    return out


def _imbalance(result: Audit, ratio: float) -> list[Problem]:
    train = {c: n.get("train", 0) for c, n in result.counts().items()}
    nonzero = {c: n for c, n in train.items() if n}
    if len(nonzero) < 2:
        return []
    big, small = max(nonzero, key=nonzero.get), min(nonzero, key=nonzero.get)
    r = nonzero[big] / nonzero[small]
    if r <= ratio:
        return []
    return [Problem(result.root, f"imbalanced classes: '{big}' has {nonzero[big]} training images, '{small}' "
                                 f"{nonzero[small]} ({r:.1f}x); train with --class-weight auto or add images",
                    WARNING, scope="dataset")]
