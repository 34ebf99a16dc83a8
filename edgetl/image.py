"""Images: what a file is, how big it claims to be, and the one decode and resize path shared by
training, calibration, evaluation and every runtime.

numpy and OpenCV only (OpenCV imported on first use): this module runs on the device.

Reading: regular files only, at most ``MAX_FILE_BYTES``; the width and height written in the
header are checked against a pixel cap (``max_pixels()``, 100 MP unless ``EDGETL_MAX_PIXELS``
says otherwise) *before* anything is decoded, so a small file that claims 30000x30000 pixels costs
nothing. OpenCV's own limit is set to the same cap as a second guard.

Decoding: any file OpenCV reads (jpg, png, bmp, gif's first frame, webp) becomes RGB uint8 with
EXIF orientation applied; grayscale is expanded to three channels, 16-bit is scaled to 8-bit, and an
alpha channel is dropped (the stored RGB values are kept, as PIL's ``convert("RGB")`` and
``tf.io.decode_image(channels=3)`` do).

Resizing: ``resize`` squashes the whole frame to the model's size; ``center_crop`` scales the
shorter side to the model's size and cuts the middle. Shrinking uses area interpolation (no
aliasing), enlarging uses bilinear.
"""
from __future__ import annotations

import functools
import os
import stat
import struct
from pathlib import Path

import numpy as np

RESIZE_METHODS = ("resize", "center_crop")
"""How a photo becomes model input: squash the whole frame, or scale the shorter side and cut the middle."""
IMAGE_EXTENSIONS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".bmp": "bmp", ".gif": "gif", ".webp": "webp"}
"""File extensions edgetl reads, and the format each names."""
DEFAULT_MAX_PIXELS = 100_000_000
MAX_FILE_BYTES = 512 << 20
"""No photo edgetl is meant for is larger; a bigger "image" is refused before it is read."""

_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"BM", "bmp"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"%PDF", "pdf"), (b"PK\x03\x04", "zip"),
    (b"\x00\x00\x00\x0cjP  ", "jpeg2000"), (b"8BPS", "psd"),
)


class DecodeError(ValueError):
    """The file is not an image edgetl can decode (the message says why)."""


class TooLarge(DecodeError):
    """The image claims more pixels than the cap, or the file is larger than any photo."""


def max_pixels() -> int:
    """The pixel cap: $EDGETL_MAX_PIXELS, else 100 million (a 12,000 x 8,000 photo fits)."""
    try:
        return max(1, int(os.environ.get("EDGETL_MAX_PIXELS", DEFAULT_MAX_PIXELS)))
    except ValueError:
        return DEFAULT_MAX_PIXELS


@functools.cache
def cv2():
    """OpenCV, imported on first use (a benchmark runner on a device needs only numpy and a
    runtime), with its log silenced and its own pixel limit set to edgetl's cap."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(max_pixels()))
    import cv2 as module

    try:  # edgetl reports undecodable files itself; OpenCV's own log lines would only add noise
        module.utils.logging.setLogLevel(module.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:
        pass
    return module


def sniff(head: bytes) -> str | None:
    """The image format named by a file's first bytes, or None when it is not a known image."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "heic/avif"
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    return None


def is_supported(fmt: str | None) -> bool:
    """True for the formats edgetl decodes."""
    return fmt in set(IMAGE_EXTENSIONS.values())


def looks_truncated(fmt: str, data: bytes) -> bool:
    """True when a JPEG lacks its end-of-image marker, a PNG its IEND chunk or a GIF its trailer."""
    tail = data[-1024:].rstrip(b"\x00\r\n ")
    if fmt == "jpeg":
        return b"\xff\xd9" not in tail[-32:]
    if fmt == "png":
        return b"IEND" not in tail[-32:]
    if fmt == "gif":
        return not tail.endswith(b";")
    return False


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # markers without a length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
        return struct.unpack("<HH", data[18:22])
    w, h = struct.unpack("<ii", data[18:26])
    return abs(w), abs(h)


