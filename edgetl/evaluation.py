"""`edgetl eval` and `edgetl predict`: run a model over images or a dataset folder."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgetl import runs
from edgetl.progress import track
from edgetl.cores import usable_cores
from edgetl.data.audit import Audit, AuditOptions, audit
from edgetl.data.cache import ArrayStore, decode_all
from edgetl.image import IMAGE_EXTENSIONS
from edgetl.errors import EdgetlError
from edgetl.label_metrics import MultiLabelReport
from edgetl.metrics import ClassReport, Report, report
from edgetl.runtime import Category, Classifier, load
from edgetl.runtime.confidence import UNKNOWN
from edgetl.runtime.keras_backend import KerasBackend
from edgetl.text import clean


def image_files(inputs: list[str | Path]) -> list[Path]:
    """Expand files and folders (recursively) into image files, sorted within each folder."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                                and not any(part.startswith(".") for part in p.relative_to(item).parts)))
        elif item.is_file():
            files.append(item)
        else:
            raise EdgetlError("no such file or folder", path=item, fix="give image files or folders of images")
    if not files:
        raise EdgetlError("no images found", path=inputs[0] if inputs else ".", fix="give jpg, png, bmp, gif or webp files")
    return files


@dataclass
class Prediction:
    """One file's answer: its top-k categories, or why it could not be read."""

    path: Path
    top: list[Category] = field(default_factory=list)
    error: str = ""
    """Why the file was skipped (empty when it was classified)."""
    unknown: bool = False
    """The top score is under the classifier's threshold: the answer is "unknown"."""
    labels: list[Category] | None = None
    """Multi-label: the labels present (score at or above 0.5), best first; ``top`` then holds
    every label's score."""

    def to_dict(self) -> dict:
        """The JSON line of this file (text cleaned of control characters)."""
        if self.error:
            return {"path": clean(self.path), "error": clean(self.error)}
        if self.labels is not None:
            present = {c.label for c in self.labels}
            return {"path": clean(self.path), "labels": [c.label for c in self.labels],
                    "scores": {c.label: c.score for c in self.top},
                    "decisions": {c.label: c.label in present for c in self.top}}
        return {"path": clean(self.path), "answer": UNKNOWN if self.unknown else self.top[0].label,
                "unknown": self.unknown, "top": [{"index": c.index, "label": c.label, "score": c.score} for c in self.top]}


def predict(classifier: Classifier, inputs: list[str | Path], top_k: int = 3) -> Iterator[Prediction]:
    """A :class:`Prediction` for every image file under ``inputs``: a file that cannot be read is
    reported with its reason and the others are still classified."""
    for path in image_files(inputs):
        try:
            if classifier.multi_label:  # every label's score, and the set present
                scores = classifier.classify_file(path)
                yield Prediction(path, scores, labels=[c for c in scores if c.score >= 0.5])
                continue
            top = classifier.classify_file(path, top_k)
            yield Prediction(path, top, unknown=classifier.is_unknown(top))
        except EdgetlError as e:
            yield Prediction(path, error=e.message)


@dataclass
class Mistake:
    """One misclassified image."""

    path: str
    true: str
    predicted: str
    score: float
    """The predicted class's score."""


@dataclass
class Skipped:
    """A file of the dataset that could not be used, and why."""

    path: str
    reason: str


@dataclass
class EvalResult:
    """What `edgetl eval` reports."""

    model: str
    runtime: str
    split: str
    report: Report
    images_per_s: float
    """Throughput of preprocessing-free inference (prepared inputs, batched where the model allows)."""
    latency_ms: float
    """Median time of one image alone through the model (prepared input), measured apart."""
    predictions: np.ndarray
    probabilities: np.ndarray
    skipped: list[Skipped] = field(default_factory=list)
    """Files of the dataset that could not be used, each with its reason."""
    how: str = ""
    """Which images were scored and why, in words."""
    left_out: int = 0
    """Images left out because the model's run trained on the same content."""
    run: str | None = None
    """The run folder the model belongs to, when known (its training images are never scored)."""
    batch: int = 1
    """Images per inference call: what runs a set fastest on the model's runtime (see
    :attr:`Classifier.batch`)."""
    mistakes: list[Mistake] = field(default_factory=list)
    """Every misclassified image, most confident first."""
    selective: Selective | None = None
    """The answers given at the "unknown" threshold, and how accuracy trades against coverage."""
    truth: np.ndarray | None = None
    """Multi-label: the dataset's labels of each scored image (0/1, in the model's label order)."""
    labels: MultiLabelReport | None = None
    """Multi-label: mAP, per-label AP/precision/recall/F1, micro and macro F1, exact match
    (``report.accuracy`` is then the exact-match ratio and ``report.confusion`` is empty)."""

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return ({"task": "multi-label", "multi_label": self.labels.to_dict()} if self.labels else {}) | {"model": self.model, "runtime": self.runtime, "split": self.split, "split_how": self.how,
                "left_out_trained": self.left_out, "run": self.run,
                "images_per_s": self.images_per_s, "latency_ms": self.latency_ms, "batch": self.batch,
                "batched": self.batch > 1,
                "skipped": [asdict(s) for s in self.skipped], "mistakes": [asdict(m) for m in self.mistakes],
                "selective": asdict(self.selective) if self.selective else None} | self.report.to_dict()


