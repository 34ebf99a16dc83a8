"""A run's splits as the stages read them, and the model's probabilities on one."""
from __future__ import annotations

import numpy as np

from edgetl.data.audit import targets
from edgetl.data.cache import open_images
from edgetl.training.config import TrainConfig
from edgetl.training.inputs import Split


def open_split(records: list, cfg: TrainConfig, quiet: bool = False, num_labels: int = 0) -> Split:
    """A split's images decoded at the model's size into the disk cache, and its targets."""
    p = cfg.pixels
    store = open_images([r.path for r in records], p, use_cache=cfg.cache,
                        hashes=[r.sha256 for r in records], quiet=quiet)
    return Split(store, targets(records, num_labels))


def predict(model, batches) -> np.ndarray:
    """Probabilities of a Keras model over float32 batches."""
    return np.concatenate([np.asarray(model.predict_on_batch(b)) for b in batches])
