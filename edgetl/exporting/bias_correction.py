"""Empirical bias correction of a full-integer TFLite model.

Per-channel int8 weights leave each output channel of a depthwise convolution with a systematic
error: with nine weights per channel the rounding errors do not average out, and the error of the
channel's mean reaches every later layer (Nagel et al., "Data-Free Quantization Through Weight
Equalization and Bias Correction", 2019). For each depthwise convolution in graph order, this module
measures the mean difference between the int8 model's output and the float model's output over the
calibration images (counting only positions where the float value lies inside the int8 output's
range, so clipping is not taken for bias), and subtracts it from the layer's
int32 bias, so the layers after it see the corrected output. Nothing else in the model changes: it
stays full-integer, same ops, same size.

The correction is kept only when it brings the model closer to the float model on calibration
images it was not measured on. Validation images are never used.
"""
from __future__ import annotations

import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.cores import usable_cores
from edgetl.scratch import scratch_folder
from edgetl.exporting._tf_internal import ops_details, tflite_schema
from edgetl.runtime.classifier import input_transform
from edgetl.runtime.litert import interpreter_class, tensor_spec
from edgetl.runtime.spec import PixelSpec

CORRECTED_OPS = ("DEPTHWISE_CONV_2D",)


@dataclass
class BiasCorrection:
    """What the correction did, for the export report."""

    layers: int
    error_before: float
    """Mean absolute difference of the output probabilities from the float model, on held-back
    calibration images, before the correction."""
    error_after: float
    kept: bool

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"layers": self.layers, "error_before": self.error_before, "error_after": self.error_after,
                "kept": self.kept}


def interpreter(model: bytes, keep_tensors: bool):
    """A one-thread LiteRT interpreter of ``model``, allocated; with ``keep_tensors`` every
    intermediate tensor stays readable after ``invoke`` (what comparing layers needs)."""
    with warnings.catch_warnings():  # keeping every tensor is the point here, not a debugging leftover
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        it = interpreter_class()[0](model_content=model, experimental_preserve_all_tensors=keep_tensors, num_threads=1)
    it.allocate_tensors()
    return it


def feeder(interpreter) -> tuple[int, Callable[[np.ndarray], np.ndarray]]:
    """The input index of ``interpreter`` and the runtime layer's own mapping of uint8 pixels to
    that input (edgetl's models take pixels 0..255: mean 0, std 1)."""
    detail = interpreter.get_input_details()[0]
    height, width = (int(v) for v in detail["shape"][1:3])
    return detail["index"], input_transform(PixelSpec(height, width, 0.0, 1.0), tensor_spec(detail))


@dataclass
class _Layer:
    """A corrected layer: its int8 output tensor, the float model's tensor of the same name, and
    the range the int8 output can represent (a float value outside it is clipping, not bias)."""

    op: dict
    index: int
    out: object  # the int8 output's TensorSpec
    float_index: int
    low: float
    high: float
    shape: tuple[int, ...]
    offset: int
    """Where this layer's packed mask starts in an image's row of the mask store."""

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def _layers(probe, ops: list[dict], float_index: dict[str, int]) -> list[_Layer]:
    """The layers of ``ops`` with their ranges and their place in the mask store."""
    details = probe.get_tensor_details()
    layers, offset = [], 0
    for op in ops:
        detail = details[op["outputs"][0]]
        out = tensor_spec(detail)
        info = np.iinfo(out.dtype)
        shape = tuple(int(v) for v in detail["shape"][1:])
        layers.append(_Layer(op, detail["index"], out, float_index[detail["name"]],
                             (info.min - out.zero_point + 1) * out.scale, (info.max - out.zero_point - 1) * out.scale,
                             shape, offset))
        offset += (int(np.prod(shape)) + 7) // 8
    return layers


def _float_pass(reference, layers: list[_Layer], images: np.ndarray, masks: np.ndarray) -> list[np.ndarray]:
    """One pass of the float model over ``images``: for every layer, which positions lie inside its
    int8 range (packed into ``masks``, a row per image) and the per-channel sum of the float values
    there. Every layer's float side is fixed, so it is measured once instead of once per layer."""
    ref_in, to_ref = feeder(reference)
    sums = [np.zeros(layer.shape[-1]) for layer in layers]
    for i, image in enumerate(images):
        reference.set_tensor(ref_in, to_ref(image[None]))
        reference.invoke()
        for layer, total in zip(layers, sums):
            ref = reference.get_tensor(layer.float_index)[0]
            inside = (ref > layer.low) & (ref < layer.high)
            total += (ref * inside).reshape(-1, layer.shape[-1]).sum(axis=0, dtype=np.float64)
            packed = np.packbits(inside.reshape(-1))
            masks[i, layer.offset:layer.offset + packed.size] = packed
    return sums


