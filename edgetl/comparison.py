"""`edgetl compare OLD NEW`: is the new model better than the old one, on evidence?

Both models answer the same images: OLD's validation images (neither run trained on them when NEW
was trained with ``--from OLD``, which keeps them validation; any NEW trained on are left out and
counted), and, said apart, NEW's held-out images that OLD never saw (the newly labelled frames
that went to validation). The verdict is McNemar's exact test on the paired top-1 answers of the
shared images (one-sided, p < 0.05 either way), with, when it is not proven, how many images in
the same proportions would decide it. The "unknown" rule is reported beside it (images each
model refuses, and the accuracy of what it answers) but does not decide it: a rule's threshold
is a setting (`edgetl calibrate` moves it without training), while a better ranking of the
classes is what training buys; a model that refuses everything would otherwise win or lose on
its threshold alone.

OLD and NEW are run folders (their model.keras) or artifacts of runs (``RUN/export/*.tflite``,
``.onnx``): what the device runs can be compared with what would replace it."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from edgetl import runs
from edgetl.data.audit import Audit
from edgetl.errors import EdgetlError
from edgetl.exporting.gate import ALPHA, images_to_decide, mcnemar_p
from edgetl.runs import RunFolder

logger = logging.getLogger(__name__)

__all__ = ["Comparison", "ImageSetResult", "ClassChange", "Verdict", "compare", "images_to_decide"]


class Verdict(StrEnum):
    """What the paired answers prove."""

    BETTER = "better"
    WORSE = "worse"
    NOT_PROVEN = "not proven"


@dataclass
class ImageSetResult:
    """Both models on one set of images."""

    name: str
    images: int
    old_accuracy: float | None
    new_accuracy: float | None
    old_unknown: int
    """Images the old model answered "unknown" (its own rule)."""
    new_unknown: int
    old_answered_accuracy: float | None
    """Accuracy of the answers the old model gives (its "unknown" answers left out)."""
    new_answered_accuracy: float | None
    lost: int
    """Images the old model answered right and the new one wrong."""
    gained: int
    """Images the new model answered right and the old one wrong."""


@dataclass
class ClassChange:
    """One class's accuracy on the shared images, before and after."""

    label: str
    images: int
    old_accuracy: float | None
    new_accuracy: float | None


@dataclass
class Comparison:
    """The result of :func:`compare`."""

    old: str
    new: str
    shared: ImageSetResult
    """OLD's validation images: the verdict is judged on these."""
    fresh: ImageSetResult | None
    """NEW's held-out images OLD never saw (None when there are none)."""
    classes: list[ClassChange]
    verdict: Verdict
    p_better: float
    """One-sided McNemar p that the new model gains more images than it loses."""
    p_worse: float
    images_to_decide: int | None
    """Shared images that, in the same proportions, would prove it either way (not proven only)."""
    left_out: int = 0
    """OLD's validation images NEW trained on (left out: they would favour NEW)."""
    missing: int = 0
    """OLD's validation images no longer found (by path or content)."""
    new_classes: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        """The verdict in one line, with its figures."""
        s = self.shared
        figures = (f"{s.new_accuracy:.3f} vs {s.old_accuracy:.3f} on {s.images} shared validation images "
                   f"({s.gained} gained, {s.lost} lost")
        if self.verdict == Verdict.BETTER:
            return f"better: {figures}, p {self.p_better:.3g})"
        if self.verdict == Verdict.WORSE:
            return f"worse: {figures}, p {self.p_worse:.3g})"
        more = (f"; about {self.images_to_decide} images in these proportions would decide it"
                if self.images_to_decide else "; gains and losses are even: no number of images in these proportions "
                                              "would decide it")
        return f"not proven: {figures}, p {min(self.p_better, self.p_worse):.3g}){more}"

    def to_dict(self) -> dict:
        return asdict(self) | {"verdict": str(self.verdict), "line": self.line}


def _model_of(path: str | Path) -> tuple[Path, Path]:
    """(model file, run folder) for a run folder or an artifact of a run."""
    p = Path(path)
    if p.is_dir():
        folder = runs.check_run_folder(p)
        if not folder.model.exists():
            raise EdgetlError("the run has no model.keras", path=p, fix="give a finished run folder")
        return folder.model, folder.path
    if not p.exists():
        raise EdgetlError("no such run folder or model file", path=p, fix="give a run folder or RUN/export/<model>")
    run = runs.run_of(p)
    if run is None:
        raise EdgetlError("not a model of a run folder: its validation images are not known", path=p,
                          fix="give a run folder, or a model inside RUN/export/")
    return p, run


