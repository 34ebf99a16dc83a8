"""Audit a photo folder: find the classes and splits, decode every file, explain every problem."""
from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgetl.progress import track
from edgetl.data.cache import decode_workers
from edgetl.errors import EdgetlError
from edgetl.image import IMAGE_EXTENSIONS, DecodeError, TooLarge, content_problem, decode_preview, max_pixels, read_file, sniff
from edgetl.data.layouts import ERROR, INFO, SPLITS, WARNING, Layout, Problem, discover
from edgetl.runtime.labels import label_problem
from edgetl.runtime.task import Task
from edgetl.text import clean

__all__ = ["Audit", "AuditOptions", "ImageRecord", "Problem", "audit", "SPLITS"]


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
    keep_splits: dict[str, str] | None = field(default=None, repr=False)
    """sha256 -> "train" or "val": images an earlier run saw keep its split where the split is
    carved here (``train --from``); the others are split among themselves by the seed rule."""
    class_depth: int = 1
    """1: the class folders are DATA's (or each split's) sub-folders; 2: their sub-folders are,
    merged across the folders above them (batch folders such as ``2023/cats``, ``2024/cats``)."""


@dataclass
class ImageRecord:
    """An image the audit accepted."""

    path: str
    label: int
    split: str
    width: int
    height: int
    sha256: str = field(repr=False, default="")
    labels: list[int] | None = None
    """Multi-label: the image's labels (empty: none of them); ``label`` is then -1."""

    @property
    def key(self) -> int | tuple[int, ...]:
        """What the image is labelled: its class, or its set of labels."""
        return self.label if self.labels is None else tuple(self.labels)


def targets(records: list[ImageRecord], num_labels: int) -> np.ndarray:
    """Class indices (N,), or for multi-label records (those with ``labels``) a 0/1 matrix (N, labels)."""
    if not records or records[0].labels is None:
        return np.array([r.label for r in records], np.int64)
    out = np.zeros((len(records), num_labels), np.float32)
    for i, r in enumerate(records):
        out[i, r.labels] = 1.0
    return out


def set_codes(*matrices: np.ndarray) -> list[np.ndarray]:
    """Each row of each 0/1 (or bool) matrix as one integer that names its set of labels, the same
    set getting the same number across all of them: label sets compared as answers are compared
    (the export gate's evidence, the golden images' classes)."""
    rows = np.concatenate([np.asarray(m) >= 0.5 for m in matrices])
    _, codes = np.unique(rows, axis=0, return_inverse=True)
    codes = codes.reshape(-1)
    out, start = [], 0
    for m in matrices:
        out.append(codes[start:start + len(m)])
        start += len(m)
    return out


@dataclass
class ProblemGroup:
    """Every problem of one kind and severity: what a summary shows as one line and a few examples."""

    severity: str
    kind: str
    problems: list[Problem]