_OPERATORS, _OUTPUTS = 10, 8
"""The vtable slots of SubGraph's ``operators`` and ``outputs`` vectors in TFLite's schema."""


def _ending_at(model: bytes, layer: _Layer) -> bytes:
    """``model`` cut after ``layer``'s op, with the layer's output as the model's one output: the
    ops after it cannot change it, and measuring it no longer needs every tensor kept (MobileNetV2:
    about half the work a layer, on average). Done in place on a copy: the subgraph's output index
    is rewritten and its operator vector's length shortened (a flatbuffer vector is its length
    then its elements, so the ops after it are simply no longer listed)."""
    buf = bytearray(model)
    subgraph = tflite_schema().Model.GetRootAs(buf, 0).Subgraphs(0)
    table = subgraph._tab  # (the generated accessors read vectors, they do not resize them)
    outputs = table.Vector(table.Offset(_OUTPUTS))
    struct.pack_into("<Ii", buf, outputs - 4, 1, layer.index)
    struct.pack_into("<I", buf, table.Vector(table.Offset(_OPERATORS)) - 4, layer.op["index"] + 1)
    return bytes(buf)


def _int8_sums(model: bytes, layer: _Layer, images: np.ndarray, masks: np.ndarray, first: int) -> np.ndarray:
    """Per image of ``images`` (``first`` is the first one's row in ``masks``): the per-channel sum of
    the int8 output of ``layer`` (``model``'s output: :func:`_ending_at`) over the positions inside
    the int8 range, and their count."""
    it = interpreter(model, keep_tensors=False)
    inp, to_input = feeder(it)
    out = it.get_output_details()[0]["index"]
    channels = layer.shape[-1]
    packed_size = (layer.size + 7) // 8
    sums = np.zeros((len(images), 2, channels))
    for i, image in enumerate(images):
        it.set_tensor(inp, to_input(image[None]))
        it.invoke()
        q = layer.out.dequantize(it.get_tensor(out)[0]).reshape(-1, channels)
        row = first + i
        inside = np.unpackbits(masks[row, layer.offset:layer.offset + packed_size], count=layer.size)
        inside = inside.reshape(-1, channels).astype(bool)
        sums[i, 0] = (q * inside).sum(axis=0, dtype=np.float64)
        sums[i, 1] = inside.sum(axis=0)
    return sums


def _mean_error(model: bytes, layer: _Layer, float_sum: np.ndarray, images: np.ndarray,
                masks: np.ndarray) -> np.ndarray:
    """Per-channel mean of the int8 output of ``layer`` minus the float model's, over the positions
    inside the int8 range (``masks``, from :func:`_float_pass`). The images are shared among the
    usable cores, an interpreter each (LiteRT lets go of Python's lock while it runs); the sums are
    then added image by image in order, so the result is the same to the last bit on any number of
    cores."""
    workers = min(usable_cores(), len(images)) or 1
    bounds = np.linspace(0, len(images), workers + 1).astype(int)
    cut = _ending_at(model, layer)
    with ThreadPoolExecutor(workers) as pool:
        parts = pool.map(lambda k: _int8_sums(cut, layer, images[bounds[k]:bounds[k + 1]], masks, bounds[k]),
                         range(workers))
        per_image = np.concatenate(list(parts))
    total, count = np.zeros(layer.shape[-1]), np.zeros(layer.shape[-1])
    for image_sum, image_count in per_image:
        total += image_sum
        count += image_count
    # (float64 sums: the error is a small difference of two large sums)
    return (total - float_sum) / np.maximum(count, 1)


