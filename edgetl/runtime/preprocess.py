"""The one image path shared by training, calibration, evaluation and every runtime.

numpy and OpenCV only: this module runs on the device.

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
from pathlib import Path

import numpy as np

RESIZE_METHODS = ("resize", "center_crop")
IMAGE_EXTENSIONS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".bmp": "bmp", ".gif": "gif", ".webp": "webp"}
"""File extensions edgetl reads, and the format each names."""


@functools.cache
def _cv2():
    """OpenCV, imported on first use: a benchmark runner on a device needs only numpy and a runtime."""
    import cv2

    try:  # edgetl reports undecodable files itself; OpenCV's own log lines would only add noise
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:
        pass
    return cv2


class DecodeError(ValueError):
    """The bytes are not an image OpenCV can decode."""


def decode_bytes(data: bytes | np.ndarray) -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 array of shape (H, W, 3)."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise DecodeError("empty file")
    cv2 = _cv2()
    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)
    if rgb_flag is not None:
        img = cv2.imdecode(buf, rgb_flag)
    else:  # OpenCV < 4.11
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is not None:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img is None:
        raise DecodeError("OpenCV could not decode it")
    return img


def decode(path: str | Path) -> np.ndarray:
    """Read and decode an image file to RGB uint8 (H, W, 3)."""
    return decode_bytes(np.fromfile(str(path), dtype=np.uint8))


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
    cv2 = _cv2()
    shrinking = height * width < h * w
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def load(path: str | Path, height: int, width: int, method: str = "resize") -> np.ndarray:
    """Decode a file and resize it: what every stage feeds a model."""
    return resize(decode(path), height, width, method)