# Format -> reader of the width and height its header claims. A new format is one entry here.
_HEADER_SIZE = {
    "png": lambda d: struct.unpack(">II", d[16:24]) if len(d) >= 24 else None,
    "gif": lambda d: struct.unpack("<HH", d[6:10]) if len(d) >= 10 else None,
    "bmp": _bmp_size,
    "webp": _webp_size,
    "jpeg": _jpeg_size,
}


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the file's header states it, without decoding; None when unknown."""
    reader = _HEADER_SIZE.get(sniff(data[:16]) or "")
    try:
        return reader(data) if reader else None
    except struct.error:
        return None


def check_pixels(data: bytes, cap: int | None = None) -> tuple[int, int] | None:
    """The (width, height) the header claims (None when unknown); raise :class:`DecodeError`
    when that is more pixels than ``cap`` (default :func:`max_pixels`)."""
    size = header_size(data)
    cap = cap or max_pixels()
    if size and size[0] * size[1] > cap:
        w, h = size
        raise TooLarge(f"{w}x{h} pixels ({w * h / 1e6:.0f} MP) is over the pixel cap of {cap / 1e6:g} MP; "
                          "if the image is real, raise the cap with EDGETL_MAX_PIXELS")
    return size


def _checked(data: bytes | np.ndarray, cap: int | None = None, what: str = "file") -> tuple[np.ndarray, bytes, tuple | None]:
    """Encoded image bytes as the buffer OpenCV decodes, the bytes, and the size their header
    claims, after the checks every decode makes first: not empty, not over the pixel cap."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data.reshape(-1)
    if buf.size == 0:
        raise DecodeError(f"empty {what}")
    raw = data if isinstance(data, bytes) else buf.tobytes()
    return buf, raw, check_pixels(raw, cap)


def read_file(path: str | Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; :class:`DecodeError` for a FIFO,
    a device, a folder or a file that is too large (nothing is read from them)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise DecodeError(f"cannot read it ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise DecodeError(f"not a regular file ({kind})")
    if st.st_size > limit:
        raise TooLarge(f"{st.st_size / 2**20:.0f} MiB is larger than any photo edgetl reads ({limit >> 20} MiB)")
    try:
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except OSError as e:
        raise DecodeError(f"cannot read it ({e.strerror})") from None


def decode_bytes(data: bytes | np.ndarray, cap: int | None = None) -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 array of shape (H, W, 3), refusing images whose
    header claims more than ``cap`` pixels (default :func:`max_pixels`)."""
    buf, _, _ = _checked(data, cap)
    cv = cv2()
    rgb_flag = getattr(cv, "IMREAD_COLOR_RGB", None)
    if rgb_flag is not None:
        img = cv.imdecode(buf, rgb_flag)
    else:  # OpenCV < 4.11
        img = cv.imdecode(buf, cv.IMREAD_COLOR)
        if img is not None:
            img = cv.cvtColor(img, cv.COLOR_BGR2RGB)
    if img is None:
        raise DecodeError("OpenCV could not decode it")
    return img


JPEG_SCALES = (8, 4, 2)
"""The reductions libjpeg's scaled inverse DCT offers (decoding only 1/k of each 8x8 block)."""


