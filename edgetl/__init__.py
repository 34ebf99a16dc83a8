"""edgetl: a folder of labelled photos to a fast, verified image classifier on the edge.

The public API is imported lazily, so ``import edgetl`` stays light on a device:

    import edgetl
    report = edgetl.audit("photos/")
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
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'edgetl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
