"""Decode and resize a list of images once, in parallel, into a file on disk, and read it back a
batch at a time.

Epochs, a second training run on the same data, calibration and evaluation then read model-sized
uint8 pixels instead of decoding JPEGs again, and no stage holds a whole split in memory: the
file is one ``.npy`` (a header, then N images back to back), written image by image at its offset
by the decoding threads and read with ``pread``. Plain reads rather than a memory map, because
the pages a map touches count in the process's resident set (what ``/usr/bin/time -v`` reports)
until it is unmapped; pages that ``pread`` copies from stay in the kernel's page cache, which the
kernel gives back under pressure.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgetl.cache_dir import cache_root
from edgetl.progress import track
from edgetl.errors import EdgetlError
from edgetl.image import DecodeError, load
from edgetl.runtime.manifest import file_sha256
from edgetl.runtime.spec import PixelSpec

_CACHE_VERSION = "3"


def cache_dir() -> Path:
    """Where decoded images are kept: $EDGETL_CACHE, else ~/.cache/edgetl."""
    return cache_root() / "images"


def decode_workers() -> int:
    """Decoding threads: OpenCV releases the GIL while it decodes and resizes, so threads use every
    core; two per core hide file reads (measured fastest here, see tools/scale_bench.py)."""
    return min(16, (os.cpu_count() or 2) * 2)


def _key(hashes: list[str], pixels: PixelSpec) -> str:
    """Keyed on what the files contain, not on their names or times: a file rewritten with the
    same size and mtime (cp -p, rsync -t, tar x) gets a new key. Of the pixels, what decoding
    uses (size and resize method); mean and std apply later, inside the model."""
    h = hashlib.sha256(f"{_CACHE_VERSION}|{pixels.height}|{pixels.width}|{pixels.resize}".encode())
    for digest in hashes:
        h.update(f"|{digest}".encode())
    return h.hexdigest()[:32]


class ArrayStore:
    """N equal items (images, feature vectors) in a ``.npy`` file, read by index a batch at a time.

    Holds an open file descriptor and nothing else: memory is the batch being read."""

    def __init__(self, fd: int, offset: int, n: int, item_shape: tuple[int, ...], dtype=np.uint8,
                 path: Path | None = None):
        self.fd, self.offset, self.n, self.item_shape, self.path = fd, offset, n, tuple(item_shape), path
        self.dtype = np.dtype(dtype)
        self.item = int(np.prod(self.item_shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple[int, ...]:
        """(N, *item_shape), as the array it stands for."""
        return (self.n, *self.item_shape)

    def read(self, indices: Sequence[int] | np.ndarray | slice | None = None) -> np.ndarray:
        """The items at ``indices`` (a slice, a list of positions, or every item) as one array."""
        if indices is None:
            indices = slice(None)
        if isinstance(indices, slice):
            start, stop, step = indices.indices(self.n)
            if step == 1:  # one contiguous read
                out = np.empty((max(stop - start, 0), *self.item_shape), self.dtype)
                self._pread(out, start)
                return out
            indices = range(start, stop, step)
        idx = np.asarray(indices, np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"index out of range 0..{self.n - 1}")
        out = np.empty((len(idx), *self.item_shape), self.dtype)
        for j, i in enumerate(idx):
            self._pread(out[j:j + 1], int(i))
        return out

    def __getitem__(self, indices) -> np.ndarray:
        return self.read(indices)

    def _pread(self, out: np.ndarray, first: int) -> None:
        view = memoryview(out).cast("B")
        pos, done = self.offset + first * self.item, 0
        while done < len(view):
            got = os.preadv(self.fd, [view[done:]], pos + done)
            if got <= 0:
                raise EdgetlError("the cache file is shorter than its header says", path=self.path,
                                  fix="delete it (it is rebuilt from the images)")
            done += got

    def write(self, start: int, items: np.ndarray) -> None:
        """Put ``items`` at positions start, start+1, ... (the store must have been opened writable)."""
        data = memoryview(np.ascontiguousarray(items, self.dtype)).cast("B")
        pos, done = self.offset + start * self.item, 0
        while done < len(data):
            done += os.pwrite(self.fd, data[done:], pos + done)

    def batches(self, size: int, order: Sequence[int] | np.ndarray | None = None) -> Iterator[np.ndarray]:
        """The items ``size`` at a time, in ``order`` (positions) or as stored."""
        if order is None:
            for start in range(0, self.n, size):
                yield self.read(slice(start, start + size))
        else:
            for start in range(0, len(order), size):
                yield self.read(order[start:start + size])

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "ArrayStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def temporary_store(n: int, item_shape: tuple[int, ...], dtype, folder: str | Path | None = None) -> ArrayStore:
    """A writable store in an unnamed file (removed from the folder at once; the space is freed
    when the store is closed): stage 1's features, an uncached decode."""
    header = _header((n, *item_shape), np.dtype(dtype))
    fd, tmp = tempfile.mkstemp(prefix=".edgetl-", suffix=".npy", dir=folder)
    os.unlink(tmp)
    try:
        os.write(fd, header)
        os.ftruncate(fd, len(header) + n * int(np.prod(item_shape)) * np.dtype(dtype).itemsize)
    except BaseException:
        os.close(fd)
        raise
    return ArrayStore(fd, len(header), n, item_shape, dtype)


