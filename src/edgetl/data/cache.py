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
from edgetl.errors import EdgetlError
from edgetl.image import DecodeError, load

_CACHE_VERSION = "2"


def cache_dir() -> Path:
    """Where decoded images are kept: $EDGETL_CACHE, else ~/.cache/edgetl."""
    return Path(os.environ.get("EDGETL_CACHE", Path.home() / ".cache" / "edgetl")) / "images"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's content, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _key(hashes: list[str], height: int, width: int, method: str) -> str:
    """Keyed on what the files contain, not on their names or times: a file rewritten with the
    same size and mtime (cp -p, rsync -t, tar x) gets a new key."""
    h = hashlib.sha256(f"{_CACHE_VERSION}|{height}|{width}|{method}".encode())
    for digest in hashes:
        h.update(f"|{digest}".encode())
    return h.hexdigest()[:32]


def _cached(file: Path, n: int, height: int, width: int) -> np.ndarray | None:
    """The cached array when it is what this key promises, else None (and the file removed)."""
    try:
        images = np.load(file, allow_pickle=False)
    except (OSError, ValueError):
        images = None
    if images is not None and images.dtype == np.uint8 and images.shape == (n, height, width, 3):
        return images
    file.unlink(missing_ok=True)
    return None


def decode_all(paths: list[str], height: int, width: int, method: str = "resize",
               workers: int | None = None, quiet: bool = False) -> np.ndarray:
    """Decode and resize every file to an (N, height, width, 3) uint8 array, in parallel threads
    (OpenCV releases the GIL while decoding); ``quiet`` leaves out the progress bar (for callers
    that show their own)."""
    out = np.empty((len(paths), height, width, 3), np.uint8)

    def work(i: int) -> None:
        try:
            out[i] = load(paths[i], height, width, method)
        except DecodeError as e:  # the file changed since the audit, or was never checked
            raise EdgetlError(f"cannot decode this image ({e})", path=paths[i],
                              fix="run `edgetl data check` on the folder and fix or remove the file") from None

    with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 2) * 2)) as pool:
        jobs = pool.map(work, range(len(paths)))
        for _ in jobs if quiet else track(jobs, f"Decoding {len(paths)} images", total=len(paths)):
            pass
    return out


def load_images(paths: list[str], height: int, width: int, method: str = "resize",
                use_cache: bool = True, hashes: list[str] | None = None) -> np.ndarray:
    """The images at ``paths`` as (N, H, W, 3) uint8, from the disk cache when files of the same
    content (``hashes``, the audit's sha256 of each file; computed when not given) were decoded at
    the same size before."""
    if not use_cache:
        return decode_all(paths, height, width, method)
    hashes = hashes if hashes is not None else [file_sha256(p) for p in paths]
    file = cache_dir() / f"{_key(hashes, height, width, method)}.npy"
    if file.exists():
        images = _cached(file, len(paths), height, width)
        if images is not None:
            return images
    images = decode_all(paths, height, width, method)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, images)
    os.replace(tmp, file)
    return images
