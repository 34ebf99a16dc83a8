"""Verify each artifact against the Keras model on held-out images, through the runtime layer a
device uses: accuracy, drop vs Keras, top-1 agreement, max probability difference, size, latency."""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgetl.data.cache import ArrayStore
from edgetl.evaluation import quick_latency, run_on_pixels
from edgetl.exporting.formats import Gates
from edgetl.exporting.gate import PASSED, REFUSED, Evidence, Status, decisions, judge, judge_label_sets, worse
from edgetl.runtime import load
from edgetl.runtime.task import DECISION

logger = logging.getLogger(__name__)


@dataclass
class Check:
    """The verification of one artifact."""

    file: str
    format: str
    precision: str
    size_bytes: int
    accuracy: float
    drop_points: float
    agreement: float
    max_prob_diff: float
    latency_ms: float
    runtime: str
    kept: bool
    """Shipped: the gate passed it, or could not prove a loss (``verdict`` says which)."""
    note: str = ""
    verdict: Status = Status.REFUSED
    """Passed, not proven or refused (see :mod:`edgetl.exporting.gate`)."""
    lost: int = 0
    """Held-out images Keras gets right and this artifact wrong."""
    gained: int = 0
    """Held-out images this artifact gets right and Keras wrong."""
    p_value: float | None = None
    """One-sided p of a missed limit (None when none was missed)."""
    decision_agreement: float | None = None
    """Share of held-out images answered the same with the "unknown" rule applied (a class, or
    "unknown"): judged by the same evidence rule as the top-1 agreement."""
    unknown: int = 0
    """Held-out images this artifact answers "unknown"."""
    unknown_reference: int = 0
    """Held-out images Keras answers "unknown"."""
    classed: int | None = None
    """Held-out images whose top-1 class was compared (accuracy, drop, agreement): those Keras's
    "unknown" rule does not clearly refuse (all of them for a model without the rule)."""

    @property
    def delta_points(self) -> float:
        """Accuracy minus Keras's, in points, rounded to 0.01 (never printed as -0.00)."""
        return round(-self.drop_points, 2) + 0.0

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def failed(cls, file: str, fmt: str, precision: str, note: str) -> "Check":
        """A check that failed before the artifact could be run (missing, modified)."""
        return cls(file, fmt, precision, 0, 0.0, 0.0, 0.0, 0.0, 0.0, "", False, note, REFUSED)


@dataclass
class Reference:
    """The Keras model's answers on the verification images."""

    probs: np.ndarray
    labels: np.ndarray
    accuracy: float


BAND = (0.02, 0.98)
"""Keras's gate factor (the sum of its scores) inside this range: the image is at the "unknown"
rule's threshold (see :func:`verify`)."""


def too_few_images(n: int, gates: Gates) -> str | None:
    """Why ``n`` held-out images cannot prove the gates, or None when they can. With no
    disagreement seen in n images, the 95 % upper bound of the disagreement rate is about 3/n
    (the rule of three), so proving agreement >= A needs about 3 / (1 - A) images; and one image
    must move accuracy by no more than the allowed drop."""
    need = max(math.ceil(3 / max(1e-9, 1 - gates.min_agreement)), math.ceil(100 / max(gates.max_drop, 1e-9)))
    if n >= need:
        return None
    return (f"only {n} held-out images: one image moves accuracy by {100 / max(n, 1):.1f} points, so passing the gates "
            f"proves little; about {need} images would (add validation images, or a test/ split)")


def reference(model_path: Path, pixels: np.ndarray | ArrayStore, y: np.ndarray) -> Reference:
    """Run the trained Keras model through the runtime layer on N uint8 images at its size (an
    array, or a store read a batch at a time)."""
    probs, _ = run_on_pixels(load(model_path), pixels)
    if y.ndim == 2:  # multi-label: the whole set of labels right
        return Reference(probs, y, float(np.all((probs >= DECISION) == (y >= 0.5), axis=1).mean()))
    return Reference(probs, y, float((probs.argmax(1) == y).mean()))


