"""Decode and resize a list of images once, in parallel, and keep the result on disk.

Epochs, the second training run on the same data, calibration and evaluation then read one
uint8 array instead of decoding JPEGs again.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgetl.console import track
from edgetl.runtime.preprocess import load

_CACHE_VERSION = "1"


def cache_dir() -> Path:
    """Where decoded images are kept: $EDGETL_CACHE, else ~/.cache/edgetl."""
    return Path(os.environ.get("EDGETL_CACHE", Path.home() / ".cache" / "edgetl")) / "images"


def _key(paths: list[str], height: int, width: int, method: str) -> str:
    h = hashlib.sha256(f"{_CACHE_VERSION}|{height}|{width}|{method}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"|{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def decode_all(paths: list[str], height: int, width: int, method: str = "resize",
               workers: int | None = None) -> np.ndarray:
    """Decode and resize every file to an (N, height, width, 3) uint8 array, in parallel threads
    (OpenCV releases the GIL while decoding)."""
    out = np.empty((len(paths), height, width, 3), np.uint8)

    def work(i: int) -> None:
        out[i] = load(paths[i], height, width, method)

    with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 2) * 2)) as pool:
        for _ in track(pool.map(work, range(len(paths))), f"Decoding {len(paths)} images", total=len(paths)):
            pass
    return out


def load_images(paths: list[str], height: int, width: int, method: str = "resize",
                use_cache: bool = True) -> np.ndarray:
    """The images at ``paths`` as (N, H, W, 3) uint8, from the disk cache when the same files
    (path, size, mtime) were decoded at the same size before."""
    if not use_cache:
        return decode_all(paths, height, width, method)
    file = cache_dir() / f"{_key(paths, height, width, method)}.npy"
    if file.exists():
        try:
            return np.load(file)
        except (OSError, ValueError):
            file.unlink(missing_ok=True)
    images = decode_all(paths, height, width, method)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, images)
    os.replace(tmp, file)
    return images
