"""A model.keras scored through ONNX Runtime gives Keras's answers: the real tf2onnx conversion and
ONNX Runtime against Keras on a trained model."""
from __future__ import annotations

import numpy as np

from edgetl.data.audit import audit
from edgetl.data.cache import decode_all


def _val_pixels(shapes_data, clf, count: int | None = None) -> np.ndarray:
    records = audit(shapes_data).split("val")[:count]
    return decode_all([r.path for r in records], clf.pixels, quiet=True)


def test_the_onnx_twin_agrees_with_keras_to_1e_4_on_images_it_was_not_checked_on(shapes_run, shapes_data):
    from edgetl.exporting.keras_twin import through_onnx_runtime
    from edgetl.runtime import load

    keras_clf = load(shapes_run.path / "model.keras")
    pixels = _val_pixels(shapes_data, keras_clf)
    twin = through_onnx_runtime(keras_clf, pixels[:8])
    assert twin.runtime.startswith("onnxruntime") and "model.keras converted in memory" in twin.runtime
    assert (twin.labels, twin.pixels, twin.threshold) == (keras_clf.labels, keras_clf.pixels, keras_clf.threshold)
    x = keras_clf.to_input(pixels[8:])
    assert len(x) >= 20
    ours, keras = twin.probabilities(twin.infer(x)), keras_clf.probabilities(keras_clf.infer(x))
    assert np.abs(ours - keras).max() <= 1e-4


def test_eval_of_a_model_keras_gives_the_same_answers_through_either_runtime(shapes_run, shapes_data, monkeypatch):
    from edgetl import evaluate
    from edgetl.exporting import keras_twin

    by_keras = evaluate(shapes_run.path / "model.keras", shapes_data, split="val")
    assert by_keras.runtime.startswith("keras")  # 40 images: under ONNX_FROM, the conversion would not pay
    monkeypatch.setattr(keras_twin, "ONNX_FROM", 1)
    by_onnx = evaluate(shapes_run.path / "model.keras", shapes_data, split="val")
    assert by_onnx.runtime.startswith("onnxruntime")
    assert np.abs(by_onnx.probabilities - by_keras.probabilities).max() <= 1e-4
    # the same answers wherever Keras's margin is wider than the two runtimes' gap
    top2 = np.sort(by_keras.probabilities, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2e-4
    assert clear.sum() >= 0.9 * len(clear) and np.array_equal(by_onnx.predictions[clear], by_keras.predictions[clear])

    monkeypatch.setattr(keras_twin, "AGREE", -1.0)  # no conversion can agree: Keras scores
    assert evaluate(shapes_run.path / "model.keras", shapes_data, split="val").runtime.startswith("keras")