def _answers(model: Path, paths: list[str], threads: int | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Each image's top-1 label index, and whether the model's rule answers it (not "unknown")."""
    from edgetl.evaluation import run_on_files
    from edgetl.runtime import load

    clf = load(model, threads=threads)
    if not paths:
        return clf.labels, np.zeros(0, np.int64), np.zeros(0, bool)
    if model.suffix == ".keras":
        from edgetl.exporting.keras_twin import for_many_images

        clf = for_many_images(clf, paths, threads)
    probs, _ = run_on_files(clf, paths)
    return clf.labels, probs.argmax(axis=1), probs.max(axis=1) >= clf.threshold


def _judge(name: str, truth: list[str], old: tuple, new: tuple) -> tuple[ImageSetResult, np.ndarray, np.ndarray]:
    def right(model) -> np.ndarray:
        labels, top, _ = model
        return np.array([labels[a] == t for a, t in zip(top, truth)], bool)

    def acc(r: np.ndarray) -> float | None:
        return float(r.mean()) if len(r) else None

    o, n = right(old), right(new)
    return (ImageSetResult(name, len(truth), acc(o), acc(n), int((~old[2]).sum()), int((~new[2]).sum()),
                           acc(o[old[2]]), acc(n[new[2]]), int((o & ~n).sum()), int((~o & n).sum())), o, n)


def compare(old: str | Path, new: str | Path, threads: int | None = None) -> Comparison:
    """Score ``old`` and ``new`` on the same images and judge the difference.

    Args:
        old: the run (or a run's artifact) in use now.
        new: the candidate, typically trained with ``--from`` the old run.
        threads: inference threads.

    Returns:
        The figures on OLD's validation images and on NEW's held-out new images, per-class
        changes, and the verdict.

    Raises:
        EdgetlError: a path that is not a run or a run's model; no shared image left to judge on.
    """
    old_model, old_run = _model_of(old)
    new_model, new_run = _model_of(new)
    old_audit = Audit.load_file(RunFolder(old_run).audit)
    new_audit = Audit.load_file(RunFolder(new_run).audit)
    if old_audit.multi_label or new_audit.multi_label:
        raise EdgetlError("compare judges single-label runs (the top-1 answers of both on the same images); "
                          "multi-label runs are not compared yet", path=new_run,
                          fix="compare the two runs' `edgetl eval` figures on the same multi-label CSV")
    new_split = {r.sha256: r for r in new_audit.records}
    shared_paths, shared_truth, left_out, missing = [], [], 0, 0
    for r in old_audit.records:
        if r.split != "val":
            continue
        mine = new_split.get(r.sha256)
        if mine is not None and mine.split == "train":
            left_out += 1
            continue
        path = r.path if Path(r.path).is_file() else (mine.path if mine and Path(mine.path).is_file() else None)
        if path is None:
            missing += 1
            continue
        shared_paths.append(path)
        shared_truth.append(old_audit.classes[r.label])
    if not shared_paths:
        raise EdgetlError("none of the old run's validation images is left to compare on"
                          + (f" ({left_out} were trained on by the new run)" if left_out else ""), path=old_run,
                          fix="train the new run with --from OLD, which keeps OLD's validation images for validation")
    seen = {r.sha256 for r in old_audit.records}
    fresh = [r for r in new_audit.records if r.split in ("val", "test") and r.sha256 not in seen and Path(r.path).is_file()]
    logger.info("comparing on %d shared validation images and %d new held-out ones", len(shared_paths), len(fresh))
    every = shared_paths + [r.path for r in fresh]
    truth = shared_truth + [new_audit.classes[r.label] for r in fresh]
    old_answers = _answers(old_model, every, threads)
    new_answers = _answers(new_model, every, threads)
    k = len(shared_paths)
    cut = (lambda model, sl: (model[0], model[1][sl], model[2][sl]))
    shared, o_right, n_right = _judge("shared validation images", truth[:k], cut(old_answers, slice(0, k)),
                                      cut(new_answers, slice(0, k)))
    fresh_result = (_judge("new held-out images", truth[k:], cut(old_answers, slice(k, None)),
                           cut(new_answers, slice(k, None)))[0] if fresh else None)
    classes = []
    for c in sorted(set(shared_truth)):
        mask = np.array([t == c for t in shared_truth])
        classes.append(ClassChange(c, int(mask.sum()), float(o_right[mask].mean()), float(n_right[mask].mean())))
    p_better, p_worse = mcnemar_p(shared.gained, shared.lost), mcnemar_p(shared.lost, shared.gained)
    verdict = Verdict.BETTER if p_better < ALPHA else Verdict.WORSE if p_worse < ALPHA else Verdict.NOT_PROVEN
    decide = images_to_decide(k, shared.lost, shared.gained) if verdict == Verdict.NOT_PROVEN else None
    result = Comparison(str(old), str(new), shared, fresh_result, classes, verdict, p_better, p_worse, decide,
                        left_out, missing, [c for c in new_answers[0] if c not in old_answers[0]])
    _record(result, new_run)
    return result


def _record(result: Comparison, new_run: Path) -> None:
    """Keep the verdict with the new run (RUN/comparison.json) and show it on its page."""
    from edgetl.atomic import write_atomic
    from edgetl.report.page import write_report

    try:
        write_atomic(RunFolder(new_run).comparison, json.dumps(result.to_dict(), indent=1))
        write_report(new_run)
    except OSError as e:  # a read-only run folder: the answer stands, only its record is missing
        logger.warning("could not record the comparison in %s (%s)", new_run, e.strerror)
