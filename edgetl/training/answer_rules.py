"""What a trained model chooses on its own validation split: the temperature, the score
threshold, and the "unknown" rule from its features (see :mod:`edgetl.training.unknown_rule`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetl.atomic import replacing
from edgetl.errors import EdgetlError
from edgetl.runs import RunFolder
from edgetl.runtime.confidence import Confidence, calibrate, reliability, risk_coverage, threshold_rule, with_temperature
from edgetl.training.config import TrainConfig
from edgetl.training.inputs import Split
from edgetl.training.checks import unknown_files
from edgetl.training.splits import open_split


def unknown_probs(model, folder: str | Path, pixels, batch_size: int, log) -> np.ndarray:
    """``model``'s outputs on the images of ``folder`` (``--unknown``: none of the classes), decoded
    a batch at a time; a file that cannot be read is skipped and counted."""
    from edgetl.image import DecodeError, load

    files, out, bad = unknown_files(folder), [], 0
    for start in range(0, len(files), batch_size):
        batch = []
        for path in files[start:start + batch_size]:
            try:
                batch.append(load(path, pixels.height, pixels.width, pixels.resize))
            except (DecodeError, EdgetlError, OSError):
                bad += 1
        if batch:
            out.append(np.asarray(model.predict_on_batch(np.stack(batch).astype(np.float32))))
    if bad:
        log(f"--unknown: {bad} of {len(files)} file(s) could not be read as images and were left out")
    if not out:
        raise EdgetlError("none of the --unknown files could be read as an image", path=folder,
                          fix="give a folder of jpg, png, bmp, gif or webp files")
    return np.concatenate(out)


def choose_confidence(cfg: TrainConfig, work: Path, model, probs: np.ndarray, labels: np.ndarray, classes: list[str],
                log) -> tuple[Confidence, dict]:
    """Fit the temperature on the validation split and fold it into ``model``'s last layer (saved
    over model.keras), then choose the "unknown" threshold; returns the manifest's
    :class:`Confidence` and metrics.json's figures (reliability before/after, risk-coverage, AUC)."""
    from edgetl.metrics import roc_auc
    from edgetl.training.plots import plot_reliability

    unknown = unknown_probs(model, cfg.unknown, cfg.pixels, cfg.batch_size, log) if cfg.unknown else None
    conf, why = calibrate(probs, labels, cfg.min_precision, unknown)
    if conf.temperature != 1.0:
        # softmax(Wx + b) -> softmax((Wx + b) / T): every artifact made from model.keras carries
        # calibrated scores, so MediaPipe and any runtime compare them with the threshold as they are.
        head = model.get_layer("predictions")
        kernel, bias = head.get_weights()
        head.set_weights([kernel / conf.temperature, bias / conf.temperature])
        with replacing(RunFolder(work).model) as tmp:
            model.save(tmp)
    after = with_temperature(probs, conf.temperature)
    bins_before, bins_after = reliability(probs, labels), reliability(after, labels)
    plot_reliability(bins_before, bins_after, RunFolder(work).reliability_plot)
    rule = threshold_rule(conf.threshold)
    said = (f"confidence: {why}; calibration error {conf.ece_before:.3f} -> {conf.ece_after:.3f}; {rule}: precision "
            f"{conf.precision:.3f} with {conf.coverage:.1%} of the {conf.images} val images answered")
    if conf.unknown_images:
        said += f", {conf.unknown_rejected:.1%} of the {conf.unknown_images} --unknown images rejected"
    if not conf.reached:
        said += f" (no threshold reaches --min-precision {cfg.min_precision}: this is the most precise one)"
    if not cfg.unknown:
        said += ("; no --unknown images were given, so nothing shows how sure the model is of things that are none "
                 "of the classes (train --unknown DIR chooses the threshold with them)")
    log(said)
    figures = {"manifest": conf.to_dict(), "reliability_before": bins_before,
               "reliability_after": bins_after, "risk_coverage": risk_coverage(after, labels),
               "roc_auc": roc_auc(after, labels, len(classes))}
    return conf, figures


