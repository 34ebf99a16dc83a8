"""Model files as an attacker would change them."""
from __future__ import annotations

import io
import zipfile


def with_files(model: bytes, files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """The model with its associated-files zip replaced by ``files`` (what a crafted file would carry)."""
    start = model.find(b"PK\x03\x04")
    body = model[:start] if start > 0 else model
    out = io.BytesIO(body)
    with zipfile.ZipFile(out, "a", compression=compression) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()
