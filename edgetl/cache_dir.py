"""Where edgetl keeps what it can make again (decoded images, the bench runner):
``$EDGETL_CACHE``, else ``~/.cache/edgetl``. Device-safe: standard library only."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder (not created here)."""
    return Path(os.environ.get("EDGETL_CACHE", Path.home() / ".cache" / "edgetl"))
