"""The training images int8 calibration reads: a stratified sample, so every class is seen."""
from __future__ import annotations


import numpy as np


def stratified(records: list, n: int, seed: int = 0) -> list:
    """Up to n records with every class in proportion."""
    if len(records) <= n:
        return records
    rng = np.random.default_rng(seed)
    by_class: dict[int, list] = {}
    for r in records:
        by_class.setdefault(r.label, []).append(r)
    picked = []
    for items in by_class.values():
        k = max(1, round(n * len(items) / len(records)))
        picked.extend(items[i] for i in sorted(rng.choice(len(items), min(k, len(items)), replace=False)))
    return picked[:n]