@dataclass
class Selective:
    """Accuracy when the model may answer "unknown": what eval reports beside plain accuracy."""

    threshold: float
    """Top score below which the answer was "unknown"."""
    coverage: float
    """Share of images answered (top score at or above the threshold)."""
    accuracy: float | None
    """Accuracy on the answered images (None when none was answered)."""
    unknown: int
    """Images answered "unknown"."""
    roc_auc: float | None
    """ROC AUC of the scores (one class against the rest, macro over classes; binary for two)."""
    risk_coverage: list[dict]
    """Accuracy of the answered images against coverage as the threshold rises."""
    unknown_images: int = 0
    """Images of none of the classes scored beside the dataset (``eval --unknown DIR``)."""
    unknown_rejected: float | None = None
    """Share of those answered "unknown"."""
    auroc_known_unknown: float | None = None
    """How well the top score tells the dataset's images from those (1.0: every known image scores
    above every unknown one; 0.5: no better than chance)."""


def with_unknown(sel: Selective, known_scores: np.ndarray, unknown_scores: np.ndarray) -> Selective:
    """``sel`` with the figures of images that are none of the classes (their top scores)."""
    from dataclasses import replace

    from edgetl.metrics import binary_auc

    both = np.concatenate([known_scores, unknown_scores])
    truth = np.concatenate([np.ones(len(known_scores), bool), np.zeros(len(unknown_scores), bool)])
    return replace(sel, unknown_images=len(unknown_scores),
                   unknown_rejected=float((unknown_scores < sel.threshold).mean()) if len(unknown_scores) else None,
                   auroc_known_unknown=binary_auc(both, truth))


def selective(probs: np.ndarray, y_true: np.ndarray, threshold: float) -> Selective:
    """What answering "unknown" under ``threshold`` does on these scores."""
    from edgetl.metrics import roc_auc
    from edgetl.runtime.confidence import risk_coverage

    answered = probs.max(axis=1) >= threshold
    right = probs.argmax(axis=1) == y_true
    return Selective(threshold, float(answered.mean()) if len(answered) else 0.0,
                     float(right[answered].mean()) if answered.any() else None, int((~answered).sum()),
                     roc_auc(probs, y_true, probs.shape[1]), risk_coverage(probs, y_true))


@dataclass
class Scored:
    """Which images an evaluation scores, and why."""

    split: str
    """"train", "val", "test", "all", or "folder" (every image not known to be trained on)."""
    records: list
    how: str
    left_out: int = 0
    """Images left out because the model's run trained on the same content."""


def pick_split(result: Audit, split: str, trained: set[str] | None = None) -> Scored:
    """The records to evaluate. ``auto``: a test split when there is one, else a validation split
    read from its own folder or rows, else every image of the folder; in each case without the
    images whose content the model's run trained on (``trained``: their sha256, None when the
    run is not known). ``train``, ``val`` and ``test`` are those splits (for a one-level folder,
    the seeded split training makes); ``all`` is every image, training images included."""
    if split == "all":
        return Scored("all", result.records, "every image, training images included")
    if split == "auto":
        split = "test" if "test" in result.splits else "folder" if result.carved else "val"
    if split == "folder":
        records, how = result.records, "every image of the folder"
    else:
        records = result.split(split)
        how = (f"the seeded split training makes ({clean(result.sources.get(split, split))})" if result.carved
               and split != "test" else f"the {split} split ({clean(result.sources.get(split, split))})")
    if not records:
        raise EdgetlError(f"no usable images in the {split} split", path=result.root,
                          fix=f"choose --split among {', '.join(result.splits + ['all'])}")
    if split == "train" or trained is None:
        if trained is None and split == "folder":
            how += ("; no run folder beside the model, so its training images cannot be told apart (for the folder "
                    "it trained on, --split val re-makes the seeded split)")
        return Scored(split, records, how)
    kept = [r for r in records if r.sha256 not in trained]
    left = len(records) - len(kept)
    if not kept:
        raise EdgetlError(f"every image of the {split} split is one the model's run trained on", path=result.root,
                          fix="evaluate on images it has not seen, or pass --split all to score them anyway")
    if left:
        how += f"; left out {left} the model's run trained on (same file content)"
    return Scored(split, kept, how, left)


