"""Multi-label figures with numpy only (train, export and eval alike): average precision per label
and its macro mean (mAP), precision/recall/F1 per label at the decision score, micro and macro F1,
the exact-match ratio; and each label's threshold chosen on the validation split."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from edgetl.runtime.task import DECISION
from edgetl.text import clean


class ThresholdRule(StrEnum):
    """How each label's threshold is chosen on the validation split."""

    F1 = "f1"
    """The best F1 of that label (precision and recall weighed alike)."""
    PRECISION = "precision"
    """The lowest threshold that keeps ``--min-precision`` on that label (the most recall at that precision)."""


@dataclass
class LabelFigures:
    """One label on the held-out images."""

    label: str
    ap: float | None
    """Average precision (area under its precision-recall curve); None without a positive image."""
    precision: float
    recall: float
    f1: float
    support: int
    """Held-out images that have the label."""


@dataclass
class MultiLabelReport:
    """A multi-label model's figures at the decision score."""

    map: float | None
    """Macro mean of the labels' average precision (labels with a positive image)."""
    micro_f1: float
    macro_f1: float
    exact_match: float
    """Share of images whose whole set of labels is right."""
    per_label: list[LabelFigures]
    count: int

    @property
    def accuracy(self) -> float:
        """The exact-match ratio: what "accuracy" means for a set of labels."""
        return self.exact_match

    def to_dict(self) -> dict:
        return asdict(self)


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the precision-recall curve, as the mean precision at each positive's rank (ties
    broken by order); None without a positive."""
    positive = np.asarray(positive, bool)
    if not positive.any():
        return None
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    hits = positive[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def _f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def report(truth: np.ndarray, scores: np.ndarray, labels: list[str], decision: float = DECISION) -> MultiLabelReport:
    """The figures of ``scores`` (N, labels) against 0/1 ``truth`` at ``decision``."""
    truth, pred = np.asarray(truth) >= 0.5, np.asarray(scores) >= decision
    per = []
    for i, label in enumerate(labels):
        tp = float((truth[:, i] & pred[:, i]).sum())
        fp = float((~truth[:, i] & pred[:, i]).sum())
        fn = float((truth[:, i] & ~pred[:, i]).sum())
        p, r, f = _f1(tp, fp, fn)
        per.append(LabelFigures(label, average_precision(scores[:, i], truth[:, i]), p, r, f, int(truth[:, i].sum())))
    tp, fp, fn = float((truth & pred).sum()), float((~truth & pred).sum()), float((truth & ~pred).sum())
    aps = [x.ap for x in per if x.ap is not None]
    return MultiLabelReport(float(np.mean(aps)) if aps else None, _f1(tp, fp, fn)[2],
                            float(np.mean([x.f1 for x in per])) if per else 0.0,
                            float(np.mean(np.all(truth == pred, axis=1))) if len(truth) else 0.0, per, len(truth))


def choose_thresholds(truth: np.ndarray, scores: np.ndarray, rule: ThresholdRule = ThresholdRule.F1,
                      min_precision: float = 0.95) -> tuple[list[float], list[str]]:
    """Each label's threshold on its own score (N, labels) and a note per label where the rule
    could not be met (no positive image: the threshold stays at 0.5). A threshold sits halfway
    between the lowest score it accepts and the next one below, so a validation image is never
    exactly on it."""
    thresholds, notes = [], []
    truth = np.asarray(truth) >= 0.5
    for i in range(truth.shape[1]):
        s, y = np.asarray(scores[:, i], np.float64), truth[:, i]
        if not y.any() or y.all():
            thresholds.append(DECISION)
            notes.append("no positive image in validation" if not y.any() else "every validation image has it")
            continue
        order = np.argsort(-s, kind="stable")
        ss, hits = s[order], y[order]
        tp = np.cumsum(hits)
        fp = np.cumsum(~hits)
        precision = tp / (tp + fp)
        recall = tp / y.sum()
        # only cut where the score changes (a cut inside a run of equal scores is not a threshold)
        cut = np.r_[ss[1:] < ss[:-1], True]
        if rule == ThresholdRule.PRECISION:
            ok = np.where(cut & (precision >= min_precision))[0]
            if not len(ok):
                k = int(np.argmax(np.where(cut, precision, -1)))
                notes.append(f"no threshold keeps precision {min_precision:g}; the most precise one is used "
                             f"({precision[k]:.3f})")
            else:
                k = int(ok[np.argmax(recall[ok])])
                notes.append("")
        else:
            f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
            k = int(np.argmax(np.where(cut, f1, -1)))
            notes.append("")
        below = ss[k + 1] if k + 1 < len(ss) else 0.0
        thresholds.append(float(np.clip((ss[k] + below) / 2, 1e-4, 1 - 1e-4)))
    return thresholds, notes


def fold_thresholds(scores: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """Sigmoid scores as the folded model gives them: sigmoid(logit(s) - logit(t)), 0.5 at each
    label's threshold."""
    s = np.clip(np.asarray(scores, np.float64), 1e-7, 1 - 1e-7)
    t = np.asarray(thresholds, np.float64)
    z = np.log(s / (1 - s)) - np.log(t / (1 - t))
    return (1 / (1 + np.exp(-z))).astype(np.float32)


def plot_pr_curves(truth: np.ndarray, scores: np.ndarray, labels: list[str], path: str | Path,
                   decision: float = DECISION) -> None:
    """Precision against recall per label, each label's decision point marked (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgetl.metrics import PLAIN_TEXT, save_figure

    truth = np.asarray(truth) >= 0.5
    with plt.rc_context(PLAIN_TEXT):
        fig, ax = plt.subplots(figsize=(6.5, 5))
        for i, label in enumerate(labels[:20]):
            y, s = truth[:, i], scores[:, i]
            if not y.any():
                continue
            order = np.argsort(-s, kind="stable")
            tp = np.cumsum(y[order])
            precision, recall = tp / np.arange(1, len(s) + 1), tp / y.sum()
            line, = ax.plot(recall, precision, lw=1.5, label=f"{clean(label)} (AP {average_precision(s, y):.3f})")
            chosen = s >= decision
            p, r, _ = _f1(float((chosen & y).sum()), float((chosen & ~y).sum()), float((~chosen & y).sum()))
            ax.plot([r], [p], "o", color=line.get_color(), ms=7)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_title("precision-recall per label (dot: the chosen threshold)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
        fig.tight_layout()
        save_figure(fig, path)
    plt.close(fig)
