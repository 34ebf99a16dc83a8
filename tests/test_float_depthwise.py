"""Dynamic-range models keep float depthwise weights, so XNNPACK runs the whole graph: checked with
TensorFlow's real converter, LiteRT's interpreter and its XNNPACK delegate."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.models import colour_images


@pytest.fixture(scope="module")
def depthwise_model():
    """A small float model whose depthwise convolution has 9 x 128 weights: over the 1,024 the
    converter leaves in float, so its dynamic-range conversion stores them as int8."""
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(64, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


def _weights_types(model: bytes) -> dict[str, set[str]]:
    """Each op kind's weight tensor types (its second input), from the interpreter's own view."""
    from ai_edge_litert.interpreter import Interpreter

    from edgetl.exporting._tf_internal import ops_details

    it = Interpreter(model_content=model)
    it.allocate_tensors()
    details = it.get_tensor_details()
    kinds: dict[str, set[str]] = {}
    for op in ops_details(it):
        if len(op["inputs"]) > 1:
            kinds.setdefault(op["op_name"], set()).add(np.dtype(details[op["inputs"][1]]["dtype"]).name)
    return kinds


def _outputs(model: bytes, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    rows = []
    for image in images.astype(np.float32):
        it.set_tensor(inp, image[None])
        it.invoke()
        rows.append(it.get_tensor(out)[0].copy())
    return np.stack(rows)


def test_dynamic_range_keeps_depthwise_weights_in_float_and_xnnpack_runs_every_op(depthwise_model, tmp_path):
    import tensorflow as tf

    from edgetl.benchmark.profile import profile
    from edgetl.exporting import tflite

    conv = tf.lite.TFLiteConverter.from_keras_model(depthwise_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    converters_own = conv.convert()
    assert _weights_types(converters_own)["DEPTHWISE_CONV_2D"] == {"int8"}  # what the rewrite is for

    ours = tflite.dynamic(depthwise_model)
    kinds = _weights_types(ours)
    assert kinds["DEPTHWISE_CONV_2D"] == {"float32"}
    assert kinds["CONV_2D"] == {"int8"}  # the rest stays dynamic-range
    for name, model in (("converters_own", converters_own), ("ours", ours)):
        (tmp_path / f"{name}.tflite").write_bytes(model)
    before, after = profile(tmp_path / "converters_own.tflite", 1, 1), profile(tmp_path / "ours.tflite", 1, 1)
    assert before.partitions > 1 and any(o.op == "DEPTHWISE_CONV_2D" and o.outside_delegate for o in before.ops)
    assert after.partitions == 1 and after.delegated == after.total_nodes, after

    images, _ = colour_images(size=16)
    reference = depthwise_model.predict(images.astype(np.float32), verbose=0)
    ours_error = np.abs(_outputs(ours, images) - reference).max()
    assert ours_error <= np.abs(_outputs(converters_own, images) - reference).max() + 1e-3
    assert ours_error < 0.02


def test_a_model_without_hybrid_depthwise_is_returned_as_it_is(depthwise_model):
    from edgetl.exporting import tflite
    from edgetl.exporting.float_depthwise import float_depthwise

    fp32 = tflite.fp32(depthwise_model)
    assert float_depthwise(fp32) == fp32
