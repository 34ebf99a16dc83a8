"""Keras -> TFLite: fp32, fp16, dynamic range, full-integer int8 and int8 with chosen layers kept in
float (the layers that add most error, found by :mod:`edgetl.exporting.layer_error`)."""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from edgetl.exporting.bias_correction import BiasCorrection, correct_biases
from edgetl.exporting.float_depthwise import float_depthwise
from edgetl.native_logs import silenced

IO_TYPES = ("uint8", "int8", "float")


def saved_model(model, folder: Path) -> Path:
    """Write the Keras model's inference call (``training=False``) as a SavedModel in ``folder``,
    exactly as TFLite's Keras converter does before each conversion. Export writes it once and
    every TFLite format converts from it: tracing and writing the model again cost about 5 s a
    format even for a small model (measured: 3 float formats of a 0.35 MobileNetV2, 29.8 s from
    the Keras model, 20.8 s through one SavedModel)."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = [tf.TensorSpec(x.shape, dtype=x.dtype, name=x.name) for x in model.inputs]
    archive.add_endpoint("serve", functools.partial(model.__call__, training=False), signature)
    archive.write_out(str(folder), verbose=False)
    return folder


def _converter(source):
    """A converter for a Keras model, or for a folder written by :func:`saved_model`."""
    import tensorflow as tf

    if isinstance(source, Path):
        return tf.lite.TFLiteConverter.from_saved_model(str(source))
    return tf.lite.TFLiteConverter.from_keras_model(source)


def _representative(calib: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Calibration batches. One pixel of the first image is set to 0 and one to 255, so the input
    range is exactly 0..255 and a uint8 input takes raw pixels (scale 1, zero point 0) even when
    the calibration photos happen not to reach both ends."""
    def gen():
        for i, image in enumerate(calib):
            x = image[None].astype(np.float32)
            if i == 0:
                x[0, 0, 0, :], x[0, 0, 1, :] = 0.0, 255.0
            yield [x]
    return gen


def fp32(model, calib: np.ndarray | None = None) -> bytes:
    """Float model, as trained."""
    return _converter(model).convert()


def fp16(model, calib: np.ndarray | None = None) -> bytes:
    """Weights stored as float16 (half the size), computed in float32 on CPUs."""
    import tensorflow as tf

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return conv.convert()


def dynamic(model, calib: np.ndarray | None = None) -> bytes:
    """int8 weights, activations quantized on the fly; float input and output. The depthwise
    convolutions keep float weights, so XNNPACK runs the whole graph
    (:mod:`edgetl.exporting.float_depthwise`)."""
    import tensorflow as tf

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return float_depthwise(conv.convert())


def _int8_converter(model, calib: np.ndarray, io: str):
    import tensorflow as tf

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io != "float":
        conv.inference_input_type = conv.inference_output_type = getattr(tf, io)
    return conv


def calibrated(model, calib: np.ndarray) -> bytes:
    """The float TFLite model with the activation ranges seen on ``calib`` recorded in it: the slow
    half of an int8 conversion (every calibration image through the model), done once per export
    and shared by int8 and every selective-float rung."""
    from edgetl.exporting._tf_internal import calibrate_only

    conv = _int8_converter(model, calib, "float")
    with calibrate_only(conv), warnings.catch_warnings():
        # The input is float by design here: the pixel range is fixed when quantizing.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        return conv.convert()


def quantized(calibrated_model: bytes, io: str = "uint8", keep_float: list[str] | tuple[str, ...] = ()) -> bytes:
    """The int8 model from a :func:`calibrated` one: every op int8 except the ops whose output
    tensors are named in ``keep_float``, input and output pixels as ``io``. With nothing kept in
    float this is what the converter's full-integer conversion makes."""
    import tensorflow as tf

    from edgetl.exporting._tf_internal import mlir_quantize

    io_type = {"uint8": tf.uint8, "int8": tf.int8, "float": tf.float32}[io]
    with silenced():  # the quantizer prints its settings ("fully_quantize: 0, ...") on stderr
        return mlir_quantize(calibrated_model, io_type, list(keep_float))


def rule_tensors(model: bytes) -> list[str]:
    """The output tensors of the folded "unknown" rule's ops in a TFLite model (named by its
    Keras layers, :data:`edgetl.runtime.unknown_rule.LAYER_PREFIX`): what int8 keeps in float."""
    from edgetl.exporting._tf_internal import tflite_schema
    from edgetl.runtime.unknown_rule import LAYER_PREFIX

    graph = tflite_schema().Model.GetRootAsModel(model, 0).Subgraphs(0)
    names = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        for j in range(op.OutputsLength()):
            name = graph.Tensors(op.Outputs(j)).Name().decode("utf-8", "replace")
            if f"/{LAYER_PREFIX}" in name or name.startswith(LAYER_PREFIX):
                names.append(name)
    return names


def int8(calibrated_model: bytes, float_model: bytes, calib: np.ndarray, io: str = "uint8",
         bias_correction: bool = True) -> tuple[bytes, BiasCorrection | None]:
    """Full-integer: every op int8 but the folded "unknown" rule's (:func:`rule_tensors`), input
    pixels as ``io`` (uint8 0..255 by default); with ``bias_correction``, the depthwise biases
    corrected on the calibration images (:mod:`edgetl.exporting.bias_correction`). Returns the
    model and what the correction did."""
    model = quantized(calibrated_model, io, rule_tensors(calibrated_model))
    if not bias_correction:
        return model, None
    return correct_biases(model, float_model, calib)