def _verify_labels(path: Path, clf, probs: np.ndarray, ref: Reference, pixels, gates: Gates, fmt: str,
                   precision: str) -> Check:
    """A multi-label artifact: each image's set of labels (scores at or above 0.5) against
    Keras's, judged by the same evidence rule as a class (an image is right when its whole set
    is), and each label's decisions by the same rule; the decisions that differ are counted and
    logged."""
    truth, ours = ref.labels >= 0.5, probs >= DECISION
    evidence, verdict = judge_label_sets(truth, ref.probs >= DECISION, ours, clf.labels, gates.max_drop,
                                         gates.min_agreement, gates.strict)
    flips = int(((probs >= DECISION) != (ref.probs >= DECISION)).sum())
    logger.info("%s: %d of %d label decisions differ from Keras's (%d images with another set of labels)",
                path.name, flips, probs.size, evidence.disagree)
    acc = float(np.all(ours == truth, axis=1).mean()) if len(truth) else 0.0
    diff = float(np.abs(probs - ref.probs).max())
    latency = quick_latency(clf, clf.to_input(pixels[:1]))
    return Check(path.name, fmt, precision, path.stat().st_size, acc, evidence.drop_points, evidence.agreement, diff,
                 latency, clf.runtime, verdict.ships, verdict.reason if verdict.status != PASSED else "", verdict.status,
                 evidence.lost, evidence.gained, verdict.p_value, evidence.agreement, 0, 0, len(truth))


def verify(path: Path, ref: Reference, pixels: np.ndarray | ArrayStore, gates: Gates, fmt: str, precision: str,
           threads: int | None = None) -> Check:
    """Compare one artifact with the reference on the same images."""
    clf = load(path, threads=threads)
    probs, _ = run_on_pixels(clf, pixels)
    if clf.multi_label:
        return _verify_labels(path, clf, probs, ref, pixels, gates, fmt, precision)
    pred = probs.argmax(1)
    # The top-1 class is compared where Keras's rule lets the class through (its gate's factor, the
    # sum of its scores, above the band). Where the rule refuses an image, every class score is
    # the softmax times a factor under 0.02, often under 1e-30: the largest of those is noise (an
    # int8 output rounds them all to 0, a runtime that flushes denormals to zero ties them), and
    # "unknown" is the answer, judged below with the others.
    factor = ref.probs.sum(axis=1)
    classed = factor > BAND[0]
    acc = float((pred[classed] == ref.labels[classed]).mean()) if classed.any() else 0.0
    evidence = Evidence.of(ref.labels[classed], ref.probs.argmax(1)[classed], pred[classed])
    diff = float(np.abs(probs - ref.probs).max())
    latency = quick_latency(clf, clf.to_input(pixels[:1]))
    verdict = judge(evidence, gates.max_drop, gates.min_agreement, gates.strict)
    # The "unknown" decision too: a class or "unknown" for each image, at the model's own threshold,
    # judged by the same evidence rule on the images clear of the rule's own band. Keras's scores
    # sum to its gate's factor: between 0.02 and 0.98 an image's features sit within a few
    # hundredths of the threshold, where any change of arithmetic (int8, another CPU) may tip it,
    # as a class flips at its margin; the agreement shown is over every image.
    ours, theirs = decisions(probs, clf.threshold), decisions(ref.probs, clf.threshold)
    clear = (factor <= BAND[0]) | (factor >= BAND[1])
    answers = Evidence.of(ref.labels, theirs, ours)
    judged = Evidence.of(ref.labels[clear], theirs[clear], ours[clear])
    verdict = worse(verdict, judge(judged, 100.0, gates.min_agreement, gates.strict),
                    f"answers with \"unknown\" ({judged.n} images clear of the rule's threshold)")
    return Check(path.name, fmt, precision, path.stat().st_size, acc, evidence.drop_points, evidence.agreement, diff,
                 latency, clf.runtime, verdict.ships, verdict.reason if verdict.status != PASSED else "", verdict.status,
                 evidence.lost, evidence.gained, verdict.p_value, answers.agreement, int((ours == -1).sum()),
                 int((theirs == -1).sum()), int(classed.sum()))
