"""edgetl: a folder of labelled photos to a fast, verified image classifier on the edge.

The public API is imported lazily, so ``import edgetl`` stays light on a device:

    import edgetl
    report = edgetl.audit("photos/")
    run = edgetl.train(data="photos/", epochs=10)
    result = edgetl.export(run.path)
    clf = edgetl.load(result.folder / "model_fp32.tflite")
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "audit": "edgetl.data.audit",
    "AuditOptions": "edgetl.data.audit",
    "load": "edgetl.runtime",
    "Classifier": "edgetl.runtime",
    "TrainConfig": "edgetl.train",
}
# Modules that are also called as functions: edgetl.train(...), edgetl.export(...), edgetl.bench(...), ...
_CALLABLE = ("train", "export", "bench", "evaluate")


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    if name in _CALLABLE:
        return importlib.import_module(f"edgetl.{name}")
    raise AttributeError(f"module 'edgetl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API) + list(_CALLABLE))
