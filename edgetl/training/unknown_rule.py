"""Choose the "unknown" rule from the classes' own images and fold it into the model.

Why this rule: the softmax of a two-class model answers a parrot "bees 0.78" (no threshold on it
separates the parrot from the 5 % least sure bees), while the pooled backbone features of a parrot
point away from both classes' mean direction. The cosine similarity to the nearest class mean
needs nothing but the training images (one mean vector per class: memory and the model's size do
not grow with the number of images), works for 1,000 classes, and is two small layers in the graph.
See :mod:`edgetl.runtime.unknown_rule` for the contract and the folded form.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from edgetl.runtime.unknown_rule import LAYER_PREFIX as PREFIX, SHARPNESS, FeatureRule

log = logging.getLogger(__name__)

MIN_VAL_IMAGES = 20
"""Validation images a threshold is chosen on at the least: on fewer, one image moves the answer
rate by over 5 points."""
FEATURE_LAYER = "head_dropout"
"""The layer whose input is the pooled backbone feature (the head's Dropout, identity at inference)."""
PER_CLASS = 500
"""Training images per class whose features make the class means: a mean converges long before,
and a large dataset costs one pass over at most this many images per class."""


@dataclass(frozen=True)
class Choice:
    """A rule chosen, or why none was (``rule`` None)."""

    rule: FeatureRule | None
    means: np.ndarray | None
    """(classes, features) unit vectors."""
    why: str


def feature_model(model):
    """``model`` cut at the pooled backbone feature (shares its layers)."""
    import keras

    return keras.Model(model.inputs, model.get_layer(FEATURE_LAYER).input)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def class_means(features: Iterable[tuple[np.ndarray, np.ndarray]], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class mean direction of unit-normalised features, from (features, labels) batches as
    they come; returns the (classes, dim) unit means and the images per class. Memory: one sum per class."""
    sums, counts = None, np.zeros(num_classes, np.int64)
    for f, y in features:
        u = _unit(f.astype(np.float64))
        if sums is None:
            sums = np.zeros((num_classes, u.shape[1]))
        np.add.at(sums, y, u)
        counts += np.bincount(y, minlength=num_classes)
    if sums is None:
        return np.zeros((num_classes, 0)), counts
    return _unit(sums).astype(np.float32), counts


def nearest_similarity(features: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Cosine similarity of each feature row to the nearest class mean."""
    return (_unit(features.astype(np.float32)) @ means.T).max(axis=1)


def gate(similarity: np.ndarray, threshold: float, sharpness: float = SHARPNESS) -> np.ndarray:
    """The factor the folded rule multiplies every score by (what the model computes)."""
    return 1.0 / (1.0 + np.exp(-sharpness * (similarity - threshold)))


def choose(val_features: np.ndarray, val_labels: np.ndarray, val_probs: np.ndarray, means: np.ndarray,
           counts: np.ndarray, answer_rate: float) -> Choice:
    """The threshold that answers ``answer_rate`` of the validation images, or no rule with the reason."""
    n = len(val_labels)
    if n < MIN_VAL_IMAGES:
        return Choice(None, None, f"{n} validation images are too few to choose the \"unknown\" rule on "
                                  f"({MIN_VAL_IMAGES} or more; give more images or a larger --val-split)")
    if not np.all(np.isfinite(val_features)) or not np.all(np.isfinite(means)):
        return Choice(None, None, "the model's features are not finite numbers (NaN): no \"unknown\" rule")
    empty = [c for c, k in enumerate(counts) if k == 0]
    if empty:
        return Choice(None, None, f"classes {empty} have no training image to make a mean from: no \"unknown\" rule")
    sims = nearest_similarity(val_features, means)
    if float(sims.max() - sims.min()) < 1e-6:
        return Choice(None, None, "every validation image's features are the same (a constant feature "
                                  "extractor): no \"unknown\" rule can be chosen")
    order = np.sort(sims)
    threshold = float(order[min(int(np.floor((1 - answer_rate) * n)), n - 1)])
    answered = sims >= threshold
    right = val_probs.argmax(1) == val_labels
    rule = FeatureRule(threshold=threshold, answer_rate=answer_rate, answered=float(answered.mean()),
                       accuracy_answered=float(right[answered].mean()), accuracy_all=float(right.mean()),
                       images=n, class_images=int(counts.sum()))
    return Choice(rule, means, rule.said())


def with_rule(model, means: np.ndarray, rule: FeatureRule):
    """``model`` with the rule folded into its scores: built-in Keras layers only (so the file
    loads in Keras's safe mode and converts to every format)::

        features -> unit -> similarity to each class mean -> max -> sigmoid gate -> scores * gate
    """
    import keras

    k = means.shape[0]
    features = model.get_layer(FEATURE_LAYER).input
    unit = keras.layers.UnitNormalization(name=f"{PREFIX}unit")(features)
    similarity = keras.layers.Dense(k, use_bias=False, name=f"{PREFIX}similarity")
    sims = similarity(unit)
    nearest = keras.layers.GlobalMaxPooling1D(name=f"{PREFIX}nearest")(keras.layers.Reshape((k, 1), name=f"{PREFIX}column")(sims))
    factor = keras.layers.Dense(1, activation="sigmoid", name=f"{PREFIX}gate")
    g = factor(nearest)
    spread = keras.layers.Dense(k, use_bias=False, name=f"{PREFIX}spread")
    scores = keras.layers.Multiply(name=f"{PREFIX}scores", dtype="float32")([model.output, spread(g)])
    folded = keras.Model(model.inputs, scores, name=model.name)
    similarity.set_weights([means.T.astype(np.float32)])
    factor.set_weights([np.array([[rule.sharpness]], np.float32),
                        np.array([-rule.sharpness * rule.threshold], np.float32)])
    spread.set_weights([np.ones((1, k), np.float32)])
    return folded
