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
import io
import os
import sys
from collections.abc import Iterator
from types import ModuleType

DEBUG_ENV = "EDGETL_DEBUG"


def debugging() -> bool:
    """True when the user asked to see everything (``edgetl --debug`` sets EDGETL_DEBUG=1)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextlib.contextmanager
def discarded(fd: int) -> Iterator[None]:
    """Point file descriptor ``fd`` (1 or 2) at /dev/null for the duration, so that what native
    code writes to it directly is discarded too; restored afterwards. (The descriptor, not
    ``sys.stdout.fileno()``: test runners and notebooks replace the Python streams.)"""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Discard what converters print on stdout, from Python or C++ (stdout keeps only results,
    such as --json); errors still reach stderr."""
    with discarded(1), contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Discard what native code writes to stderr for the duration (not under --debug). Keep the
    block short: Python's own stderr goes there too meanwhile."""
    if debugging():
        yield
        return
    with discarded(2):
        yield


def quiet_import(name: str) -> ModuleType:
    """Import a module whose native libraries log while loading (tensorflow, keras), quietly; and
    TensorFlow's Python logger at errors only (its deprecation notices, tf2onnx's and the
    converters', are not the user's business), unless under --debug."""
    if name in sys.modules:
        return sys.modules[name]
    if not debugging():
        # What TensorFlow's C++ logger still honours. 3 hides its error-level lines too: it prints
        # notices there, such as "oneDNN supports DT_BOOL only on platforms with AVX-512. Falling back
        # to the default Eigen-based implementation" in every training on some CPUs (an AMD EPYC
        # with AVX-512 here); what really fails reaches the user as a Python exception.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    first = "tensorflow" not in sys.modules
    with silenced():
        module = importlib.import_module(name)
    # (keras imports TensorFlow too; a program that imported it first keeps its own logger level)
    if first and "tensorflow" in sys.modules and not debugging():
        sys.modules["tensorflow"].get_logger().setLevel("ERROR")
    return module
