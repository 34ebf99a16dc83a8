"""What a multi-label model chooses on its own validation split: each label's threshold (its best
F1, or the most recall at ``--min-precision``), folded into the last layer so that every artifact's
scores cross 0.5 exactly at each label's threshold; then its held-out figures at 0.5."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetl.atomic import replacing
from edgetl.label_metrics import MultiLabelReport, ThresholdRule, choose_thresholds, fold_thresholds, report
from edgetl.runs import RunFolder
from edgetl.text import clean


def fold_into(model, thresholds: list[float]) -> None:
    """sigmoid(Wx + b) -> sigmoid(Wx + b - logit(t)): 0.5 where the score was t, per label."""
    head = model.get_layer("predictions")
    kernel, bias = head.get_weights()
    t = np.asarray(thresholds, np.float64)
    head.set_weights([kernel, (bias - np.log(t / (1 - t))).astype(bias.dtype)])


def choose_and_fold(cfg, work: Path, model, probs: dict[str, np.ndarray], truth: dict[str, np.ndarray],
                    labels: list[str], log) -> tuple[list[float], dict[str, MultiLabelReport], dict[str, np.ndarray]]:
    """Choose the thresholds on ``probs["val"]``, fold them into ``model`` (saved over model.keras)
    and return them, each split's report at 0.5 and its folded scores."""
    rule = ThresholdRule(cfg.label_threshold)
    thresholds, notes = choose_thresholds(truth["val"], probs["val"], rule, cfg.min_precision)
    fold_into(model, thresholds)
    with replacing(RunFolder(work).model) as tmp:
        model.save(tmp)
    folded = {s: fold_thresholds(p, thresholds) for s, p in probs.items()}
    reports = {s: report(truth[s], folded[s], labels) for s in folded}
    said = ", ".join(f"{clean(label)} {t:.3f}" + (f" ({n})" if n else "") for label, t, n in zip(labels, thresholds, notes))
    v = reports["val"]
    log(f"label thresholds ({'best F1' if rule == ThresholdRule.F1 else f'precision {cfg.min_precision:g}'} on "
        f"{len(truth['val'])} val images), folded into the model so 0.5 decides every label: {said}")
    log(f"multi-label on val: mAP {v.map if v.map is not None else float('nan'):.4f}, micro F1 {v.micro_f1:.4f}, "
        f"macro F1 {v.macro_f1:.4f}, exact match {v.exact_match:.4f}")
    return thresholds, reports, folded