def jpeg_reduction(size: tuple[int, int], target: tuple[int, int] | None) -> int:
    """The largest JPEG decoding reduction k that still leaves a (width, height) frame at least the
    ``target`` (width, height) in both directions; 1 when none does or there is no target.

    Area resizing averages each output pixel's footprint; decoding at 1/k first averages k x k
    blocks of the same footprint (in the DCT domain), so the model sees the same pixels up to
    rounding, for less decoding and resizing work."""
    if target is None:
        return 1
    w, h = size
    return next((k for k in JPEG_SCALES if w // k >= target[0] and h // k >= target[1]), 1)


def decode_frame(data: bytes | np.ndarray, target: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a frame (a JPEG, MJPEG packet or other image) to BGR, OpenCV's order, at the largest
    JPEG reduction that keeps it at least ``target`` (width, height): the live pipeline's decode."""
    buf, raw, size = _checked(data, what="frame")
    cv = cv2()
    k = jpeg_reduction(size, target) if size and sniff(raw[:16]) == "jpeg" else 1
    flag = {1: cv.IMREAD_COLOR, 2: cv.IMREAD_REDUCED_COLOR_2, 4: cv.IMREAD_REDUCED_COLOR_4,
            8: cv.IMREAD_REDUCED_COLOR_8}[k]
    img = cv.imdecode(buf, flag)
    if img is None:
        raise DecodeError("OpenCV could not decode it")
    return img


def decode_preview(data: bytes, cap: int | None = None, side: int = 128) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode for inspection: an RGB image at least ``side`` pixels on each side where the file
    is larger (a JPEG is decoded at its largest libjpeg reduction that keeps that: the whole
    entropy stream is still read, so a corrupt file still fails), and the full (width, height)
    as shown, EXIF orientation applied. The audit's decode: four to eight times less work on
    photos than a full decode."""
    buf, raw, size = _checked(data, cap)
    if not size or sniff(raw[:16]) != "jpeg":
        img = decode_bytes(data, cap)
        return img, (img.shape[1], img.shape[0])
    k = jpeg_reduction(size, (side, side))
    if k == 1:
        img = decode_bytes(data, cap)
        return img, (img.shape[1], img.shape[0])
    cv = cv2()
    img = cv.imdecode(buf, {2: cv.IMREAD_REDUCED_COLOR_2, 4: cv.IMREAD_REDUCED_COLOR_4, 8: cv.IMREAD_REDUCED_COLOR_8}[k])
    if img is None:
        raise DecodeError("OpenCV could not decode it")
    w, h = size
    if (img.shape[1] > img.shape[0]) != (w > h) and w != h:  # EXIF turned it a quarter
        w, h = h, w
    return cv.cvtColor(img, cv.COLOR_BGR2RGB), (w, h)


def content_problem(path: str | Path, data: bytes) -> tuple[str, str] | None:
    """(kind, reason) when a file's name or bytes say it cannot be read as an image, else None:
    one wording for every checker (``data check``, train's skip list, ``predict``, ``eval``)."""
    ext = Path(path).suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        return "not an image extension", (f"not an image extension ({ext or 'none'}); edgetl reads "
                                          f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
    if not data:
        return "empty file", "empty file (0 bytes)"
    fmt = sniff(data[:16])
    if fmt is None:
        kind = "text" if all(32 <= b < 127 or b in (9, 10, 13) for b in data[:256]) else "unknown binary data"
        return "not an image", f"not an image: the content is {kind} despite the {ext} extension"
    if not is_supported(fmt):
        return "unsupported format", f"unsupported format {fmt} (named {ext}); convert it to jpg or png"
    if looks_truncated(fmt, data):
        return "truncated", f"truncated {fmt.upper()}: the file ends before its end marker"
    return None


def decode(path: str | Path) -> np.ndarray:
    """Read and decode an image file to RGB uint8 (H, W, 3); a file that is not one raises
    :class:`DecodeError` with :func:`content_problem`'s reason."""
    data = read_file(path)
    found = content_problem(path, data)
    if found and found[0] != "truncated":  # a truncated JPEG often still decodes: let OpenCV try
        raise DecodeError(found[1])
    try:
        return decode_bytes(data)
    except TooLarge:
        raise  # its own reason (the pixel cap) is the one to give
    except DecodeError:
        if found:
            raise DecodeError(found[1]) from None
        fmt = sniff(data[:16]) or "image"
        raise DecodeError(f"corrupt {fmt.upper()}: it cannot be decoded") from None


def resize(image: np.ndarray, height: int, width: int, method: str = "resize") -> np.ndarray:
    """Resize an RGB uint8 image to (height, width) by ``method`` (see module docstring)."""
    h, w = image.shape[:2]
    if method == "center_crop":
        scale = max(height / h, width / w)
        nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
        image = _scale(image, nh, nw)
        top, left = (nh - height) // 2, (nw - width) // 2
        return np.ascontiguousarray(image[top:top + height, left:left + width])
    if method != "resize":
        raise ValueError(f"unknown resize method {method!r}; use one of {RESIZE_METHODS}")
    return _scale(image, height, width)


def _scale(image: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    cv = cv2()
    shrinking = height * width < h * w
    return cv.resize(image, (width, height), interpolation=cv.INTER_AREA if shrinking else cv.INTER_LINEAR)


def load(path: str | Path, height: int, width: int, method: str = "resize") -> np.ndarray:
    """Decode a file and resize it: what every stage feeds a model."""
    return resize(decode(path), height, width, method)
