"""Read and build TFLite model metadata (the standard ``TFLITE_METADATA`` flatbuffer, schema M001)
and the associated files zipped onto the end of a model. flatbuffers only: runs on the device."""
from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

import flatbuffers
from flatbuffers.table import Table

from edgetl._vendor import tflite_metadata_schema as md
from edgetl.runtime.labels import label_lines

METADATA_NAME = "TFLITE_METADATA"
SPEC_FILE = "edgetl.json"
MAX_ASSOCIATED_BYTES = 16 << 20
"""Labels and edgetl.json are kilobytes; an associated file that unpacks to more is refused."""

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


class MetadataError(ValueError):
    """The model's metadata is damaged or crafted (the message names the field)."""


def associated_file(model: bytes, name: str) -> bytes | None:
    """One file zipped onto the end of the model, or None. Only that entry is read, and only when
    it is stored or deflated, not encrypted, and at most ``MAX_ASSOCIATED_BYTES`` unpacked (a
    zip bomb in a model file is refused, not inflated)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as z:
            try:
                info = z.getinfo(name)
            except KeyError:
                return None
            if info.flag_bits & 0x1:
                raise MetadataError(f"associated file {name} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise MetadataError(f"associated file {name} uses an unsupported compression ({info.compress_type})")
            if info.file_size > MAX_ASSOCIATED_BYTES:
                raise MetadataError(f"associated file {name} unpacks to {info.file_size} bytes "
                                    f"(over {MAX_ASSOCIATED_BYTES >> 20} MiB)")
            with z.open(info) as f:
                data = f.read(MAX_ASSOCIATED_BYTES + 1)  # the header's size may lie
            if len(data) > MAX_ASSOCIATED_BYTES:
                raise MetadataError(f"associated file {name} unpacks to over {MAX_ASSOCIATED_BYTES >> 20} MiB")
            return data
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, zlib.error) as e:
        raise MetadataError(f"associated files are not a readable zip ({e})") from None


def _text(value) -> str:
    return (value or b"").decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


def read(model: bytes) -> dict:
    """What the model's metadata says: ``labels``, ``mean``/``std`` (float input normalisation),
    ``pixels`` (edgetl's full pixel spec when it made the model) and ``name``. Empty when none.
    Raises :class:`MetadataError` naming the field when the metadata is damaged."""
    raw = metadata_buffer(model)
    if raw is None or not md.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0):
        return {}
    try:
        meta = md.ModelMetadataT.InitFromObj(md.ModelMetadata.GetRootAs(raw, 0))
    except (IndexError, struct.error, UnicodeDecodeError) as e:
        raise MetadataError(f"the TFLITE_METADATA table is corrupt ({type(e).__name__})") from None
    out: dict = {"name": _text(meta.name)}
    sub = (meta.subgraphMetadata or [None])[0]
    if sub is not None and sub.inputTensorMetadata:
        for unit in sub.inputTensorMetadata[0].processUnits or []:
            if unit.optionsType == md.ProcessUnitOptions.NormalizationOptions:
                mean, std = unit.options.mean, unit.options.std
                mean, std = [] if mean is None else list(mean), [] if std is None else list(std)
                if not mean or not std:
                    raise MetadataError("NormalizationOptions has no mean or std")
                out["mean"], out["std"] = float(mean[0]), float(std[0])
    if sub is not None and sub.outputTensorMetadata:
        for f in sub.outputTensorMetadata[0].associatedFiles or []:
            fname = _text(f.name)
            if f.type == md.AssociatedFileType.TENSOR_AXIS_LABELS:
                data = associated_file(model, fname)
                if data is not None:
                    try:
                        out["labels"] = label_lines(data.decode("utf-8-sig"))
                    except UnicodeDecodeError as e:
                        raise MetadataError(f"labels file {fname} is not UTF-8 (byte {e.start})") from None
                    break
    spec = associated_file(model, SPEC_FILE)
    if spec is not None:
        try:
            out["pixels"] = json.loads(spec)
        except ValueError as e:
            raise MetadataError(f"{SPEC_FILE} is not valid JSON ({e})") from None
        if not isinstance(out["pixels"], dict):
            raise MetadataError(f"{SPEC_FILE} is not a JSON object")
    return out
