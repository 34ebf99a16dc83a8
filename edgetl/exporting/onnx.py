"""Keras -> ONNX with tf2onnx (fp32, dynamic batch), and static QDQ int8 with ONNX Runtime's
quantizer, per-channel, calibrated on the same images as TFLite."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgetl.runtime.unknown_rule import LAYER_PREFIX
from edgetl.registry import Registry

if TYPE_CHECKING:
    import numpy as np

DEFAULT_OPSET = 17


def fp32(model, opset: int = DEFAULT_OPSET):
    """An onnx.ModelProto taking NHWC float pixels 0..255 ("image", dynamic batch) and returning
    "probability". The graph is frozen first, so constants that Keras layers capture (EfficientNet's
    normalisation mean and variance) become initializers rather than extra inputs."""
    import tensorflow as tf
    import tf2onnx

    from edgetl.exporting._tf_internal import freeze

    size = model.input_shape[1:]
    spec = (tf.TensorSpec((None, *size), tf.float32, name="image"),)

    @tf.function(input_signature=spec)
    def serve(image):
        return model(image, training=False)

    frozen = freeze(serve.get_concrete_function())
    inputs, outputs = [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]
    proto, _ = tf2onnx.convert.from_graph_def(frozen.graph.as_graph_def(), input_names=inputs,
                                              output_names=outputs, opset=opset)
    _rename(proto, inputs[0], "image")
    _rename(proto, outputs[0], "probability")
    return proto


def _rename(proto, old: str, new: str) -> None:
    """Rename a graph input or output everywhere it is used."""
    for value in list(proto.graph.input) + list(proto.graph.output):
        if value.name == old:
            value.name = new
    for node in proto.graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


class _Calibration:
    """ONNX Runtime CalibrationDataReader over an image array."""

    def __init__(self, name: str, images: np.ndarray):
        self.name, self.images, self.i = name, images, 0

    def get_next(self):
        if self.i >= len(self.images):
            return None
        self.i += 1
        return {self.name: self.images[self.i - 1][None].astype("float32")}

    def rewind(self):
        self.i = 0


@dataclass(frozen=True)
class Int8Preset:
    """How ONNX Runtime's quantizer makes the int8 model for one kind of CPU."""

    activations: str
    """"uint8" or "int8": the signedness of quantized activations."""
    weights: str = "int8"
    per_channel: bool = True
    why: str = ""


# ONNX Runtime's int8 kernels want unsigned activations with signed weights (U8S8) on x86-64, where
# VNNI/AVX2 multiply u8 by s8, and signed both (S8S8) on ARM64 with dot-product instructions
# (Pi 5, Graviton). Signed activations on x86 are converted inside ONNX Runtime and lose the gain.
INT8_TARGETS: Registry[Int8Preset] = Registry("int8 ONNX target", [
    ("x86", Int8Preset("uint8", why="U8S8: x86-64 ONNX Runtime (VNNI/AVX2)")),
    ("arm64", Int8Preset("int8", why="S8S8: ARM64 with dot-product instructions (Raspberry Pi 5, Graviton)")),
])
DEFAULT_TARGET = "x86"


def int8(fp32_path: Path, out_path: Path, calib: np.ndarray, preset: Int8Preset = INT8_TARGETS[DEFAULT_TARGET]) -> None:
    """Static QDQ quantization of an fp32 model by ``preset`` (per-channel int8 weights, min-max
    calibrated activations of the preset's signedness)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared), load_external_data=False).graph
        name = graph.input[0].name
        # the folded "unknown" rule stays in float, as in the int8 TFLite model
        rule = [n.name for n in graph.node if f"/{LAYER_PREFIX}" in n.name or n.name.startswith(LAYER_PREFIX)]
        quantize_static(str(prepared), str(out_path), _Calibration(name, calib), quant_format=QuantFormat.QDQ,
                        nodes_to_exclude=rule,
                        per_channel=preset.per_channel, activation_type=types[preset.activations],
                        weight_type=types[preset.weights], calibrate_method=CalibrationMethod.MinMax)
