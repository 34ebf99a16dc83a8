"""The task a model answers: one class per image, or every label that is present. A typed field of
the manifest, read at each boundary (data, training, export, runtime), so the two kinds share one
code path. TensorFlow-free."""
from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    """What a model's scores mean."""

    SINGLE_LABEL = "single-label"
    """Scores are one probability distribution: the answer is the top class (or "unknown")."""
    MULTI_LABEL = "multi-label"
    """One independent score per label: the answer is every label whose score reaches
    :data:`DECISION` (possibly none)."""


DECISION = 0.5
"""A multi-label model's decision score for every label: each label's own threshold, chosen on the
validation split, is folded into the model's last layer so that the threshold maps to 0.5. Any
consumer (MediaPipe's ``score_threshold``, a C++ app) then uses one number for all labels."""

LABEL_SEPARATORS = (";", "|")
"""What separates the labels of one image in a multi-label CSV cell, and in what `predict` prints."""


def present(scores, labels: list[str]) -> list[tuple[str, float]]:
    """The labels whose score reaches :data:`DECISION`, best first, with their scores."""
    found = [(labels[i], float(s)) for i, s in enumerate(scores) if s >= DECISION]
    return sorted(found, key=lambda t: -t[1])
