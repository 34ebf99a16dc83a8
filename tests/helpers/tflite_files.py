"""Model files as an attacker would change them."""
from __future__ import annotations

import io
import zipfile

import numpy as np


def with_files(model: bytes, files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """The model with its associated-files zip replaced by ``files`` (what a crafted file would carry)."""
    start = model.find(b"PK\x03\x04")
    body = model[:start] if start > 0 else model
    out = io.BytesIO(body)
    with zipfile.ZipFile(out, "a", compression=compression) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def alter_weights(path) -> None:
    """Change every weight and bias buffer of a TFLite file in place, leaving its structure valid
    (what a corrupted or swapped copy looks like to a runtime: it loads, and answers differently)."""
    from edgetl.runtime import tflite_metadata as tm

    data = bytearray(path.read_bytes())
    buffers = tm._tables(tm._root(bytes(data)), tm._MODEL_BUFFERS)
    for b in buffers:
        if b.Offset(4) and b.VectorLen(b.Offset(4)) >= 64:  # weights and biases, not small shape constants
            start, length = b.Vector(b.Offset(4)), b.VectorLen(b.Offset(4))
            region = np.frombuffer(data, np.uint8, count=length, offset=start)
            data[start:start + length] = (region ^ 0x5A).tobytes()  # every byte changed, sizes kept
    path.write_bytes(bytes(data))
