"""Classification metrics with numpy only (used by train, verify and eval alike)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgetl.atomic import replacing
from edgetl.text import clean


@dataclass
class ClassReport:
    """Precision, recall and support of one class."""

    label: str
    precision: float
    recall: float
    support: int


@dataclass
class Report:
    """Accuracy, per-class figures and the confusion matrix (rows: true, columns: predicted)."""

    accuracy: float
    per_class: list[ClassReport]
    confusion: list[list[int]]
    labels: list[str]
    count: int

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """n x n counts, rows true class, columns predicted class."""
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> Report:
    """Accuracy, precision/recall per class and the confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(cm).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(tp / cm.sum(axis=0))
        recall = np.nan_to_num(tp / cm.sum(axis=1))
    per = [ClassReport(labels[i], float(precision[i]), float(recall[i]), int(cm[i].sum())) for i in range(len(labels))]
    total = int(cm.sum())
    return Report(float(tp.sum() / total) if total else 0.0, per, cm.tolist(), list(labels), total)


def _binary_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for ``positive``: the chance a positive scores above
    a negative (ties count half), from average ranks; None without both kinds."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2 + 1
    ranks[order] = np.repeat(average, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC of ``scores`` for telling ``positive`` (bool) from the rest; None without both kinds."""
    return _binary_auc(np.asarray(scores, np.float64), np.asarray(positive, bool))


def roc_auc(probs: np.ndarray, labels: np.ndarray, n: int) -> float | None:
    """ROC AUC, one class against the rest, averaged over the classes present (macro); for two
    classes the usual binary AUC. None when fewer than two classes are present."""
    labels = np.asarray(labels)
    if n == 2:
        return _binary_auc(probs[:, 1], labels == 1)
    aucs = [a for a in (_binary_auc(probs[:, c], labels == c) for c in range(n)) if a is not None]
    return float(np.mean(aucs)) if aucs else None


def plot_confusion(rep: Report, path: str, title: str = "Confusion matrix") -> None:
    """Write the confusion matrix as a PNG (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(rep.confusion)
    n = len(rep.labels)
    labels = [clean(label) for label in rep.labels]
    with plt.rc_context(PLAIN_TEXT):  # class names are plain text: "$x$" is not maths, "_" not a subscript
        fig, ax = plt.subplots(figsize=(2 + 0.6 * n, 1.6 + 0.6 * n))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(n), labels, rotation=45, ha="right")
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{clean(title)} (accuracy {rep.accuracy:.3f})")
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
        fig.tight_layout()
        save_figure(fig, path)
    plt.close(fig)


PLAIN_TEXT = {"text.parse_math": False, "text.usetex": False}
"""matplotlib settings under which every string is drawn as it is."""


def save_figure(fig, path: str | Path) -> None:
    """Save a matplotlib figure as PNG under a temporary name, then rename it into place."""
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=110)