@dataclass
class Audit:
    """The result of :func:`audit`: classes, accepted images per split, and problems."""

    root: str
    layout: str
    classes: list[str]
    records: list[ImageRecord]
    problems: list[Problem]
    scanned: int = 0
    sources: dict[str, str] = field(default_factory=dict)
    """Per split, what it was read from, in words ("validation/", "20% of train/")."""
    carved: bool = False
    """The val split was carved out here (a one-level folder, a CSV without a val split, train/ and
    test/ without a validation folder), rather than read from a folder or CSV rows of its own."""
    task: Task = Task.SINGLE_LABEL
    """Multi-label: ``classes`` are the labels and each record has ``labels``."""
    form: str = ""
    """Multi-label: how the labels were given ("path,labels", "one-hot")."""

    @property
    def multi_label(self) -> bool:
        return self.task == Task.MULTI_LABEL

    def as_multi_label(self) -> "Audit":
        """This single-label dataset read as multi-label (``--multi-label``): each image has its
        one class as its one label."""
        from dataclasses import replace

        if self.multi_label:
            return self
        records = [replace(r, label=-1, labels=[r.label]) for r in self.records]
        return replace(self, records=records, task=Task.MULTI_LABEL, form="one class per image")

    def label_stats(self) -> dict:
        """Multi-label: per-label counts per split, images with no label, labels per image, the
        most frequent pairs of labels seen together."""
        per = {c: {s: 0 for s in self.splits} for c in self.classes}
        none = {s: 0 for s in self.splits}
        pairs: dict[tuple[str, str], int] = defaultdict(int)
        total = 0
        for r in self.records:
            total += len(r.labels or [])
            if not r.labels:
                none[r.split] += 1
            for i in r.labels or []:
                per[self.classes[i]][r.split] += 1
            for a in range(len(r.labels or [])):
                for b in range(a + 1, len(r.labels)):
                    pairs[(self.classes[r.labels[a]], self.classes[r.labels[b]])] += 1
        top = sorted(pairs.items(), key=lambda kv: -kv[1])[:10]
        return {"per_label": per, "no_label": none, "labels_per_image": total / max(1, len(self.records)),
                "pairs": [{"labels": list(k), "images": v} for k, v in top]}

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
        if self.multi_label:
            return self.label_stats()["per_label"]
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

    def groups(self) -> list[ProblemGroup]:
        """Problems grouped by severity and kind, errors first, then the largest groups: a summary
        stays the same length for 100 or 100,000 files."""
        by: dict[tuple[str, str], list[Problem]] = defaultdict(list)
        for p in self.problems:
            by[(p.severity, p.kind or p.reason)].append(p)
        order = {ERROR: 0, WARNING: 1, INFO: 2}
        return sorted((ProblemGroup(sev, kind, ps) for (sev, kind), ps in by.items()),
                      key=lambda g: (order[g.severity], -len(g.problems), g.kind))

    def describe(self) -> str:
        """What was read as what, in one line: the first line of `data check` and `train`."""
        counts = {s: len(self.split(s)) for s in SPLITS}
        kind = {"folders": "class folders", "splits": "split folders", "csv": "a CSV"}[self.layout]
        parts = [f"{s} {counts[s]} ({clean(self.sources.get(s, s))})" for s in SPLITS if s in self.sources]
        if self.multi_label:
            per = self.label_stats()["labels_per_image"]
            return (f"read {clean(self.root)} as a multi-label dataset ({kind}, {self.form}): {len(self.classes)} "
                    f"labels, {per:.2f} labels per image on average: " + ", ".join(parts))
        return f"read {clean(self.root)} as {kind}, {len(self.classes)} classes: " + ", ".join(parts)

    def require_trainable(self) -> None:
        """Raise :class:`EdgetlError` naming the first problem that makes training impossible."""
        if self.errors:
            p = self.errors[0]
            raise EdgetlError(p.reason, path=p.path)
        for s in ("train", "val"):
            if s not in self.splits:
                raise EdgetlError(f"no usable images in the {s} split: all {self.scanned} files were rejected"
                                  if not self.records else f"no usable images in the {s} split "
                                  f"({clean(self.sources.get(s, s))})", path=self.root,
                                  fix="run `edgetl data check` to see why each file was rejected")

    def to_dict(self) -> dict:
        """JSON-ready summary: classes with counts, problems, image sizes."""
        out = {
            "root": self.root, "layout": self.layout, "sources": self.sources, "carved": self.carved, "classes": self.counts(),
            "images": len(self.records), "scanned": self.scanned,
            "sizes": self.size_stats(), "problems": [asdict(p) for p in self.problems],
            "clean": self.clean,
        }
        if self.multi_label:
            out |= {"task": str(self.task), "form": self.form, "labels": self.label_stats()}
        return out

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
                   problems=[Problem(**p) for p in d["problems"]], scanned=d.get("scanned", 0),
                   sources=d.get("sources") or {}, carved=d.get("carved", d["layout"] == "folders"),
                   task=Task(d.get("task", Task.SINGLE_LABEL)), form=d.get("form", ""))


