"""What a file claims to be (its extension) and what it is (its first bytes)."""
from __future__ import annotations

from edgetl.runtime.preprocess import IMAGE_EXTENSIONS

__all__ = ["IMAGE_EXTENSIONS", "is_supported", "looks_truncated", "sniff"]

_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
_OTHER_SIGNATURES = (
    (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"%PDF", "pdf"), (b"PK\x03\x04", "zip"),
    (b"\x00\x00\x00\x0cjP  ", "jpeg2000"), (b"8BPS", "psd"),
)


def sniff(head: bytes) -> str | None:
    """The image format named by a file's first bytes, or None when it is not a known image."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "heic/avif"
    for magic, name in _SIGNATURES + _OTHER_SIGNATURES:
        if head.startswith(magic):
            return name
    return None


def is_supported(fmt: str | None) -> bool:
    """True for the formats edgetl decodes."""
    return fmt in set(IMAGE_EXTENSIONS.values())


def looks_truncated(fmt: str, data: bytes) -> bool:
    """True when a JPEG lacks its end-of-image marker or a PNG its IEND chunk."""
    tail = data[-1024:].rstrip(b"\x00\r\n ")
    if fmt == "jpeg":
        return b"\xff\xd9" not in tail[-32:]
    if fmt == "png":
        return b"IEND" not in tail[-32:]
    if fmt == "gif":
        return not tail.endswith(b";")
    return False