def _header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The .npy header of an array of this shape and dtype, padded as numpy pads it."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


def _open_valid(file: Path, n: int, height: int, width: int) -> ArrayStore | None:
    """The cached store when its header and size are what this key promises, else None (and the
    file removed: a crash mid-write cannot leave one, but a damaged disk or a hand edit can)."""
    try:
        fd = os.open(file, os.O_RDONLY)
    except OSError:
        return None
    try:
        with os.fdopen(os.dup(fd), "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
        good = (dtype == np.uint8 and not fortran and shape == (n, height, width, 3)
                and os.fstat(fd).st_size == offset + n * height * width * 3)
    except (OSError, ValueError):
        good = False
    if good:
        return ArrayStore(fd, offset, n, (height, width, 3), np.uint8, file)
    os.close(fd)
    file.unlink(missing_ok=True)
    return None


def _decoded(path: str, height: int, width: int, method: str) -> np.ndarray:
    try:
        return load(path, height, width, method)
    except DecodeError as e:  # the file changed since the audit, or was never checked
        raise EdgetlError(f"cannot decode this image ({e})", path=path,
                          fix="run `edgetl data check` on the folder and fix or remove the file") from None


def _decode_each(paths: list[str], height: int, width: int, method: str, put: Callable[[int, np.ndarray], None],
                 quiet: bool) -> None:
    """Decode every file on all cores, handing image i to ``put(i, pixels)`` from its thread."""
    with ThreadPoolExecutor(decode_workers()) as pool:
        jobs = pool.map(lambda i: put(i, _decoded(paths[i], height, width, method)), range(len(paths)))
        for _ in jobs if quiet else track(jobs, f"Decoding {len(paths)} images", total=len(paths)):
            pass


def _decode_into(store: ArrayStore, paths: list[str], method: str, quiet: bool) -> None:
    """Decode every file into its place in the store."""
    height, width = store.item_shape[:2]
    _decode_each(paths, height, width, method, lambda i, pixels: store.write(i, pixels[None]), quiet)


def sweep_stale(folder: Path) -> None:
    """Remove cache files a killed build left (``.images-*.npy.tmp``, up to 1.5 GB per 10,000
    photos): each is locked while it is written, so one whose lock can be taken is abandoned."""
    for tmp in folder.glob(".images-*.npy.tmp"):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a build in another process is writing it
        finally:
            os.close(fd)


def _build(file: Path, paths: list[str], pixels: PixelSpec, quiet: bool) -> ArrayStore:
    """Decode into ``file``, written under a temporary name and renamed when complete."""
    file.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(file.parent)
    shape, dtype = (len(paths), pixels.height, pixels.width, 3), np.dtype(np.uint8)
    header = _header(shape, dtype)
    fd, tmp = tempfile.mkstemp(prefix=".images-", suffix=".npy.tmp", dir=file.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held while writing: a sweep in another process leaves it alone
    store = ArrayStore(fd, len(header), len(paths), shape[1:], dtype, file)
    try:
        os.write(fd, header)
        os.ftruncate(fd, len(header) + len(paths) * store.item)
        _decode_into(store, paths, pixels.resize, quiet)
        os.replace(tmp, file)
    except BaseException:
        store.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    return store


def open_images(paths: list[str], pixels: PixelSpec, use_cache: bool = True, hashes: list[str] | None = None,
                quiet: bool = False) -> ArrayStore:
    """The images at ``paths`` at the model's size, as a store on disk read a batch at a time.

    From the disk cache when files of the same content (``hashes``, the audit's sha256 of each
    file; computed when not given) were decoded at the same size before; otherwise decoded once on
    every core. ``use_cache=False`` decodes into a temporary file that goes with the store."""
    if not use_cache:
        store = temporary_store(len(paths), (pixels.height, pixels.width, 3), np.uint8)
        try:
            _decode_into(store, paths, pixels.resize, quiet)
        except BaseException:
            store.close()
            raise
        return store
    hashes = hashes if hashes is not None else [file_sha256(p) for p in paths]
    file = cache_dir() / f"{_key(hashes, pixels)}.npy"
    return _open_valid(file, len(paths), pixels.height, pixels.width) or _build(file, paths, pixels, quiet)


def load_images(paths: list[str], pixels: PixelSpec, use_cache: bool = True,
                hashes: list[str] | None = None) -> np.ndarray:
    """A short list of images (a calibration set, a test's handful) as one (N, H, W, 3) uint8
    array. Anything the size of a dataset goes through :func:`open_images` instead."""
    with open_images(paths, pixels, use_cache, hashes, quiet=True) as store:
        return store.read()


def decode_all(paths: list[str], pixels: PixelSpec, quiet: bool = False) -> np.ndarray:
    """Decode a batch of files to (N, H, W, 3) uint8 in memory on every core, without the cache
    (evaluation's batches, a handful of files)."""
    out = np.empty((len(paths), pixels.height, pixels.width, 3), np.uint8)
    _decode_each(paths, pixels.height, pixels.width, pixels.resize, out.__setitem__, quiet)
    return out
