"""TFLite models through LiteRT (ai-edge-litert), else tflite-runtime, else TensorFlow's tf.lite."""
from __future__ import annotations

import importlib
import struct
from pathlib import Path

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.native_logs import silenced
from edgetl.runtime import tflite_metadata
from edgetl.runtime.spec import ModelInfo, TensorSpec

# Tried in order; the TensorFlow fallback is last because a device should never need it.
INTERPRETERS = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


def interpreter_class() -> tuple[type, str]:
    """The first TFLite interpreter that imports, and the package that provided it."""
    for module, package in INTERPRETERS:
        try:
            return importlib.import_module(module).Interpreter, package
        except ImportError:
            continue
    raise EdgetlError("no TFLite runtime is installed",
                      fix='pip install "edgetl[device]" (ai-edge-litert) or tflite-runtime')


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def tensor_spec(d: dict) -> TensorSpec:
    """A TFLite interpreter's tensor details as a :class:`TensorSpec`."""
    scale, zero_point = d.get("quantization", (0.0, 0))
    shape = tuple(int(s) for s in d["shape"])
    layout = "NCHW" if len(shape) == 4 and shape[1] == 3 and shape[3] != 3 else "NHWC"
    return TensorSpec(d["name"], shape, np.dtype(d["dtype"]), float(scale), int(zero_point), layout)


class LiteRTBackend:
    """One interpreter, created once and reused; XNNPACK is on by default in LiteRT's resolver."""

    def __init__(self, path: Path, threads: int | None = None, **_: object):
        cls, package = interpreter_class()
        self.runtime = f"{package} {_version(package)}"
        content = path.read_bytes()
        problem = tflite_metadata.check_complete(content)
        if problem:
            raise EdgetlError(f"not a valid TFLite model ({problem})", path=path,
                              fix="re-export it or copy it again; a truncated copy or another file type cannot load")
        try:
            with silenced():  # LiteRT announces its XNNPACK delegate from C++ here
                self.interpreter = cls(model_content=content, num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EdgetlError(f"not a valid TFLite model ({first})", path=path,
                              fix="re-export it; a truncated copy or another file type cannot load") from e
        inp = self.interpreter.get_input_details()[0]
        outp = self.interpreter.get_output_details()[0]
        self._in, self._out = inp["index"], outp["index"]
        self._batch = int(inp["shape"][0])
        try:
            meta = tflite_metadata.read(content)
        except (tflite_metadata.MetadataError, IndexError, struct.error) as e:
            raise EdgetlError(f"the model's metadata is damaged ({e})", path=path,
                              fix="re-export the model, or strip its metadata") from None
        self.info = ModelInfo(tensor_spec(inp), tensor_spec(outp), labels=meta.get("labels"),
                              pixels=meta.get("pixels") or {k: meta[k] for k in ("mean", "std") if k in meta},
                              output_kind="probabilities" if "pixels" in meta else None)  # edgetl ends in softmax
        self._set, self._invoke, self._get = self.interpreter.set_tensor, self.interpreter.invoke, self.interpreter.get_tensor

    def run(self, x: np.ndarray) -> np.ndarray:
        """Invoke on one prepared input batch and return the raw output tensor."""
        if x.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._in, list(x.shape))
            with silenced():
                self.interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self._set(self._in, x)
        try:
            self._invoke()
        except RuntimeError as e:
            raise EdgetlError(f"the model failed to run: {str(e).strip().splitlines()[0]}") from e
        return self._get(self._out)
