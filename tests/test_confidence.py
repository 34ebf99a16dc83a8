"""Calibrated scores and the "unknown" answer: the choosing (pure functions, in-process), the
contract (manifest, TFLite metadata read by MediaPipe) and the answers on images of none of the
classes (the quality-bar run, trained with --unknown)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.cli import run_cli
from helpers.images import none_of_the_classes
from helpers.shared import HYMENOPTERA

from edgetl.errors import EdgetlError
from edgetl.metrics import roc_auc
from edgetl.runtime.confidence import (Confidence, calibrate, choose_threshold, expected_calibration_error,
                                       fit_temperature, with_temperature)


def _calibrated_sample(n: int, seed: int, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that are calibrated by construction (labels drawn from them) and labels."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.5, (n, classes))
    probs = with_temperature(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 1.0)
    labels = np.array([rng.choice(classes, p=p) for p in probs])
    return probs, labels


def test_the_temperature_undoes_a_known_overconfidence():
    """Scores sharpened by a known factor (temperature 1/2.5) are calibrated again by a fitted
    temperature near 2.5, and the calibration error falls."""
    probs, labels = _calibrated_sample(4000, 0)
    sharp = with_temperature(probs, 1 / 2.5)
    t, why = fit_temperature(sharp, labels)
    assert t == pytest.approx(2.5, rel=0.1), why
    assert expected_calibration_error(with_temperature(sharp, t), labels) < expected_calibration_error(sharp, labels) / 2
    assert np.array_equal(with_temperature(sharp, t).argmax(1), sharp.argmax(1))  # answers unchanged


def test_too_few_or_no_mistakes_or_no_gain_leave_the_scores_as_trained():
    probs = np.array([[0.9, 0.1], [0.3, 0.7]] * 30)
    t, why = fit_temperature(probs, np.array([0, 1] * 30))
    assert t == 1.0 and "every held-out image was right" in why
    sharp, labels = _calibrated_sample(4000, 3)
    t, why = fit_temperature(with_temperature(sharp, 0.4)[:30], labels[:30])
    assert t == 1.0 and "too few" in why
    # calibrated already: a fitted temperature that does not lower the calibration error is not kept
    t, why = fit_temperature(sharp[:60], labels[:60])
    assert t == 1.0 or expected_calibration_error(with_temperature(sharp[:60], t), labels[:60]) <= \
        expected_calibration_error(sharp[:60], labels[:60]), why


def test_the_threshold_keeps_the_precision_and_counts_unknown_images_as_mistakes():
    # known: 6 right at 0.9..0.95, 2 wrong at 0.6 and 0.65; unknown: two at 0.7 and 0.92
    probs = np.array([[s, 1 - s] for s in (0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.6, 0.65)])
    labels = np.array([0] * 6 + [1] * 2)
    t, precision, coverage, reached, rejected = choose_threshold(probs, labels, 0.95)
    assert (t, precision, coverage, reached, rejected) == (0.9, 1.0, 0.75, True, None)
    unknown = np.array([[0.7, 0.3], [0.92, 0.08]])
    t, precision, coverage, reached, rejected = choose_threshold(probs, labels, 0.95, unknown)
    # at 0.9 the unknown 0.92 is answered: 6 of 7 right; above it, 0.93: 3 of 3
    assert t == pytest.approx(0.93) and precision == 1.0 and coverage == pytest.approx(3 / 8) and rejected == 1.0
    _, _, _, reached, _ = choose_threshold(probs, labels, 0.99, np.array([[0.99, 0.01]]))
    assert not reached  # the unknown image outscores every known one: no threshold keeps 0.99


def test_the_confidence_entry_of_a_manifest_is_checked():
    conf, _ = calibrate(*_calibrated_sample(300, 1))
    assert Confidence.from_dict(json.loads(json.dumps(conf.to_dict())), "m.json") == conf
    for bad in ({**conf.to_dict(), "threshold": "0.5"}, {**conf.to_dict(), "threshold": 1.5},
                {**conf.to_dict(), "images": -1}, {**conf.to_dict(), "precision": float("nan")}, ["x"]):
        with pytest.raises(EdgetlError, match="confidence"):
            Confidence.from_dict(bad, "m.json")


def test_roc_auc_is_the_chance_a_positive_outscores_a_negative():
    probs, labels = _calibrated_sample(300, 2)
    for c in range(3):
        pos, neg = probs[labels == c, c], probs[labels != c, c]
        pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
        one = roc_auc(np.stack([1 - probs[:, c], probs[:, c]], 1), (labels == c).astype(int), 2)
        assert one == pytest.approx(pairs)
    assert roc_auc(probs, labels, 3) == pytest.approx(np.mean([
        roc_auc(np.stack([1 - probs[:, c], probs[:, c]], 1), (labels == c).astype(int), 2) for c in range(3)]))


@pytest.mark.slow
@pytest.mark.shared
def test_images_of_none_of_the_classes_are_answered_unknown(hymenoptera_export, hymenoptera_run, tmp_path):
    """The quality-bar run chose its threshold with 80 images of none of the classes: on 80 others
    (other photos, other seed) the exported model answers "unknown" about as often, and on the
    validation photos eval answers and scores as training measured."""
    conf = Confidence.from_dict(hymenoptera_run.metrics.confidence["manifest"], "metrics.json")
    assert conf.unknown_images == 80 and conf.threshold > 0 and conf.reached
    # ROC AUC is logged every epoch (Keras's, over 200 thresholds); the best epoch's is the run's own
    history = json.loads((hymenoptera_run.path / "history.json").read_text())
    best = next(h for h in history if h["epoch"] + 1 == hymenoptera_run.metrics.best.epoch)
    assert all(0.5 <= h["val_auc"] <= 1 for h in history)
    assert best["val_auc"] == pytest.approx(hymenoptera_run.metrics.confidence["roc_auc"], abs=0.01)
    model = hymenoptera_export.folder / "model_fp32.tflite"
    fresh = none_of_the_classes(tmp_path, sorted((HYMENOPTERA / "val").glob("*/*.jpg"))[::3], seed=2)
    proc = run_cli("predict", model, fresh, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    rejected = np.mean([a["unknown"] for a in answers])
    print(f"threshold {conf.threshold:.3f}: unknown images rejected {conf.unknown_rejected:.3f} (chosen with), "
          f"{rejected:.3f} (fresh); val coverage {conf.coverage:.3f}, precision {conf.precision:.3f}")
    assert len(answers) == 80 and all(a["answer"] == "unknown" for a in answers if a["unknown"])
    # 80 images: a binomial standard error of about 0.03 at 0.9; 0.15 is five of them
    assert rejected >= conf.unknown_rejected - 0.15
    proc = run_cli("eval", model, HYMENOPTERA, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    sel = json.loads(proc.stdout)["selective"]
    assert sel["threshold"] == pytest.approx(conf.threshold, abs=1e-6)
    # the same val photos the threshold was chosen on: the float TFLite model answers as Keras did
    assert sel["coverage"] == pytest.approx(conf.coverage, abs=0.02)
    assert sel["accuracy"] >= conf.precision - 0.01
    assert json.loads(proc.stdout)["accuracy"] < sel["accuracy"]  # what the threshold buys
    proc = run_cli("eval", model, HYMENOPTERA, "--json", "--threshold", "0")
    assert json.loads(proc.stdout)["selective"]["coverage"] == 1.0


@pytest.mark.slow
@pytest.mark.shared
def test_mediapipe_applies_the_exported_threshold(hymenoptera_export, hymenoptera_run, tmp_path):
    """MediaPipe's ImageClassifier reads the threshold from the TFLite metadata and drops the
    categories under it: an image of none of the classes comes back with no category, a photo the
    model is sure of with its label, and edgetl's own runtime answers the same."""
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import BaseOptions, vision

    from edgetl.runtime import load

    threshold = hymenoptera_run.metrics.confidence["manifest"]["threshold"]
    model = hymenoptera_export.folder / "model_fp32.tflite"
    ours = load(model)
    assert ours.threshold == pytest.approx(threshold)
    photos = sorted((HYMENOPTERA / "val" / "bees").glob("*.jpg"))[:20]
    unknown = sorted(none_of_the_classes(tmp_path, sorted((HYMENOPTERA / "val").glob("*/*.jpg"))[1::7], seed=3,
                                         per_kind=10).glob("*.jpg"))
    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model)), max_results=2)
    seen = {"answered": 0, "suppressed": 0}
    with vision.ImageClassifier.create_from_options(opts) as classifier:
        for image in photos + unknown:
            cats = classifier.classify(mp.Image.create_from_file(str(image))).classifications[0].categories
            score = ours.classify_file(image)[0].score
            assert all(c.score >= threshold for c in cats), image.name
            # MediaPipe resizes on its own: only scores clear of the threshold must agree
            if score < threshold - 0.05:
                assert cats == [], (image.name, score, cats)
                seen["suppressed"] += 1
            elif 1 - score < (1 - threshold) / 2:
                assert cats and cats[0].category_name == ours.classify_file(image)[0].label, (image.name, score)
                seen["answered"] += 1
    assert seen["answered"] > 0 and seen["suppressed"] > 0, seen