def validation_features(model, split: Split, batch_size: int):
    """(features, labels) batches of ``split`` through ``model`` (a feature model), as they come."""
    start = 0
    for b in split.store.batches(batch_size):
        yield np.asarray(model.predict_on_batch(b.astype(np.float32))), split.labels[start:start + len(b)]
        start += len(b)


def choose_unknown_rule(cfg: TrainConfig, work: Path, model, train_records: list, val: Split, val_probs: np.ndarray,
                  conf: Confidence, num_classes: int, log) -> Confidence:
    """Choose the "unknown" rule from the classes' own images (at ``cfg.answer_rate`` of the
    validation split), fold it into model.keras, and return the confidence with it: the score
    threshold raised to the rule's floor, coverage and precision of the folded scores."""
    from edgetl.training import unknown_rule

    cut = unknown_rule.feature_model(model)
    per_class: dict[int, int] = {}
    sample = []
    for r in train_records:  # the first PER_CLASS of each class: a mean needs no more
        if per_class.get(r.label, 0) < unknown_rule.PER_CLASS:
            per_class[r.label] = per_class.get(r.label, 0) + 1
            sample.append(r)
    means, counts = unknown_rule.class_means(validation_features(cut, open_split(sample, cfg, quiet=True), cfg.batch_size),
                                             num_classes)
    val_features = np.concatenate([f for f, _ in validation_features(cut, val, cfg.batch_size)])
    choice = unknown_rule.choose(val_features, val.labels, val_probs, means, counts, cfg.answer_rate)
    log(f"unknown rule: {choice.why}")
    if choice.rule is None:
        return conf
    folded = unknown_rule.with_rule(model, choice.means, choice.rule)
    with replacing(RunFolder(work).model) as tmp:
        folded.save(tmp)
    g = unknown_rule.gate(unknown_rule.nearest_similarity(val_features, choice.means), choice.rule.threshold)
    unknown_scores = unknown_probs(folded, cfg.unknown, cfg.pixels, cfg.batch_size, log) if cfg.unknown else None
    return with_both_rules(conf, val_probs * g[:, None], val.labels, choice.rule, conf.threshold, cfg.min_precision,
                           unknown_scores, num_classes, log)


def with_both_rules(conf: Confidence, scores: np.ndarray, labels: np.ndarray, rule, softmax_t: float,
                    min_precision: float, unknown_scores: np.ndarray | None, num_classes: int, log) -> Confidence:
    """The confidence a model with the feature ``rule`` folded in carries, from its folded
    validation ``scores``: the score threshold (``softmax_t``, or chosen with the --unknown images'
    scores to meet ``min_precision`` when given) raised to the rule's floor, and the coverage and
    precision it gives (training and ``edgetl calibrate`` alike)."""
    from dataclasses import replace

    from edgetl.runtime.confidence import choose_threshold
    from edgetl.runtime.unknown_rule import score_floor

    rejected, reached, images = conf.unknown_rejected, conf.reached, conf.unknown_images
    if unknown_scores is not None:  # both rules against the --unknown images: the threshold chosen on the folded scores
        softmax_t, _, _, reached, _ = choose_threshold(scores, labels, min_precision, unknown_scores)
        images = len(unknown_scores)
    threshold = max(softmax_t, score_floor(num_classes))
    answered = scores.max(1) >= threshold
    right = scores.argmax(1) == labels
    if unknown_scores is not None:
        rejected = float((unknown_scores.max(1) < threshold).mean())
    conf = replace(conf, threshold=threshold, softmax_threshold=softmax_t if softmax_t != threshold else None,
                   coverage=float(answered.mean()), precision=float(right[answered].mean()) if answered.any() else 1.0,
                   unknown_rejected=rejected, reached=reached, unknown_images=images, feature_rule=rule)
    log(f"with both rules: answers under {threshold:.3f} are \"unknown\": {conf.coverage:.1%} of the "
        f"{len(labels)} val images answered, precision {conf.precision:.3f}"
        + (f", {rejected:.1%} of the --unknown images rejected" if unknown_scores is not None else ""))
    return conf
