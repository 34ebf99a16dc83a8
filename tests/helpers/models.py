"""Small real models built in the tests, with settings other than edgetl's exporter's."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def keras_mean_colour(size: int = 16, outputs: int = 3, scale: float = 1 / 255.0, offset: float = 0.0):
    """A tiny deterministic Keras model: rescale, mean colour per channel, dense, softmax.

    Its class is decided by the dominant colour channel, so a red, green or blue image has a known answer."""
    import keras

    inp = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(scale, offset=offset)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(outputs, activation="softmax")
    out = dense(x)
    model = keras.Model(inp, out)
    w = np.zeros((3, outputs), np.float32)
    for i in range(min(3, outputs)):
        w[i, i] = 8.0
    dense.set_weights([w, np.zeros(outputs, np.float32)])
    return model


def to_tflite(model, path: Path, int8_io: str | None = None, calib: np.ndarray | None = None) -> Path:
    """Convert with TFLite's converter directly (float, or full-integer with the given I/O type)."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8_io:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([c[None].astype(np.float32)] for c in calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = getattr(tf, int8_io)
    path.write_bytes(conv.convert())
    return path


def onnx_nchw_logits(path: Path, size: int = 8, classes: int = 3) -> Path:
    """An ONNX model in NCHW taking floats in [-1, 1], returning logits (no softmax): channel means -> identity."""
    import onnx
    from onnx import TensorProto, helper

    w = np.eye(3, classes, dtype=np.float32) * 4
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["logits"])],
        "nchw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.flatten())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def colour_images(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Red, green and blue noisy images with labels 0, 1, 2 (four of each)."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(12):
        img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
        img[..., i % 3] = rng.integers(180, 255, (size, size))
        images.append(img)
        labels.append(i % 3)
    return np.stack(images), np.array(labels)


COLOURS = ("red", "green", "blue")


def colour_frame(cls: int, rng, h: int = 96, w: int = 128) -> np.ndarray:
    """A dark noisy RGB frame with channel ``cls`` lit: what the colour model calls COLOURS[cls]."""
    img = rng.integers(0, 50, (h, w, 3)).astype(np.uint8)
    img[..., cls] = 220
    return img