@dataclass
class _FileCheck:
    path: Path
    problems: list[Problem]
    width: int = 0
    height: int = 0
    sha256: str = ""
    flat: float = 0.0
    """Share of the image in one flat colour (see :func:`_flatness`)."""

    @property
    def ok(self) -> bool:
        """Decoded and usable: only such files become records (a skipped non-image never does)."""
        return bool(self.sha256) and not any(p.severity == ERROR for p in self.problems)


def _check_file(path: Path, opts: AuditOptions) -> _FileCheck:
    """Everything that can be wrong with one file, without raising."""
    check = _FileCheck(path, [])

    def add(kind: str, reason: str, severity: str = ERROR) -> None:
        check.problems.append(Problem(str(path), reason, severity, kind=kind))

    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:  # not even read: a file of another kind is skipped, not an error
        add(*content_problem(path, b""), WARNING)
        return check
    try:
        data = read_file(path)
    except DecodeError as e:
        add("unreadable", f"unreadable: {e}")
        return check
    found = content_problem(path, data)
    if found:
        add(*found)
        return check
    fmt = sniff(data[:16])
    try:
        img, (check.width, check.height) = decode_preview(data, opts.max_pixels)
    except TooLarge as e:
        add("too large", f"too large: {e}")
        return check
    except DecodeError:
        add("corrupt", f"corrupt {fmt.upper()}: it cannot be decoded")
        return check
    check.sha256 = hashlib.sha256(data).hexdigest()
    if fmt != IMAGE_EXTENSIONS[ext]:
        add("extension does not match the content", f"a {fmt.upper()} file with a {ext} extension (read fine)", INFO)
    if fmt == "gif":
        add("GIF: first frame used", "GIF: the first frame is used", INFO)
    if min(check.height, check.width) < opts.min_side:
        add(f"small images (under {opts.min_side} px): upscaled to the model's input size",
            f"tiny image {check.width}x{check.height} (under {opts.min_side} px): upscaled to the model's input size", INFO)
    check.flat, contrast = _flatness(img)
    if check.flat > BLANK_FLAT or (check.flat > MOSTLY_FLAT and contrast < BLANK_CONTRAST):
        add(NEAR_BLANK, _near_blank_reason(check.flat), WARNING)
    return check


NEAR_BLANK = "near-blank image"
MOSTLY_FLAT = 0.93
BLANK_FLAT = 0.985
"""Over this share of one flat colour an image is blank whatever the rest holds."""
BLANK_CONTRAST = 48
"""Over :data:`MOSTLY_FLAT`, an image is blank in any dataset when what is not background stays
within this many levels of it (noise, a smudge)."""
PHOTO_DATASET = 0.5
"""A dataset whose median image is less flat than this is one of photos: there, an image over
:data:`MOSTLY_FLAT` with a sharp remainder (a placeholder's icon, "image not found") is flagged
too. In a dataset of drawings (MNIST's thin 1s are 93-95 % black background, its median digit
about 80 %) such an image is the dataset's own kind, and flagging it teaches users to ignore warnings."""


def _near_blank_reason(flat: float) -> str:
    return f"{flat:.0%} of the image is one flat colour: a placeholder or blank image?"


def _flag_placeholders(checks: list[_FileCheck]) -> None:
    """In a dataset of photos, warn of the images that are mostly one flat colour (see :data:`PHOTO_DATASET`)."""
    flats = [c.flat for c in checks if c.ok]
    if not flats or float(np.median(flats)) >= PHOTO_DATASET:
        return
    for c in checks:
        if c.ok and c.flat > MOSTLY_FLAT and not any(p.kind == NEAR_BLANK for p in c.problems):
            c.problems.append(Problem(str(c.path), _near_blank_reason(c.flat), WARNING, kind=NEAR_BLANK))


