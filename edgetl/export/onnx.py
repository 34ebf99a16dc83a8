"""Keras -> ONNX with tf2onnx (fp32, dynamic batch), and static QDQ int8 with ONNX Runtime's
quantizer, per-channel, calibrated on the same images as TFLite."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

DEFAULT_OPSET = 17


def fp32(model, opset: int = DEFAULT_OPSET):
    """An onnx.ModelProto taking NHWC float pixels 0..255 with a dynamic batch dimension."""
    import tensorflow as tf
    import tf2onnx

    size = model.input_shape[1:]
    spec = (tf.TensorSpec((None, *size), tf.float32, name="image"),)

    @tf.function(input_signature=spec)
    def serve(image):
        return {"probability": model(image, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    return proto


class _Calibration:
    """ONNX Runtime CalibrationDataReader over an image array."""

    def __init__(self, name: str, images: np.ndarray):
        self.name, self.images, self.i = name, images, 0

    def get_next(self):
        if self.i >= len(self.images):
            return None
        self.i += 1
        return {self.name: self.images[self.i - 1][None].astype(np.float32)}

    def rewind(self):
        self.i = 0


def int8(fp32_path: Path, out_path: Path, calib: np.ndarray) -> None:
    """Static QDQ quantization (int8 weights per channel, uint8... int8 activations) of an fp32 model."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        name = onnx.load(str(prepared), load_external_data=False).graph.input[0].name
        quantize_static(str(prepared), str(out_path), _Calibration(name, calib), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
