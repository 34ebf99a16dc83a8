"""TFLite models through LiteRT (ai-edge-litert), else tflite-runtime, else TensorFlow's tf.lite."""
from __future__ import annotations

import importlib
import struct
from pathlib import Path

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.native_logs import silenced
from edgetl.runtime import tflite_metadata
from edgetl.runtime.spec import ModelInfo, TensorSpec, guess_layout

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


# Runtimes whose version numbers follow TensorFlow's, which is what a model's min_runtime_version
# is written in. LiteRT (ai-edge-litert) numbers itself anew and runs every op edgetl's converter emits.
TF_NUMBERED = ("tflite-runtime", "tensorflow")
NEWER_RUNTIME = "pip install ai-edge-litert (LiteRT runs every op version the converter writes)"


def min_runtime_version(content: bytes) -> str | None:
    """The oldest TFLite runtime the converter says can run this model (its op versions), e.g. "2.17.0"."""
    try:
        raw = tflite_metadata.metadata_buffer(content, "min_runtime_version")
    except (IndexError, struct.error):
        return None
    text = raw.rstrip(b"\x00").decode("ascii", "replace").strip() if raw else ""
    return text or None


def version_tuple(version: str) -> tuple[int, ...]:
    """"2.14.0" -> (2, 14, 0); anything unparsable counts as 0."""
    return tuple(int(p) if p.isdigit() else 0 for p in version.split(".")[:3])


def _too_old(path: Path, needs: str, runtime: str) -> EdgetlError:
    return EdgetlError(f"this model needs a TFLite runtime >= {needs}; this machine has {runtime}", path=path,
                       fix=f"use model_int8.tflite or model_fp32.tflite (older runtimes run them), or {NEWER_RUNTIME}")


def tensor_spec(d: dict) -> TensorSpec:
    """A TFLite interpreter's tensor details as a :class:`TensorSpec`."""
    scale, zero_point = d.get("quantization", (0.0, 0))
    shape = tuple(int(s) for s in d["shape"])
    return TensorSpec(d["name"], shape, np.dtype(d["dtype"]), float(scale), int(zero_point), guess_layout(shape))


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
        needs = min_runtime_version(content)
        if needs and package in TF_NUMBERED and version_tuple(_version(package)) < version_tuple(needs):
            raise _too_old(path, needs, self.runtime)  # said before the interpreter fails in its own words
        try:
            with silenced():  # LiteRT announces its XNNPACK delegate from C++ here
                self.interpreter = cls(model_content=content, num_threads=threads)
                self.interpreter.allocate_tensors()
        except SystemError as e:  # tflite-runtime wheels are built against numpy 1.x
            import numpy

            raise EdgetlError(f"{self.runtime} cannot run with numpy {numpy.__version__} ({e})", path=path,
                              fix=f'pip install "numpy<2", or {NEWER_RUNTIME}') from e
        except (ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "Didn't find op for builtin opcode" in str(e) and needs:
                raise _too_old(path, needs, self.runtime) from e
            raise EdgetlError(f"not a valid TFLite model ({first})", path=path,
                              fix="re-export it; a truncated copy or another file type cannot load") from e
        inp = self.interpreter.get_input_details()[0]
        outp = self.interpreter.get_output_details()[0]
        self._in, self._out = inp["index"], outp["index"]
        self._batch = int(inp["shape"][0])
        self.dynamic_batch = int(inp.get("shape_signature", inp["shape"])[0]) == -1
        """The converter kept the batch axis open: a batch of any size runs in one call."""
        self.batch = 1
        """Images per call that score a set fastest: one. XNNPACK's kernels run a single image
        fastest on a CPU (MobileNetV2 224 fp32 on 2 threads: 512 images/s one at a time, 360 in
        32s, whose activations, 154 MB a tensor, leave the cache; int8 the same at any batch)."""
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
