"""The "unknown" rule from the classes' own images (edgetl.training.unknown_rule and its contract
edgetl.runtime.unknown_rule): chosen at the answer rate, or not at all with the reason; folded
into the model so that every runtime reads it with its ordinary score threshold."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.cli import run_cli
from helpers.cli import one_error
from edgetl.runtime.unknown_rule import FeatureRule, score_floor
from edgetl.training import unknown_rule


def _clusters(rng, n_per_class: int, dim: int = 32, classes: int = 3):
    centres = rng.normal(0, 1, (classes, dim))
    labels = np.repeat(np.arange(classes), n_per_class)
    features = np.abs(centres[labels] + rng.normal(0, 0.3, (len(labels), dim)))
    return features.astype(np.float32), labels


def test_the_threshold_answers_the_asked_share_of_validation_images():
    rng = np.random.default_rng(0)
    train_x, train_y = _clusters(rng, 100)
    val_x, val_y = _clusters(np.random.default_rng(0), 40)
    batches = [(train_x[i:i + 7], train_y[i:i + 7]) for i in range(0, len(train_y), 7)]
    means, counts = unknown_rule.class_means(iter(batches), 3)
    whole, _ = unknown_rule.class_means(iter([(train_x, train_y)]), 3)
    assert np.allclose(means, whole, atol=1e-6) and counts.tolist() == [100, 100, 100]  # streamed = whole
    probs = np.eye(3)[val_y] * 0.9 + 0.05
    choice = unknown_rule.choose(val_x, val_y, probs, means, counts, 0.9)
    assert choice.rule is not None and 0.9 <= choice.rule.answered <= 0.92
    far = np.abs(rng.normal(0, 1, (20, 32))).astype(np.float32)  # directions of no class
    assert (unknown_rule.nearest_similarity(far, means) < choice.rule.threshold).mean() >= 0.8
    again = FeatureRule.from_dict(choice.rule.to_dict(), "m.json")
    assert again == choice.rule


@pytest.mark.parametrize("damage, why", [
    ("few", "too few"), ("nan", "not finite"), ("constant", "the same"), ("empty class", "no training image"),
])
def test_no_rule_is_chosen_where_none_can_be_and_the_reason_is_said(damage, why):
    rng = np.random.default_rng(1)
    val_x, val_y = _clusters(rng, 5 if damage == "few" else 30)
    means, counts = unknown_rule.class_means(iter([_clusters(rng, 50)]), 3)
    if damage == "nan":
        val_x[3, 2] = np.nan
    if damage == "constant":
        val_x[:] = 1.0
    if damage == "empty class":
        counts[2] = 0
    choice = unknown_rule.choose(val_x, val_y, np.eye(3)[val_y], means, counts, 0.95)
    assert choice.rule is None and why in choice.why


def test_the_folded_model_scores_as_the_formula_says_and_loads_in_safe_mode(tmp_path):
    import keras

    from edgetl.runtime.keras_backend import load_keras_model

    inputs = keras.Input((8,), name="image")
    features = keras.layers.Dense(16, activation="relu", name="base")(inputs)
    x = keras.layers.Dropout(0.2, name="head_dropout")(features)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="edgetl_tiny")
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (64, 8)).astype(np.float32)
    feats = np.asarray(keras.Model(inputs, features)(x))
    labels = rng.integers(0, 3, 64)
    means, counts = unknown_rule.class_means(iter([(feats, labels)]), 3)
    choice = unknown_rule.choose(feats, labels, np.asarray(model(x)), means, counts, 0.8)
    folded = unknown_rule.with_rule(model, choice.means, choice.rule)
    folded.save(tmp_path / "m.keras")
    loaded = load_keras_model(tmp_path / "m.keras")
    expected = np.asarray(model(x)) * unknown_rule.gate(unknown_rule.nearest_similarity(feats, means),
                                                        choice.rule.threshold)[:, None]
    assert np.abs(np.asarray(loaded(x)) - expected).max() < 1e-5
    # under the threshold every score falls under the floor a consumer applies; above it they stay
    sims = unknown_rule.nearest_similarity(feats, means)
    out = np.asarray(loaded(x))
    assert (out[sims < choice.rule.threshold - 0.02].max(axis=1) < score_floor(3)).all()
    assert np.allclose(out[sims > choice.rule.threshold + 0.05], np.asarray(model(x))[sims > choice.rule.threshold + 0.05],
                       atol=5e-4)


@pytest.mark.parametrize("rate", ["0", "1.5", "-0.2"])
def test_an_answer_rate_that_is_not_a_share_is_one_line(rate, tmp_path):
    line = one_error(run_cli("train", tmp_path, "--answer-rate", rate, "--weights", "none"))
    assert "--answer-rate" in line


def _photo_folder(tmp_path):
    import shutil

    from helpers.other_photos import other_photos

    folder = tmp_path / "other_things"
    folder.mkdir()
    for photo in other_photos():
        shutil.copy(photo, folder / photo.name)
    return folder


@pytest.mark.slow
@pytest.mark.shared
def test_every_artifact_of_a_default_run_refuses_photos_of_other_things(hymenoptera_run, hymenoptera_export):
    """The quality-bar run's weights are a default run's (--unknown only moves its softmax
    threshold afterwards), so loading its artifacts at the rule's own floor gives what a default
    `train` + `export` answers: real photos of a person, a cat, a cup, a rocket... are "unknown"."""
    from helpers.other_photos import other_photos

    from edgetl.runtime import load
    from edgetl.runtime.folder_manifest import RunManifest

    conf = RunManifest.read(hymenoptera_run.path / "manifest.json").confidence
    rule = conf.feature_rule
    assert rule is not None and rule.answered >= 0.95 and rule.accuracy_answered >= rule.accuracy_all - 0.01
    shipped = [hymenoptera_run.path / "model.keras"] + sorted(hymenoptera_export.folder.glob("model*.tflite")) + \
        sorted(hymenoptera_export.folder.glob("model*.onnx"))
    assert len(shipped) >= 5
    for path in shipped:
        clf = load(path, threshold=score_floor(2))
        assert clf.manifest.confidence.feature_rule == rule, path.name  # the rule travels in every artifact
        refused = [clf.is_unknown(clf.classify_file(p, top_k=2)) for p in other_photos()]
        assert sum(refused) >= 8, (path.name, refused)


@pytest.mark.slow
@pytest.mark.shared
def test_mediapipe_returns_nothing_for_what_edgetl_calls_unknown(hymenoptera_export):
    mp = pytest.importorskip("mediapipe")
    from helpers.other_photos import MORE, other_photos
    from mediapipe.tasks.python import BaseOptions, vision
    from PIL import Image

    from edgetl.runtime import load

    model = hymenoptera_export.folder / "model_int8.tflite"
    ours = load(model)
    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model)))  # default options
    silent = 0
    with vision.ImageClassifier.create_from_options(opts) as classifier:
        for photo in other_photos() + other_photos(MORE):
            # RGB pixels, as a camera gives them (MediaPipe does not convert a grey file itself)
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.asarray(Image.open(photo).convert("RGB")))
            cats = classifier.classify(image).classifications[0].categories
            top = ours.classify_file(photo, top_k=2)
            if top[0].score < ours.threshold / 2:  # clear of the threshold: MediaPipe resizes on its own
                assert cats == [], (photo.name, top, cats)
                silent += 1
    assert silent >= 12


@pytest.mark.slow
@pytest.mark.shared
def test_eval_reports_the_share_refused_and_auroc_known_vs_unknown(hymenoptera_export, tmp_path):
    import json

    from helpers.shared import HYMENOPTERA

    proc = run_cli("eval", hymenoptera_export.folder / "model_int8.tflite", HYMENOPTERA, "--unknown",
                   _photo_folder(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    sel = json.loads(proc.stdout)["selective"]
    assert sel["unknown_images"] == 10 and sel["unknown_rejected"] >= 0.8 and sel["auroc_known_unknown"] >= 0.9
    line = one_error(run_cli("eval", hymenoptera_export.folder / "model_int8.tflite", HYMENOPTERA, "--unknown",
                             tmp_path / "nowhere"))
    assert "--unknown" in line and "nowhere" in line


def test_a_thousand_classes_fold_and_convert_and_the_rule_holds_in_tflite(tmp_path):
    """1,000 classes (issue 40): the rule is one mean per class, made from any number of images in
    bounded memory (the means' shape is the classes' and the features', whatever the count), it
    folds and converts to TFLite, and there an image far from every class scores under the floor
    of 1,000 classes (0.0005) while one on a class mean keeps its softmax."""
    import keras

    from ai_edge_litert.interpreter import Interpreter

    from edgetl.exporting.tflite import fp32

    classes, dim = 1000, 64
    inputs = keras.Input((dim,), name="image")
    x = keras.layers.Dropout(0.2, name="head_dropout")(inputs)  # the features are the input here
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="edgetl_thousand")
    rng = np.random.default_rng(5)
    centres = rng.normal(0, 1, (classes, dim)).astype(np.float32)
    batches = ((centres[y] + rng.normal(0, 0.3, (len(y), dim)).astype(np.float32), y)
               for y in (rng.integers(0, classes, 2000) for _ in range(10)))  # 20,000 images, streamed
    means, counts = unknown_rule.class_means(batches, classes)
    assert means.shape == (classes, dim) and counts.sum() == 20_000
    val = centres[np.arange(classes)] + rng.normal(0, 0.3, (classes, dim)).astype(np.float32)
    labels = np.arange(classes)
    choice = unknown_rule.choose(val, labels, np.asarray(model(val)), means, counts, 0.95)
    folded = unknown_rule.with_rule(model, choice.means, choice.rule)
    interpreter = Interpreter(model_content=fp32(folded))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()

    def scores(rows: np.ndarray) -> np.ndarray:
        result = []
        for row in rows:
            interpreter.set_tensor(inp["index"], row[None])
            interpreter.invoke()
            result.append(interpreter.get_tensor(out["index"])[0])
        return np.array(result)

    far = rng.normal(0, 1, (4, dim)).astype(np.float32)  # random directions: nowhere near 1,000 means in 64-d
    near = centres[:4]
    out_far, out_near = scores(far), scores(near)
    assert out_far.shape == (4, classes)
    assert (out_far.max(axis=1) < score_floor(classes)).all(), out_far.max(axis=1)
    assert choice.rule.threshold < 0.99  # the class centres themselves sit well above it
    assert np.allclose(out_near, np.asarray(model(near)), rtol=1e-3, atol=1e-7)
