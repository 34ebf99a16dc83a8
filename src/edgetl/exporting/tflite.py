"""Keras -> TFLite: fp32, fp16, dynamic range, full-integer int8 and int8 with the most
error-prone layers kept in float (found by TFLite's QuantizationDebugger)."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from edgetl.exporting.bias_correction import BiasCorrection, correct_biases

IO_TYPES = ("uint8", "int8", "float")


def _converter(model):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model)


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
    """int8 weights, activations quantized on the fly; float input and output."""
    import tensorflow as tf

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


def _int8_converter(model, calib: np.ndarray, io: str, builtins_only: bool = True):
    import tensorflow as tf

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(calib)
    if builtins_only:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io != "float":
        conv.inference_input_type = conv.inference_output_type = getattr(tf, io)
    return conv


def int8(model, calib: np.ndarray, io: str = "uint8", bias_correction: bool = True) -> tuple[bytes, BiasCorrection | None]:
    """Full-integer: every op int8, input pixels as ``io`` (uint8 0..255 by default); with
    ``bias_correction``, the depthwise biases corrected on the calibration images
    (:mod:`edgetl.exporting.bias_correction`). Returns the model and what the correction did."""
    quantized = _int8_converter(model, calib, io).convert()
    if not bias_correction:
        return quantized, None
    return correct_biases(quantized, fp32(model), calib)


def int8_selective(model, calib: np.ndarray, io: str = "uint8", keep_float: int = 10) -> tuple[bytes, list[str]]:
    """int8 with the ``keep_float`` layers of largest quantization error left in float, input and
    output still as ``io``. Returns the model and the names of those layers."""
    import tensorflow as tf

    from edgetl.exporting._tf_internal import mlir_quantize

    conv = _int8_converter(model, calib, io, builtins_only=False)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=conv,
                                                         debug_dataset=_representative(calib[: min(len(calib), 64)]))
    debugger.run()
    stats = debugger.layer_statistics
    # RMSE relative to the quantization step: large means quantization hurts this layer most.
    ranked = sorted(stats, key=lambda name: -_relative_error(stats[name]))
    worst = [_quantized_tensor_name(name) for name in ranked[:keep_float]]
    io_type = {"uint8": tf.uint8, "int8": tf.int8, "float": tf.float32}[io]
    mixed = mlir_quantize(debugger.calibrated_model, io_type, worst, conv)
    return mixed, worst


def _quantized_tensor_name(numeric_verify: str) -> str:
    """The layer a QuantizationDebugger statistic is about: its keys read
    ``NumericVerify/<tensor name><one digit>:<index>``."""
    name = numeric_verify.removeprefix("NumericVerify/").rsplit(":", 1)[0]
    return name[:-1] if name[-1:].isdigit() else name


def _relative_error(layer: dict) -> float:
    mse = layer.get("mean_squared_error", 0.0)
    scale = layer.get("scale", 0.0) or 0.0
    return float(np.sqrt(mse) / scale) if scale else float(np.sqrt(mse))
