"""Training input: batches read from a store on disk (decoded images or stage-1 features) as a
tf.data pipeline, in a seeded order that changes every epoch, one shard per worker.

Nothing here holds a split in memory: a Python generator reads one batch of positions with
``pread`` (tens of thousands of images per second from the page cache), tf.data prefetches it
while the model works on the previous one."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgetl.data.cache import ArrayStore


PREFETCH_BATCHES = 2
"""Batches read ahead while the model works: enough to hide a read, and memory stays a few batches."""


@dataclass
class Split:
    """One split's inputs on disk and its targets: class indices (N,), or a 0/1 matrix (N, labels)
    for multi-label (the per-image bookkeeping in memory)."""

    store: ArrayStore
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def _as_float(x, y, w):
    import tensorflow as tf

    return tf.cast(x, tf.float32), y, w


def class_weights(labels: np.ndarray, n: int) -> np.ndarray:
    """Inverse class frequency per class (0 for a class with no images)."""
    counts = np.bincount(labels, minlength=n).astype(float)
    return np.where(counts > 0, len(labels) / (n * np.maximum(counts, 1)), 0.0).astype(np.float32)


def steps_per_epoch(n: int, global_batch: int) -> int:
    """Optimizer steps in one pass over ``n`` items."""
    return max(1, math.ceil(n / global_batch))


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Positions in the order one epoch reads them: a permutation seeded by (seed, epoch), so every
    worker computes the same one and a resumed run reads what it would have read."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def padded(order: np.ndarray, items: int) -> tuple[np.ndarray, np.ndarray]:
    """``order`` cut or padded to ``items`` positions, and a 0/1 mask of the real ones (padding
    repeats the first position, weighted 0)."""
    positions = np.full(items, order[0] if len(order) else 0, np.int64)
    mask = np.zeros(items, np.float32)
    positions[:len(order)], mask[:len(order)] = order[:items], 1.0
    return positions, mask


def dataset(split: Split, num_classes: int, batch: int, seed: int, shuffle: bool, first_epoch: int = 0,
            weights: np.ndarray | None = None, batches: int | None = None, views: int = 1):
    """(float32 inputs, one-hot labels, sample weights) batches of ``split`` (multi-label: the
    0/1 label rows as they are, each weighing 1; rare labels are weighted in the loss).

    Each iteration of the dataset is one epoch, in a new seeded order. ``weights`` are per-class
    sample weights (class balancing). ``batches`` fixes the number of whole batches per epoch,
    padding weighted 0: every worker of a cluster must run the same number of steps, or the one
    that finished first would leave the others waiting in a collective for ever. Without it the
    split is read once and the last batch is short. With ``views`` > 1 the store holds that many
    versions of every item (augmented views' features, view-major) and epoch e reads view e mod views."""
    import tensorflow as tf

    store, labels = split.store, split.labels
    multi = labels.ndim == 2
    onehot = np.eye(num_classes, dtype=np.float32)
    per_class = np.ones(num_classes, np.float32) if weights is None else weights
    epochs = iter(range(first_epoch, 1 << 30))

    def one_epoch():
        epoch = next(epochs)
        order = epoch_order(len(labels), seed, epoch, shuffle)
        offset = (epoch % views) * len(labels)
        if batches is None:
            positions, mask = order, np.ones(len(order), np.float32)
        else:
            positions, mask = padded(order, batches * batch)
        for start in range(0, len(positions), batch):
            # Sorted reads within a batch are closer to sequential on disk; the order inside a batch
            # does not matter to a gradient.
            within = np.argsort(positions[start:start + batch], kind="stable")
            pos, m = positions[start:start + batch][within], mask[start:start + batch][within]
            y = labels[pos]
            if multi:
                yield store.read(pos + offset), y, m
            else:
                yield store.read(pos + offset), onehot[y], per_class[y] * m

    shape = store.item_shape
    ds = tf.data.Dataset.from_generator(one_epoch, output_signature=(
        tf.TensorSpec((None, *shape), tf.as_dtype(store.dtype)),
        tf.TensorSpec((None, num_classes), tf.float32),
        tf.TensorSpec((None,), tf.float32)))
    count = batches if batches is not None else math.ceil(len(labels) / batch)
    # A known length: Keras then counts steps from the first epoch instead of running into the end.
    ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    # One cast per batch: nothing to run in parallel (and a parallel map, rewritten under op
    # determinism, makes TensorFlow print a C++ error line for an attribute it drops).
    ds = ds.map(_as_float)
    options = tf.data.Options()
    # Each worker already reads only its own shard of the files: tf.data must not shard it again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # A fixed prefetch of two batches: AUTOTUNE may size its buffers from the machine's free RAM,
    # and then holds a good part of an epoch in memory (measured: +2.3 GB per 1,000 images).
    options.autotune.enabled = False
    return ds.with_options(options).prefetch(PREFETCH_BATCHES)
