"""The oldest runtime each artifact needs, read from the file (ONNX opset, TFLite ops)."""
from __future__ import annotations

from pathlib import Path

# The first ONNX Runtime release that runs each ONNX opset (ONNX Runtime's compatibility table).
ORT_FOR_OPSET = {13: "1.7", 14: "1.10", 15: "1.11", 16: "1.11", 17: "1.13", 18: "1.14", 19: "1.15", 20: "1.17",
                 21: "1.18", 22: "1.20"}


def runtime_needs(path: Path) -> dict:
    """The oldest runtimes that can run an artifact: for TFLite the converter's min_runtime_version
    (from its op versions), for ONNX the opset, IR version and first ONNX Runtime with that opset."""
    if path.suffix == ".tflite":
        from edgetl.runtime.litert import min_runtime_version

        return {"tflite_runtime": min_runtime_version(path.read_bytes())}
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return {"onnx_opset": opset, "onnx_ir_version": proto.ir_version, "onnxruntime": ORT_FOR_OPSET.get(opset)}
