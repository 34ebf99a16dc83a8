"""C++ log lines from TensorFlow and LiteRT ("All log messages before absl::InitializeLog()...",
"oneDNN custom operations are on...", "Created TensorFlow Lite XNNPACK delegate for CPU.") are
printed straight to file descriptor 2 while libraries load or build their graphs; no environment
variable of TF 2.21 turns them off. edgetl silences that descriptor around exactly those calls,
and leaves everything alone under ``--debug`` (``EDGETL_DEBUG=1``). Numerics and speed are
untouched (oneDNN stays on).

Standard library only: runs on the device."""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

DEBUG_ENV = "EDGETL_DEBUG"


def debugging() -> bool:
    """True when the user asked to see everything (``edgetl --debug`` sets EDGETL_DEBUG=1)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Send what native code writes to stderr to /dev/null for the duration (not under --debug).
    Keep the block short: Python's own stderr goes there too meanwhile."""
    if debugging():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_import(name: str) -> ModuleType:
    """Import a module whose native libraries log while loading (tensorflow, keras), quietly."""
    if name in sys.modules:
        return sys.modules[name]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # what TF's own logger still honours
    with silenced():
        return importlib.import_module(name)