def _flatness(img: np.ndarray) -> tuple[float, float]:
    """Share of pixels within a few levels of the most common colour (real photos stay well
    below), and how far the other pixels stand from it (their 90th percentile, in levels)."""
    small = img[:: max(1, img.shape[0] // 64), :: max(1, img.shape[1] // 64)].reshape(-1, 3).astype(np.int16)
    q = small // 8
    keys, counts = np.unique(q[:, 0] * 1024 + q[:, 1] * 32 + q[:, 2], return_counts=True)
    mode = keys[counts.argmax()]
    centre = np.array([mode // 1024, (mode // 32) % 32, mode % 32]) * 8 + 4
    distance = np.abs(small - centre).max(axis=1)
    rest = distance[distance > 8]
    return float((distance <= 8).mean()), float(np.percentile(rest, 90)) if rest.size else 0.0


def audit(root: str | Path, options: AuditOptions | None = None, workers: int | None = None) -> Audit:
    """Audit DATA: a one-level ``DATA/<class>/*`` folder (split here, stratified and seeded), split
    folders ``DATA/{train,validation[,test]}/<class>/*`` by their common names, or a CSV of
    ``path,label[,split]``. Never raises for a bad file; raises :class:`EdgetlError` only when DATA
    is not a dataset or could mean two things."""
    opts = options or AuditOptions()
    root = Path(root).absolute()  # later stages read these paths from any working directory
    layout = discover(root, opts.class_depth, opts.val_split)
    if layout.multi is not None:
        return _audit_multi(root, layout, opts, workers)
    problems = layout.problems
    files = layout.files
    classes = sorted({c for per_split in files.values() for c in per_split})
    if not classes:
        raise EdgetlError("no class folders found" if layout.kind != "csv" else "no row with a usable path and label",
                          path=root, fix="put images in DATA/<class>/ or DATA/train/<class>/ folders, or list them in "
                                         "a CSV of path,label")
    for c in classes:  # a line break in a class name would shift every label after it in labels.txt
        why = label_problem(c)
        if why:
            problems.append(Problem(str(root / c), f"class name {clean(c)!r} {why}: rename it", scope="dataset",
                                    kind="class name that labels.txt cannot hold"))
    todo = [(s, c, f) for s, per in files.items() for c, fs in per.items() for f in fs]
    with ThreadPoolExecutor(workers or decode_workers()) as pool:
        checks = list(track(pool.map(lambda t: _check_file(t[2], opts), todo),
                            "Checking images", total=len(todo)))
    _flag_placeholders(checks)
    good: dict[tuple[str, str], list[_FileCheck]] = defaultdict(list)
    for (split, cls, _), check in zip(todo, checks):
        if not check.ok:
            check.problems[0].skipped = True
        if layout.rows:  # a CSV row's file: say which line named it
            for p in check.problems:
                p.reason = f"{p.reason} ({layout.rows[check.path]})"
        problems.extend(check.problems)
        if check.ok:
            good[(split, cls)].append(check)

    label = {c: i for i, c in enumerate(classes)}
    if len(classes) < 2:
        problems.append(Problem(str(root), f"only one class ({clean(classes[0])}): a classifier needs at least 2",
                                scope="dataset", kind="a single class"))
    records: list[ImageRecord] = []
    rng = random.Random(opts.seed)
    for split in files:
        carve = split == "" or (split == "train" and layout.carve_val)
        for c in classes:
            items = good.get((split, c), [])
            where = _class_path(root, layout, split, c)
            if not items:
                reason = f"class '{clean(c)}' has no usable images" + (f" in {clean(layout.sources.get(split, split))}"
                                                                       if split else "")
                problems.append(Problem(where, reason + ": add images or remove the class", scope="dataset",
                                        kind="class without usable images"))
                continue
            if not carve:
                records.extend(ImageRecord(str(ch.path), label[c], split, ch.width, ch.height, ch.sha256) for ch in items)
                continue
            if len(items) < opts.min_per_class:
                problems.append(Problem(where, f"class '{clean(c)}' has {len(items)} usable image(s); splitting into "
                                        f"train and val needs at least {opts.min_per_class}", scope="dataset",
                                        kind="class too small to split"))
                continue
            keep = opts.keep_splits or {}
            kept = [ch for ch in items if keep.get(ch.sha256) in ("train", "val")]
            records.extend(ImageRecord(str(ch.path), label[c], keep[ch.sha256], ch.width, ch.height, ch.sha256)
                           for ch in kept)
            order = [ch for ch in items if keep.get(ch.sha256) not in ("train", "val")]
            rng.shuffle(order)
            n_val = (round(len(order) * opts.val_split) if kept
                     else min(len(order) - 1, max(1, round(len(order) * opts.val_split))))
            records.extend(ImageRecord(str(ch.path), label[c], "val" if i < n_val else "train", ch.width, ch.height,
                                       ch.sha256) for i, ch in enumerate(order))
    records.sort(key=lambda r: (SPLITS.index(r.split), r.label, r.path))
    problems.extend(_duplicates(records))
    conflicted = {p.path for p in problems if p.kind == CONFLICT}
    records = [r for r in records if r.path not in conflicted]
    result = Audit(str(root), layout.kind, classes, records, problems,
                   scanned=len(todo), sources=layout.sources, carved=layout.carve_val or "" in files)
    problems.extend(_imbalance(result, opts.imbalance_ratio))
    return result


def _checked(todo: list[Path], opts: AuditOptions, layout: Layout, workers: int | None) -> list[_FileCheck]:
    """Every file checked on all cores (a CSV row's problems say which line named the file)."""
    with ThreadPoolExecutor(workers or decode_workers()) as pool:
        checks = list(track(pool.map(lambda f: _check_file(f, opts), todo), "Checking images", total=len(todo)))
    _flag_placeholders(checks)
    for check in checks:
        if not check.ok:
            check.problems[0].skipped = True
        if layout.rows:
            for p in check.problems:
                p.reason = f"{p.reason} ({layout.rows.get(check.path, '')})"
    return checks


MIN_TRAIN_PER_LABEL = 5
"""Training images a label needs at least to be learnt (a warning below)."""
MIN_VAL_PER_LABEL = 2
"""Validation images a label needs at least for its threshold and figures to mean something."""


def _audit_multi(root: Path, layout: Layout, opts: AuditOptions, workers: int | None) -> Audit:
    """A multi-label dataset: every file checked, the val split carved by seed where none is
    given, and the labels' own problems (too rare to learn or to validate, in one split only)."""
    classes = list(layout.label_names)
    problems = layout.problems
    if not classes:
        raise EdgetlError("no image has a label", path=root, fix="give each image the labels it shows")
    for c in classes:
        why = label_problem(c)
        if why:
            problems.append(Problem(str(root), f"label {clean(c)!r} {why}: rename it", scope="dataset",
                                    kind="label that labels.txt cannot hold"))
    index = {c: i for i, c in enumerate(classes)}
    todo = [(split, f, labels) for split, rows in layout.multi.items() for f, labels in rows]
    checks = _checked([f for _, f, _ in todo], opts, layout, workers)
    records: list[ImageRecord] = []
    rng = random.Random(opts.seed)
    carve: list[ImageRecord] = []
    for (split, _, labels), check in zip(todo, checks):
        problems.extend(check.problems)
        if not check.ok:
            continue
        r = ImageRecord(str(check.path), -1, split or "train", check.width, check.height, check.sha256,
                        sorted(index[x] for x in labels))
        if split == "" or (split == "train" and layout.carve_val):
            keep = (opts.keep_splits or {}).get(r.sha256)
            if keep in ("train", "val"):
                r.split = keep
                records.append(r)
            else:
                carve.append(r)
        else:
            records.append(r)
    rng.shuffle(carve)
    n_val = min(len(carve) - 1, max(1, round(len(carve) * opts.val_split))) if carve else 0
    for i, r in enumerate(carve):
        r.split = "val" if i < n_val else "train"
    records += carve
    records.sort(key=lambda r: (SPLITS.index(r.split), r.path))
    problems.extend(_duplicates(records))
    conflicted = {p.path for p in problems if p.kind == CONFLICT}
    records = [r for r in records if r.path not in conflicted]
    result = Audit(str(root), "splits" if layout.kind == "splits" else "csv", classes, records, problems,
                   scanned=len(todo), sources=layout.sources, carved=layout.carve_val or "" in layout.multi,
                   task=Task.MULTI_LABEL, form=layout.form)
    problems.extend(_label_problems(result))
    return result


def _label_problems(result: Audit) -> list[Problem]:
    """Labels too rare to learn or to validate, and labels in one split only: grouped warnings
    naming each label and the fix."""
    out = []
    for label, n in result.counts().items():
        train, val = n.get("train", 0), n.get("val", 0)
        if train == 0 or val == 0:
            only = "val" if train == 0 else "train"
            out.append(Problem(result.root, f"label {clean(label)!r} is in the {only} split only ({train} training, "
                               f"{val} validation images): add images of it to the other split", WARNING, "dataset",
                               kind="label in one split only"))
        elif train < MIN_TRAIN_PER_LABEL:
            out.append(Problem(result.root, f"label {clean(label)!r} has {train} training images, too few to learn "
                               f"(at least {MIN_TRAIN_PER_LABEL}): add images of it", WARNING, "dataset",
                               kind="label too rare to learn"))
        elif val < MIN_VAL_PER_LABEL:
            out.append(Problem(result.root, f"label {clean(label)!r} has {val} validation image(s), too few to choose "
                               f"its threshold (at least {MIN_VAL_PER_LABEL}): add validation images of it",
                               WARNING, "dataset", kind="label too rare to validate"))
    none = sum(result.label_stats()["no_label"].values())
    if none:
        out.append(Problem(result.root, f"{none} image(s) have none of the labels (learnt as such: every score low)",
                           INFO, "dataset", kind="images with no label"))
    return out


def _class_path(root: Path, layout: Layout, split: str, cls: str) -> str:
    """Where a class lives, for messages: its folder, or the CSV and the label."""
    if layout.kind == "csv":
        return f"{root} (label {clean(cls)})"
    if layout.kind == "folders":
        return str(root / cls)
    return str(root / layout.folders.get(split, split) / cls)


CONFLICT = "the same file in two classes: left out"


def _duplicates(records: list[ImageRecord]) -> list[Problem]:
    """Duplicates: within a class (a note), across splits (a warning: a val image seen in
    training), across classes (every copy is left out: it cannot be right in both classes)."""
    by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in records:
        by_hash[r.sha256].append(r)
    out = []
    for group in by_hash.values():
        if len(group) < 2:
            continue
        first = group[0]
        if len({r.key for r in group}) > 1:
            for r in group:
                other = next(o for o in group if o.key != r.key)
                out.append(Problem(r.path, f"same content as {other.path} in another class: it cannot be right in "
                                           "both, so every copy is left out; delete the wrong one", WARNING,
                                   skipped=True, kind=CONFLICT))
            continue
        for r in group[1:]:
            if r.split != first.split:
                out.append(Problem(r.path, f"same file as {first.path} in {first.split}: a {r.split} image seen "
                                           "in training inflates accuracy; delete one copy", WARNING,
                                   kind="the same file in two splits"))
            else:
                out.append(Problem(r.path, f"duplicate of {first.path}", INFO, kind="duplicate within a class"))
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
                    WARNING, scope="dataset", kind="imbalanced classes")]
