"""A self-contained benchmark runner for devices without edgetl: a zipapp of edgetl's device side
(runtime + bench harness) and the pure-Python flatbuffers package. Needs numpy and a TFLite or ONNX
runtime on the device."""
from __future__ import annotations

import importlib.util
import os
import tempfile
import zipfile
from pathlib import Path

import edgetl
from edgetl.cache_dir import cache_root

_MAIN = '''import json, sys
try:
    from edgetl.benchmark.runner import main
except ImportError as e:
    print(json.dumps({"error": f"the device lacks the Python package {e.name!r}: "
                               "pip install numpy and ai-edge-litert (or tflite-runtime, onnxruntime)"}))
    sys.exit(2)
sys.exit(main())
'''
_MODULES = ("__init__.py", "_vendor", "errors.py", "image.py", "native_logs.py", "doctor.py", "versions.py", "text.py",
            "registry.py", "atomic.py",
            "runtime",
            "benchmark/__init__.py", "benchmark/harness.py", "benchmark/device.py", "benchmark/runner.py")


def build(path: str | Path | None = None) -> Path:
    """Write the runner (default: a cached file per edgetl version) and return its path."""
    root = Path(edgetl.__file__).parent
    if path is None:
        cache = cache_root()
        cache.mkdir(parents=True, exist_ok=True)
        path = cache / f"edgetl-bench-runner-{edgetl.__version__}.pyz"
    path = Path(path)
    flatbuffers_dir = Path(importlib.util.find_spec("flatbuffers").origin).parent
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".pyz.tmp")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__main__.py", _MAIN)
        for item in _MODULES:
            src = root / item
            files = sorted(src.rglob("*.py")) if src.is_dir() else [src]
            for f in files:
                z.write(f, f"edgetl/{f.relative_to(root)}")
        for f in sorted(flatbuffers_dir.rglob("*.py")):
            z.write(f, f"flatbuffers/{f.relative_to(flatbuffers_dir)}")
    os.replace(tmp, path)
    return path