def _output_error(model: bytes, float_model: bytes, images: np.ndarray) -> float:
    """Mean absolute difference of the dequantized outputs of the two models."""
    q, f = interpreter(model, False), interpreter(float_model, False)
    (qi, q_input), (fi, f_input) = feeder(q), feeder(f)
    qo, fo = q.get_output_details()[0], f.get_output_details()[0]
    q_out = tensor_spec(qo)
    diffs = []
    for image in images:
        q.set_tensor(qi, q_input(image[None]))
        f.set_tensor(fi, f_input(image[None]))
        q.invoke()
        f.invoke()
        diffs.append(np.abs(q_out.dequantize(q.get_tensor(qo["index"])) - f.get_tensor(fo["index"])).mean())
    return float(np.mean(diffs))


def corrected(int8_model: bytes, float_model: bytes, images: np.ndarray) -> bytes:
    """``int8_model`` with each depthwise convolution's int32 bias corrected, in graph order, by its
    per-channel mean output error on ``images`` (RGB uint8 at the model's size). The float model
    runs once over the images; the int8 model once per layer, cut after it (:func:`_ending_at`),
    as each correction changes what the layers after it see."""
    schema = tflite_schema()

    probe = interpreter(int8_model, keep_tensors=False)
    details = probe.get_tensor_details()
    # (a layer kept in float has a float output and bias: nothing to correct)
    ops = [op for op in ops_details(probe) if op["op_name"] in CORRECTED_OPS
           and np.issubdtype(details[op["outputs"][0]]["dtype"], np.integer)]
    reference = interpreter(float_model, keep_tensors=True)
    float_index = {t["name"]: t["index"] for t in reference.get_tensor_details()}
    missing = [details[op["outputs"][0]]["name"] for op in ops if details[op["outputs"][0]]["name"] not in float_index]
    if missing:
        raise ValueError(f"the float model has no tensor named {missing[0]!r}")
    layers = _layers(probe, ops, float_index)
    buf = bytearray(int8_model)
    graph = schema.Model.GetRootAs(buf, 0)
    tensors = graph.Subgraphs(0)
    row = sum((layer.size + 7) // 8 for layer in layers)
    # The masks are a bit per activation per image (~0.5 MB an image for MobileNetV2 at 224 px):
    # on disk, so memory stays what one image needs however many calibration images there are.
    with scratch_folder("edgetl-bias-") as tmp:
        masks = np.lib.format.open_memmap(Path(tmp) / "masks.npy", mode="w+", dtype=np.uint8,
                                          shape=(len(images), max(row, 1)))
        float_sums = _float_pass(reference, layers, images, masks)
        for layer, float_sum in zip(layers, float_sums):
            bias = details[layer.op["inputs"][2]]
            stored = graph.Buffers(tensors.Tensors(bias["index"]).Buffer()).DataAsNumpy()
            if bias["dtype"] != np.int32 or isinstance(stored, int) or stored.size != 4 * layer.shape[-1]:
                continue  # a bias with no data of its own: leave it
            error = _mean_error(bytes(buf), layer, float_sum, images, masks)
            stored.view(np.int32)[:] -= np.rint(error / bias["quantization_parameters"]["scales"]).astype(np.int32)
        del masks
    return bytes(buf)


def held_back_mask(n: int) -> np.ndarray:
    """Which of ``n`` calibration images are held back: every fourth. int8's own choices (this
    correction kept or not, the per-layer error) are judged on them; the other three quarters
    measure. Validation images never are."""
    mask = np.zeros(n, bool)
    mask[3::4] = True
    return mask


def correct_biases(int8_model: bytes, float_model: bytes, calib: np.ndarray) -> tuple[bytes, BiasCorrection]:
    """The bias-corrected model when it is closer to the float model than ``int8_model``, else
    ``int8_model``; and what was done. Three quarters of ``calib`` measure the errors (all of them:
    on 64 images the correction of a hymenoptera model came out worse than none and was dropped,
    where 225 images made it agree with float on every held-out image), the other quarter (held
    back) decides."""
    held_back = held_back_mask(len(calib))
    candidate = corrected(int8_model, float_model, calib[~held_back])
    check = calib[held_back]
    with ThreadPoolExecutor(2) as pool:  # one interpreter each: LiteRT lets go of Python's lock while it runs
        before, after = pool.map(lambda model: _output_error(model, float_model, check), (int8_model, candidate))
    layers = sum(op["op_name"] in CORRECTED_OPS for op in ops_details(interpreter(int8_model, False)))
    kept = after < before
    return (candidate if kept else int8_model), BiasCorrection(layers, before, after, kept)
