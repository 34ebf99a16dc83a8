"""Accuracy cheaply: rank the architectures that meet the budget before any of them is trained.

Each architecture's pretrained backbone turns a sample of the training and validation photos into
features, and a linear classifier fitted on them (what stage 1 trains, without augmentation) gives
the validation accuracy to rank by. Every photo is decoded once for all the architectures: each
batch is decoded, resized to every size in the search, and run through every backbone before the
next batch is read, so memory holds one batch of pixels and the features (of at most
:data:`MAX_TRAIN` + :data:`MAX_VAL` photos, whatever the dataset's size)."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from edgetl.data.audit import Audit, ImageRecord
from edgetl.data.cache import decode_workers
from edgetl.errors import EdgetlError
from edgetl.image import DecodeError, decode, resize
from edgetl.progress import bar
from edgetl.tuning.grid import Architecture

logger = logging.getLogger(__name__)

MAX_TRAIN = 2000
"""Training photos the estimate fits on at most (a stratified sample beyond that)."""
MAX_VAL = 1000
BATCH = 32


@dataclass
class Estimate:
    """One architecture's quick score."""

    accuracy: float
    """Validation accuracy of a linear classifier on the frozen backbone's features."""
    train_images: int
    val_images: int
    seconds: float


def sample(records: list[ImageRecord], limit: int, seed: int) -> list[ImageRecord]:
    """At most ``limit`` records, the same share of each class (all of them when fewer)."""
    if len(records) <= limit:
        return records
    rng = np.random.default_rng(seed)
    by_class: dict[object, list[ImageRecord]] = {}
    for r in records:  # a multi-label record's group is its set of labels
        by_class.setdefault(r.key, []).append(r)
    keep = []
    for label, group in sorted(by_class.items()):
        n = max(1, round(limit * len(group) / len(records)))
        keep += [group[i] for i in sorted(rng.choice(len(group), min(n, len(group)), replace=False))]
    return keep


def _pixels(record: ImageRecord, sizes: list[int], method: str) -> dict[int, np.ndarray]:
    try:
        image = decode(record.path)
    except DecodeError as e:
        raise EdgetlError(f"cannot decode this image ({e})", path=record.path,
                          fix="run `edgetl data check` on the folder and fix or remove the file") from None
    return {s: resize(image, s, s, method) for s in sizes}


def _features(models: dict[Architecture, object], records: list[ImageRecord], method: str, what: str) -> dict:
    """Features of every record through every model, decoding each photo once."""
    sizes = sorted({a.size for a in models})
    out: dict[Architecture, list[np.ndarray]] = {a: [] for a in models}
    progress = bar(f"Features of {len(records)} {what} photos x {len(models)} backbone(s)", len(records))
    try:
        with ThreadPoolExecutor(decode_workers()) as pool:
            for start in range(0, len(records), BATCH):
                batch = list(pool.map(lambda r: _pixels(r, sizes, method), records[start:start + BATCH]))
                for arch, model in models.items():
                    x = np.stack([b[arch.size] for b in batch]).astype(np.float32)
                    out[arch].append(np.asarray(model(x, training=False)))
                progress.update(min(len(records), start + BATCH))
    finally:
        progress.close()
    return {a: np.concatenate(parts) for a, parts in out.items()}


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                 classes: int, steps: int = 300, l2: float = 1e-3) -> float:
    """Validation accuracy of a softmax classifier fitted on standardised features by full-batch
    gradient descent (deterministic: no random start, no shuffling)."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (val_x - mean) / std
    onehot = np.eye(classes)[train_y]
    w, bias = np.zeros((a.shape[1], classes)), np.zeros(classes)
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(bias), np.zeros_like(bias)
    lr, beta1, beta2 = 0.01, 0.9, 0.999
    for t in range(1, steps + 1):  # Adam on the mean cross-entropy
        logits = a @ w + bias
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(a)
        gw, gb = a.T @ g + l2 * w, g.sum(0)
        m_w, v_w = beta1 * m_w + (1 - beta1) * gw, beta2 * v_w + (1 - beta2) * gw ** 2
        m_b, v_b = beta1 * m_b + (1 - beta1) * gb, beta2 * v_b + (1 - beta2) * gb ** 2
        w -= lr * (m_w / (1 - beta1 ** t)) / (np.sqrt(v_w / (1 - beta2 ** t)) + 1e-8)
        bias -= lr * (m_b / (1 - beta1 ** t)) / (np.sqrt(v_b / (1 - beta2 ** t)) + 1e-8)
    return float(np.mean((b @ w + bias).argmax(1) == val_y))


def estimate(archs: list[Architecture], data: Audit, weights: str, method: str, seed: int = 0) -> dict[Architecture, Estimate]:
    """Each architecture's linear-probe accuracy on ``data``'s validation split."""
    import time

    from edgetl.models.backbones import build_base, get_backbone
    from edgetl.native_logs import quiet_import

    if not archs:
        return {}
    keras = quiet_import("keras")
    start = time.perf_counter()
    train = sample(data.split("train"), MAX_TRAIN, seed)
    val = sample(data.split("val"), MAX_VAL, seed)
    models = {}
    for arch in archs:
        spec = get_backbone(arch.backbone)
        base = build_base(spec, arch.size, arch.alpha, weights)
        inputs = keras.Input((arch.size, arch.size, 3))
        x = inputs
        if not spec.normalises_itself:
            lo, hi = spec.base_range
            x = keras.layers.Rescaling((hi - lo) / 255.0, offset=lo)(x)
        models[arch] = keras.Model(inputs, base(x, training=False))
    train_f = _features(models, train, method, "training")
    val_f = _features(models, val, method, "validation")
    seconds = (time.perf_counter() - start) / len(archs)  # the shared decode, shared out
    if data.multi_label:  # one binary probe per label: the mean of their accuracies
        from edgetl.data.audit import targets

        ty, vy = targets(train, len(data.classes)).astype(int), targets(val, len(data.classes)).astype(int)
        result = {a: Estimate(float(np.mean([linear_probe(train_f[a], ty[:, i], val_f[a], vy[:, i], 2)
                                             for i in range(len(data.classes))])), len(train), len(val), seconds)
                  for a in archs}
    else:
        ty, vy = np.array([r.label for r in train]), np.array([r.label for r in val])
        result = {a: Estimate(linear_probe(train_f[a], ty, val_f[a], vy, len(data.classes)), len(train), len(val),
                              seconds) for a in archs}
    for a, e in result.items():
        logger.info("estimate %s: %.3f on %d validation photos", a.describe(), e.accuracy, e.val_images)
    return result