EVAL_BATCH = 64
"""Images decoded at a time: memory stays the same for 100 or 100,000 images."""


def run_on_pixels(classifier: Classifier, pixels: np.ndarray | ArrayStore) -> tuple[np.ndarray, float]:
    """Probabilities for N uint8 images at the model's size (an array, or a store on disk read a
    batch at a time), and the inference rate in images/s."""
    return _run_batches(classifier, len(pixels), lambda start, end: pixels[start:end])


def run_on_files(classifier: Classifier, paths: list[str], batch: int = EVAL_BATCH) -> tuple[np.ndarray, float]:
    """Probabilities for image files, decoded and resized ``batch`` at a time (never the whole
    set in memory), and the inference rate in images/s."""
    p = classifier.pixels
    return _run_batches(classifier, len(paths),
                        lambda start, end: decode_all(paths[start:end], p, quiet=True), batch)


def _run_batches(classifier: Classifier, n: int, pixels_of: Callable[[int, int], np.ndarray],
                 batch: int = EVAL_BATCH) -> tuple[np.ndarray, float]:
    """Probabilities of ``n`` images whose model-sized pixels ``pixels_of(start, end)`` gives a
    batch at a time, ``classifier.batch`` images per inference call, and the rate of those calls
    in images/s."""
    probs = np.empty((n, classifier.num_classes), np.float32)
    step = classifier.batch
    spent = 0
    starts = range(0, n, batch)
    for start in track(starts, f"Running {classifier.path.name} on {n} images", total=len(starts)):
        x = classifier.to_input(pixels_of(start, min(start + batch, n)))
        for i in range(0, len(x), step):
            t0 = time.perf_counter_ns()
            raw = classifier.infer(x[i:i + step])
            spent += time.perf_counter_ns() - t0
            probs[start + i:start + i + len(raw)] = classifier.probabilities(raw)
    return probs, n / max(spent / 1e9, 1e-9)


def quick_latency(clf: Classifier, x: np.ndarray, runs: int = 20) -> float:
    """Median milliseconds of ``runs`` inferences on one prepared image (after one warm-up): the
    per-image latency, measured apart from batched throughput."""
    one = x[:1]
    clf.infer(one)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        clf.infer(one)
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times) / 1e6)


def _evaluate_labels(clf: Classifier, result: Audit, scored: Scored, index: list[int], run, threads) -> EvalResult:
    """A multi-label model on a dataset: each image's set of labels (scores at or above 0.5)
    against the dataset's, by label name."""
    from edgetl.data.audit import targets
    from edgetl.label_metrics import report as label_report

    records = scored.records
    if isinstance(clf.backend, KerasBackend):
        from edgetl.exporting.keras_twin import for_many_images

        clf = for_many_images(clf, [r.path for r in records], threads)
    probs, rate = run_on_files(clf, [r.path for r in records])
    latency = quick_latency(clf, clf.to_input(decode_all([records[0].path], clf.pixels, quiet=True)))
    truth = np.zeros((len(records), len(clf.labels)), np.float32)
    truth[:, index] = targets(records, len(result.classes))  # the dataset's labels in the model's order
    labels = label_report(truth, probs, clf.labels)
    pred = probs >= 0.5
    wrong = sorted(np.flatnonzero(np.any(pred != (truth >= 0.5), axis=1)), key=lambda i: -np.abs(probs[i] - 0.5).max())

    def said(row) -> str:
        return ", ".join(clf.labels[j] for j in np.flatnonzero(row)) or "none"

    mistakes = [Mistake(records[i].path, said(truth[i] >= 0.5), said(pred[i]), float(np.abs(probs[i] - 0.5).max() + 0.5))
                for i in wrong]
    per = [ClassReport(x.label, x.precision, x.recall, x.support) for x in labels.per_label]
    return EvalResult(str(clf.path), clf.runtime, scored.split, Report(labels.exact_match, per, [], list(clf.labels),
                      len(records)), rate, latency, pred.astype(np.int64), probs,
                      [Skipped(p.path, p.reason) for p in result.skipped], scored.how, scored.left_out,
                      str(run) if run else None, clf.batch, mistakes, None, truth, labels)


