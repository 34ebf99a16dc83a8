"""What training optimises, per task: the head's activation, the loss (for Keras's fit and, per
example, for the multi-worker loop) and what "accuracy" means in the epoch log. Single-label:
softmax and categorical cross-entropy, top-1 accuracy. Multi-label: sigmoid and binary
cross-entropy with each label's positives weighted by how rare they are, exact-match accuracy (the
whole set of labels right)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgetl.registry import Registry
from edgetl.runtime.task import Task

MAX_POSITIVE_WEIGHT = 10.0
"""A rare label's positives weigh (negatives / positives) in the loss, at most this much: enough to
keep a 1-in-20 label from being learnt as "never", not so much that a handful of images dominate."""


def positive_weights(targets: np.ndarray) -> np.ndarray:
    """Per label: negatives / positives among the training targets, clipped to [1, MAX]."""
    pos = targets.sum(0)
    neg = len(targets) - pos
    return np.clip(neg / np.maximum(pos, 1.0), 1.0, MAX_POSITIVE_WEIGHT).astype(np.float32)


@dataclass(frozen=True)
class Objective:
    """One task's activation, loss and accuracy."""

    activation: str
    per_example: Callable
    """(y, p, label_smoothing, positive_weights) -> loss per example (a tensor of shape (N,))."""
    hit: Callable
    """(y, p) -> 1.0 where the example is answered right, else 0.0."""

    def loss(self, label_smoothing: float, weights: np.ndarray | None):
        """The Keras loss: the mean over the batch of :attr:`per_example`."""
        import keras

        def loss(y, p):
            return keras.ops.mean(self.per_example(y, p, label_smoothing, weights))
        return loss

    def accuracy(self):
        """The epoch log's accuracy as a Keras metric."""
        import keras

        return keras.metrics.MeanMetricWrapper(self.hit, name="accuracy")


def _categorical(y, p, label_smoothing, weights):
    import keras

    return keras.losses.categorical_crossentropy(y, p, label_smoothing=label_smoothing)


def _top1(y, p):
    import keras

    return keras.ops.cast(keras.ops.equal(keras.ops.argmax(p, -1), keras.ops.argmax(y, -1)), "float32")


def _binary(y, p, label_smoothing, weights):
    import keras

    ops = keras.ops
    y = ops.cast(y, "float32")
    if label_smoothing:
        y = y * (1 - label_smoothing) + 0.5 * label_smoothing
    p = ops.clip(p, 1e-7, 1 - 1e-7)
    w = 1.0 if weights is None else ops.convert_to_tensor(weights)
    return ops.mean(-(w * y * ops.log(p) + (1 - y) * ops.log(1 - p)), axis=-1)


def _exact(y, p):
    import keras

    ops = keras.ops
    same = ops.equal(ops.cast(p >= 0.5, "float32"), ops.cast(y >= 0.5, "float32"))
    return ops.cast(ops.all(same, axis=-1), "float32")


OBJECTIVES: Registry[Objective] = Registry("objective", [
    (Task.SINGLE_LABEL, Objective("softmax", _categorical, _top1)),
    (Task.MULTI_LABEL, Objective("sigmoid", _binary, _exact)),
])
