"""Refuse ONNX models whose tensors point at external data outside the model's folder.

A file the walk cannot follow is refused (fail closed), and edgetl requires ONNX Runtime 1.32 or
later, which refuses such paths itself: two guards, either enough alone.

ONNX Runtime releases before its late-2025 fix read an external-data ``location`` such as
``../../etc/passwd`` or an absolute path as it is, so a model file could make a device read (and, through inference,
leak) any file. edgetl never writes external data; a model that uses it must keep it beside itself.
The check walks the protobuf wire format along the few paths where a TensorProto can sit, with the
standard library only (the `onnx` package is not on devices)."""
from __future__ import annotations

import os
from pathlib import Path

from edgetl.errors import EdgetlError

# message kind -> {field number: message kind of that field}; only fields that can lead to a tensor.
_SCHEMA: dict[str, dict[int, str]] = {
    "model": {7: "graph", 25: "function"},
    "function": {7: "node"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {},
}
_EXTERNAL_DATA, _DATA_LOCATION, _EXTERNAL = 13, 14, 1


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: memoryview):
    """(field number, wire type, value) of one message: ints for varints, memoryviews otherwise
    (a group, wire type 3, is read through to its end and given as None: no tensor sits in one)."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 3:
            value, i = None, _skip_group(buf, i, number)
        elif wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            if i + length > len(buf):
                raise ValueError("field runs past the end")
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def _skip_group(buf: memoryview, i: int, number: int, depth: int = 0) -> int:
    """The position after the end of the group ``number`` that starts at ``i``."""
    if depth > 64:
        raise ValueError("groups nested too deep")
    while i < len(buf):
        key, i = _varint(buf, i)
        n, wire = key >> 3, key & 7
        if wire == 4:
            if n != number:
                raise ValueError("a group ends that was not open")
            return i
        if wire == 3:
            i = _skip_group(buf, i, n, depth + 1)
        elif wire == 0:
            _, i = _varint(buf, i)
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        elif wire == 2:
            length, i = _varint(buf, i)
            i += length
        else:
            raise ValueError(f"wire type {wire}")
        if i > len(buf):
            raise ValueError("field runs past the end")
    raise ValueError("a group is never closed")


def external_locations(data: bytes) -> list[str]:
    """The external-data ``location`` of every tensor in a serialized ModelProto."""
    found: list[str] = []
    stack = [("model", memoryview(data))]
    while stack:
        kind, buf = stack.pop()
        if kind == "tensor":
            location = _tensor_location(buf)
            if location is not None:
                found.append(location)
            continue
        for number, wire, value in _fields(buf):
            if wire == 2 and number in _SCHEMA[kind]:
                stack.append((_SCHEMA[kind][number], value))
    return found


def _tensor_location(buf: memoryview) -> str | None:
    """The external-data location of one TensorProto ("" when external without one), else None."""
    external, location = False, ""
    for number, wire, value in _fields(buf):
        if number == _DATA_LOCATION and wire == 0:
            external = value == _EXTERNAL
        elif number == _EXTERNAL_DATA and wire == 2:
            entry = {n: bytes(v) for n, w, v in _fields(value) if w == 2}
            if entry.get(1) == b"location":
                location = entry.get(2, b"").decode("utf-8", "replace")
    return location if external or location else None


def check_external_data(path: Path) -> None:
    """Raise :class:`EdgetlError` when the model at ``path`` references external data that is
    absolute or resolves outside the model's folder."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return  # ONNX Runtime reports an unreadable file in its own words
    try:
        locations = external_locations(data)
    except (ValueError, RecursionError) as e:
        # Fail closed: a file this walk cannot follow might hide a tensor from it, which ONNX
        # Runtime (whose parser skips what it does not know) would then read.
        raise EdgetlError(f"not a valid ONNX model (its protobuf cannot be read: {e})", path=path,
                          fix="re-export it; a truncated copy or another file type cannot load") from None
    folder = os.path.realpath(path.parent)
    for loc in locations:
        target = os.path.realpath(os.path.join(folder, loc))
        if not loc or os.path.isabs(loc) or os.path.commonpath([folder, target]) != folder:
            raise EdgetlError(f"the model reads external data from {loc!r}, outside its folder", path=path,
                              fix="keep external data files beside the model (edgetl's own exports never use them)")
