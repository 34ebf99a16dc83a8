"""Replace the folded "unknown" rule's one constant in an exported file, and its embedded manifest
(``edgetl calibrate``): no conversion, no quantization, the rest of the file as it was.

The rule's threshold lives in the bias of the gate's 1-unit dense layer (``-sharpness *
threshold``). The int8 exports keep the rule's layers in float, so in every format that bias is a
one-element float constant (float16 behind a Dequantize in the fp16 TFLite file) feeding a
fully-connected layer whose weight is the one-element slope. It is found by that shape and by
its value, not by a name a converter may change, and exactly one must match."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.runtime.manifest import ModelManifest


def rewrite(path: Path, old_bias: float, new_bias: float, manifest: ModelManifest) -> bytes:
    """The file at ``path`` with the gate's bias ``old_bias`` replaced by ``new_bias`` and
    ``manifest`` embedded in place of its own."""
    data = path.read_bytes()
    if path.suffix == ".tflite":
        return _tflite(data, old_bias, new_bias, manifest, path)
    if path.suffix == ".onnx":
        return _onnx(data, old_bias, new_bias, manifest, path)
    raise EdgetlError(f"'{path.suffix}' is not an exported model", path=path, fix="give a .tflite or .onnx file")


def _matches(value: np.ndarray, old: float) -> bool:
    tol = 2e-3 if value.dtype == np.float16 else 1e-5  # float16 keeps 11 bits: 0.06 at 142
    return value.size == 1 and bool(np.isclose(float(value.reshape(-1)[0]), old, rtol=tol, atol=tol))


def _not_found(path: Path, hits: int) -> EdgetlError:
    return EdgetlError(f"the \"unknown\" rule's constant was found {hits} times in this file, not once", path=path,
                       fix="export the run again (edgetl export RUN), then calibrate")


def _tflite(data: bytes, old: float, new: float, manifest: ModelManifest, path: Path) -> bytes:
    import flatbuffers

    from edgetl.exporting import metadata
    from edgetl.exporting._tf_internal import tflite_schema
    from edgetl.runtime.tflite_metadata import METADATA_NAME

    schema = tflite_schema()
    tree = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    codes = [c.builtinCode if c.builtinCode else c.deprecatedBuiltinCode for c in tree.operatorCodes]
    dtypes = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16}
    hits = []
    for sg in tree.subgraphs:
        producer = {o: op for op in sg.operators for o in (op.outputs if op.outputs is not None else [])}

        def constant(index: int):
            """The buffer behind tensor ``index``, through a Dequantize (fp16) when there is one."""
            t = sg.tensors[index]
            buf = tree.buffers[t.buffer]
            if (buf.data is None or len(buf.data) == 0) and index in producer:
                op = producer[index]
                if codes[op.opcodeIndex] == schema.BuiltinOperator.DEQUANTIZE:
                    return constant(op.inputs[0])
            return (buf, t) if buf.data is not None and t.type in dtypes else (None, t)

        for op in sg.operators:
            if codes[op.opcodeIndex] != schema.BuiltinOperator.FULLY_CONNECTED or len(op.inputs) < 3 or op.inputs[2] < 0:
                continue
            (_, w), (buf, b) = constant(op.inputs[1]), constant(op.inputs[2])
            if buf is None or w.shape is None or int(np.prod(w.shape)) != 1:
                continue
            value = np.frombuffer(bytes(buf.data), dtypes[b.type])
            if _matches(value, old) and all(buf is not h[0] for h in hits):
                hits.append((buf, dtypes[b.type]))
    if len(hits) != 1:
        raise _not_found(path, len(hits))
    buf, dtype = hits[0]
    buf.data = np.frombuffer(np.array([new], dtype).tobytes(), np.uint8)
    for m in tree.metadata or []:  # the old metadata's buffer emptied; embed writes it anew
        if m.name in (METADATA_NAME, METADATA_NAME.encode()):
            tree.buffers[m.buffer].data = None
    tree.metadata = [m for m in tree.metadata or [] if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return metadata.embed_tflite(bytes(builder.Output()), f"{manifest.backbone or 'model'} {manifest.precision}",
                                 manifest)


def _onnx(data: bytes, old: float, new: float, manifest: ModelManifest, path: Path) -> bytes:
    import onnx
    from onnx import numpy_helper

    from edgetl.exporting import metadata

    model = onnx.load_from_string(data)
    hits = [i for i, init in enumerate(model.graph.initializer)
            if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
            and _matches(numpy_helper.to_array(init), old)]
    if len(hits) != 1:
        raise _not_found(path, len(hits))
    init = model.graph.initializer[hits[0]]
    value = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array(np.full(value.shape, new, value.dtype), init.name))
    metadata.embed_onnx(model, manifest)
    return model.SerializeToString()
