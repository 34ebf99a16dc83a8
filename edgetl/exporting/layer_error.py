"""Where an int8 TFLite model loses accuracy: each layer's error against the float model.

The int8 model and the float model run side by side on the same images, every tensor kept. For
each quantized operator whose output tensor the float model also has (the converter keeps the
names), the error is the RMS difference of the dequantized output from the float output, divided by
the float output's standard deviation: 0 is exact, 1 is as large as the signal. Errors accumulate
through the network, so each layer also gets its ``added`` error, its own error minus the largest
error among its inputs: the layers that add most are the ones to keep in float
(:func:`edgetl.exporting.tflite.quantized`) and the ones the export report lists.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgetl.exporting._tf_internal import ops_details
from edgetl.exporting.bias_correction import feeder, interpreter
from edgetl.runtime.litert import tensor_spec

SKIPPED_OPS = ("QUANTIZE", "DEQUANTIZE", "RESHAPE")
"""Ops that only move or re-type values: their error is their input's."""
DELEGATED = "DELEGATE"
"""A delegate's node (XNNPACK's), listed after the ops it took over: not an op of the model."""


@dataclass(frozen=True)
class LayerError:
    """One operator of the int8 model, compared with the float model."""

    tensor: str
    """Its output tensor's name (the converter's node name: what keeping it in float takes)."""
    op: str
    error: float
    """RMS error of its output / standard deviation of the float output, accumulated from the input."""
    added: float
    """``error`` minus the largest error among its inputs: what this layer itself adds."""
    index: int
    """Position in the graph (0 = first operator)."""

    @property
    def name(self) -> str:
        """A readable name: the Keras layer in the converter's node name
        (``model/backbone/block_15_project_BN_1/batchnorm/add_1;...`` -> ``block_15_project_BN``)."""
        return short_name(self.tensor)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self) | {"name": self.name}


# Node-name parts that name an operation, not a layer.
_OP_WORDS = {"batchnorm", "add", "add_1", "mul", "mul_1", "relu6", "relu", "convolution", "depthwise", "matmul",
             "biasadd", "mean", "softmax", "conv2d", "readvariableop", "cast_3"}


def short_name(tensor: str) -> str:
    """The last part of a converter node name that names a layer, without Keras's ``_1`` suffix."""
    parts = [p for p in tensor.split(";")[0].split("/") if p.lower() not in _OP_WORDS]
    name = parts[-1] if parts else tensor
    return name.removesuffix("_1") if len(name) > 2 else name


def _pairs(q, f) -> list[tuple[dict, int, str, list[int]]]:
    """(int8 tensor detail, float tensor index, op name, int8 input tensors) for every comparable
    operator of the int8 model, in graph order, and last the model's output (its name differs in
    the int8 model, after the quantize ops the input and output types add)."""
    q_tensors = q.get_tensor_details()
    f_index = {t["name"]: t["index"] for t in f.get_tensor_details()}
    pairs = [(q_tensors[op["outputs"][0]], f_index[q_tensors[op["outputs"][0]]["name"]], op["op_name"], list(op["inputs"]))
             for op in ops_details(q) if op["op_name"] not in (*SKIPPED_OPS, DELEGATED) and len(op["outputs"])
             and q_tensors[op["outputs"][0]]["name"] in f_index]
    q_out, f_out = q.get_output_details()[0], f.get_output_details()[0]["index"]
    if not pairs or pairs[-1][1] != f_out:
        producer = next((op for op in ops_details(f) if f_out in list(op["outputs"]) and op["op_name"] != DELEGATED), None)
        pairs.append((q_out, f_out, producer["op_name"] if producer else "OUTPUT", [p[0]["index"] for p in pairs[-1:]]))
    return pairs


def layer_errors(int8_model: bytes, float_model: bytes, images: np.ndarray) -> list[LayerError]:
    """Every comparable operator of ``int8_model`` in graph order, with its error against
    ``float_model`` over ``images`` (RGB uint8 at the model's size; a few dozen are plenty)."""
    q, f = interpreter(int8_model, keep_tensors=True), interpreter(float_model, keep_tensors=True)
    pairs = _pairs(q, f)
    (q_input, to_q), (f_input, to_f) = feeder(q), feeder(f)
    squared = np.zeros(len(pairs))
    power = np.zeros(len(pairs))
    for image in images:
        q.set_tensor(q_input, to_q(image[None]))
        f.set_tensor(f_input, to_f(image[None]))
        q.invoke()
        f.invoke()
        for i, (detail, f_index, _, _) in enumerate(pairs):
            ref = f.get_tensor(f_index).astype(np.float64)
            out = tensor_spec(detail).dequantize(q.get_tensor(detail["index"])).astype(np.float64)
            squared[i] += np.mean((out - ref) ** 2)
            power[i] += np.var(ref)
    errors = np.sqrt(squared / np.maximum(power, 1e-12))
    by_output = {detail["index"]: errors[i] for i, (detail, *_) in enumerate(pairs)}
    # A skipped op passes its input's error on, so a layer after a reshape still has a predecessor.
    for op in ops_details(q):
        if op["op_name"] in SKIPPED_OPS and len(op["inputs"]) and len(op["outputs"]):
            by_output.setdefault(op["outputs"][0], by_output.get(op["inputs"][0], 0.0))
    result = []
    for i, (detail, _, op_name, inputs) in enumerate(pairs):
        before = max((by_output.get(t, 0.0) for t in inputs if t >= 0), default=0.0)
        result.append(LayerError(detail["name"], op_name, float(errors[i]), float(errors[i] - before), i))
    return result


def most_added(errors: list[LayerError], n: int) -> list[LayerError]:
    """The ``n`` layers that add most error, largest first."""
    return sorted(errors, key=lambda e: -e.added)[:n]