def evaluate(model: str | Path | Classifier, data: str | Path, split: str = "auto", threads: int | None = None,
             labels: str | Path | None = None, class_depth: int = 1, threshold: float | None = None,
             unknown: str | Path | None = None) -> EvalResult:
    """Accuracy, per-class precision/recall and the confusion matrix of a model over a dataset of
    any layout the audit accepts. Dataset classes are matched to model labels by name. When the
    model belongs to a run folder, images with the content of the run's training images are
    never scored (see :func:`pick_split`). Beside plain accuracy, what answering "unknown" under
    the model's threshold (or ``threshold``) does: :class:`Selective`; with ``unknown`` (a folder
    of images that are none of the classes), the share of them answered "unknown" and how well the
    top score separates them from the dataset's (AUROC). ``threads`` defaults to every usable core
    (LiteRT's own default is one)."""
    threads = threads or usable_cores()
    clf = model if isinstance(model, Classifier) else load(model, threads=threads, labels=labels, threshold=threshold)
    split_settings = (clf.manifest.split if clf.manifest else None) or {}
    options = AuditOptions(**{k: v for k, v in split_settings.items() if k in ("val_split", "seed")
                              and isinstance(v, (int, float)) and not isinstance(v, bool)}, class_depth=class_depth)
    result = audit(data, options)
    if clf.multi_label and not result.multi_label:
        result = result.as_multi_label()  # each image's one class is its one label
    elif result.multi_label and not clf.multi_label:
        raise EdgetlError(f"{clean(data)} is a multi-label dataset and {clf.path.name} answers one class per image",
                          path=data, fix="evaluate a model trained on it (edgetl train detects multi-label data)")
    run = runs.run_of(clf.path)
    trained = ({r.sha256 for r in Audit.load_file(runs.RunFolder(run).audit).records if r.split == "train"}
               if run is not None else None)
    scored = pick_split(result, split, trained)
    missing = [c for c in result.classes if c not in clf.labels]
    if missing:
        raise EdgetlError(f"dataset classes {missing} are not among the model's labels {clf.labels[:10]}",
                          path=data, fix="evaluate on data with the classes the model was trained on, or pass --labels")
    index = [clf.labels.index(c) for c in result.classes]
    records = scored.records
    if clf.multi_label:
        return _evaluate_labels(clf, result, scored, index, run, threads)
    if isinstance(clf.backend, KerasBackend):  # TensorFlow is here, and ONNX Runtime may run the network faster
        from edgetl.exporting.keras_twin import for_many_images

        clf = for_many_images(clf, [r.path for r in records], threads)
    probs, rate = run_on_files(clf, [r.path for r in records])
    p = clf.pixels
    latency = quick_latency(clf, clf.to_input(decode_all([records[0].path], p, quiet=True)))
    y_true = np.array([index[r.label] for r in records])
    y_pred = probs.argmax(axis=1)
    skipped = [Skipped(p.path, p.reason) for p in result.skipped]
    wrong = sorted(np.flatnonzero(y_pred != y_true), key=lambda i: -probs[i, y_pred[i]])
    mistakes = [Mistake(records[i].path, clf.labels[y_true[i]], clf.labels[y_pred[i]], float(probs[i, y_pred[i]]))
                for i in wrong]
    chosen = selective(probs, y_true, clf.threshold if threshold is None else threshold)
    if unknown is not None:
        if not Path(unknown).is_dir():
            raise EdgetlError("--unknown needs a folder of images that are none of the classes", path=unknown,
                              fix="give a folder (its sub-folders are read too)")
        others, _ = run_on_files(clf, image_files([unknown]))
        chosen = with_unknown(chosen, probs.max(axis=1), others.max(axis=1))
    return EvalResult(str(clf.path), clf.runtime, scored.split, report(y_true, y_pred, clf.labels), rate, latency,
                      y_pred, probs, skipped, scored.how, scored.left_out, str(run) if run else None, clf.batch,
                      mistakes, chosen)
