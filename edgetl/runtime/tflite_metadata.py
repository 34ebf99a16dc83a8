"""Read and build TFLite model metadata (the standard ``TFLITE_METADATA`` flatbuffer, schema M001)
and the associated files zipped onto the end of a model. flatbuffers only: runs on the device."""
from __future__ import annotations

import io
import json
import struct
import zipfile

import flatbuffers
from flatbuffers.table import Table

from edgetl.runtime import _metadata_schema as md

METADATA_NAME = "TFLITE_METADATA"
SPEC_FILE = "edgetl.json"

# Field slots of the TFLite model schema (tensorflow/lite/schema/schema.fbs) used here.
_MODEL_BUFFERS, _MODEL_METADATA = 12, 16
_METADATA_NAME, _METADATA_BUFFER = 4, 6
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 4, 6, 8


def _root(buf: bytes) -> Table:
    return Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))


def _tables(t: Table, slot: int) -> list[Table]:
    o = t.Offset(slot)
    if not o:
        return []
    start = t.Vector(o)
    return [Table(t.Bytes, t.Indirect(start + 4 * i)) for i in range(t.VectorLen(o))]


def _u32(t: Table, slot: int) -> int:
    o = t.Offset(slot)
    return t.Get(flatbuffers.number_types.Uint32Flags, o + t.Pos) if o else 0


def _u64(t: Table, slot: int) -> int:
    o = t.Offset(slot)
    return t.Get(flatbuffers.number_types.Uint64Flags, o + t.Pos) if o else 0


def check_complete(model: bytes) -> str | None:
    """Why a TFLite file is truncated or not a model, or None when every buffer lies inside it.

    The interpreter itself accepts a file cut after its tensors' table and reads zeros for the
    missing weights, so edgetl checks the extents first."""
    if len(model) < 8 or model[4:8] != b"TFL3":
        return "no TFL3 identifier: not a TFLite flatbuffer"
    try:
        for buf in _tables(_root(model), _MODEL_BUFFERS):
            offset = _u64(buf, _BUFFER_OFFSET)
            if offset > 1:
                end = offset + _u64(buf, _BUFFER_SIZE)
            else:
                o = buf.Offset(_BUFFER_DATA)
                end = buf.Vector(o) + buf.VectorLen(o) if o else 0
            if end > len(model):
                return f"a weight buffer ends at byte {end} but the file has {len(model)}: truncated"
    except (IndexError, struct.error):
        return "the flatbuffer points outside the file: truncated or corrupt"
    return None


def metadata_buffer(model: bytes, name: str = METADATA_NAME) -> bytes | None:
    """The bytes of the model's metadata entry ``name``, or None."""
    root = _root(model)
    buffers = _tables(root, _MODEL_BUFFERS)
    for entry in _tables(root, _MODEL_METADATA):
        o = entry.Offset(_METADATA_NAME)
        if not o or entry.String(o + entry.Pos).decode() != name:
            continue
        buf = buffers[_u32(entry, _METADATA_BUFFER)]
        offset = _u64(buf, _BUFFER_OFFSET)
        if offset > 1:  # models over 2 GB keep buffers after the flatbuffer
            return model[offset: offset + _u64(buf, _BUFFER_SIZE)]
        o = buf.Offset(_BUFFER_DATA)
        if not o:
            return None
        start = buf.Vector(o)
        return bytes(model[start: start + buf.VectorLen(o)])
    return None


def associated_files(model: bytes) -> dict[str, bytes]:
    """Files zipped onto the end of the model (labels, edgetl.json), by name."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as z:
            return {n: z.read(n) for n in z.namelist()}
    except zipfile.BadZipFile:
        return {}


def read(model: bytes) -> dict:
    """What the model's metadata says: ``labels``, ``mean``/``std`` (float input normalisation),
    ``pixels`` (edgetl's full pixel spec when it made the model) and ``name``. Empty when none."""
    raw = metadata_buffer(model)
    if raw is None or not md.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0):
        return {}
    meta = md.ModelMetadataT.InitFromObj(md.ModelMetadata.GetRootAs(raw, 0))
    files = associated_files(model)
    out: dict = {"name": (meta.name or b"").decode() if isinstance(meta.name, bytes) else meta.name}
    sub = (meta.subgraphMetadata or [None])[0]
    if sub is not None and sub.inputTensorMetadata:
        for unit in sub.inputTensorMetadata[0].processUnits or []:
            if unit.optionsType == md.ProcessUnitOptions.NormalizationOptions:
                out["mean"] = float(list(unit.options.mean)[0])
                out["std"] = float(list(unit.options.std)[0])
    if sub is not None and sub.outputTensorMetadata:
        for f in sub.outputTensorMetadata[0].associatedFiles or []:
            fname = f.name.decode() if isinstance(f.name, bytes) else f.name
            if f.type == md.AssociatedFileType.TENSOR_AXIS_LABELS and fname in files:
                out["labels"] = files[fname].decode().splitlines()
    if SPEC_FILE in files:
        out["pixels"] = json.loads(files[SPEC_FILE])
    return out
