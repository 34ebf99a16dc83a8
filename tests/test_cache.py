"""The on-disk image cache: what a killed build leaves is swept, what another process writes is not."""
from __future__ import annotations

import fcntl
import os

from helpers.images import make_shapes


def test_a_killed_builds_temporary_file_is_swept_and_a_live_one_kept(tmp_path, monkeypatch):
    from edgetl.data.cache import cache_dir, open_images
    from edgetl.runtime.spec import PixelSpec

    monkeypatch.setenv("EDGETL_CACHE", str(tmp_path / "cache"))
    folder = cache_dir()
    folder.mkdir(parents=True)
    dead = folder / ".images-dead.npy.tmp"  # a build killed with -9: its lock died with it
    dead.write_bytes(b"\0" * 4096)
    live = folder / ".images-live.npy.tmp"  # a build still running in another process: locked
    live.write_bytes(b"\0" * 4096)
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        data = make_shapes(tmp_path / "d", classes=("a",), per_class=3, size=40)
        paths = sorted(str(p) for p in data.rglob("*.jpg"))
        with open_images(paths, PixelSpec(16, 16), quiet=True) as store:
            assert len(store) == 3
        assert not dead.exists() and live.exists()
    finally:
        os.close(fd)
