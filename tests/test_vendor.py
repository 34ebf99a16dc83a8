"""The vendored TFLite metadata schema (edgetl/_vendor) against the copy MediaPipe bundles: the same
enums with the same values, so metadata edgetl writes means to MediaPipe what it means to edgetl."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest


def _enums(module) -> dict[str, dict[str, int]]:
    """Every generated enum class (a class of int constants and nothing else) and its values."""
    enums = {}
    for name, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module.__name__:
            continue
        values = {k: v for k, v in vars(cls).items() if not k.startswith("_")}
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values.values()):
            enums[name] = values
    return enums


def test_vendored_schema_enums_match_mediapipes_copy():
    bundled = pytest.importorskip("mediapipe.tasks.metadata.metadata_schema_py_generated")
    from edgetl._vendor import tflite_metadata_schema as vendored

    ours, theirs = _enums(vendored), _enums(bundled)
    assert len(ours) >= 5 and {"AssociatedFileType", "ColorSpaceType", "ContentProperties"} <= set(ours)
    assert ours == theirs


def test_vendored_schema_source_is_beside_it():
    from edgetl import _vendor

    folder = Path(_vendor.__file__).parent
    fbs = (folder / "metadata_schema.fbs").read_text()
    assert "namespace tflite;" in fbs and 'file_identifier "M001";' in fbs
    generated = (folder / "tflite_metadata_schema.py").read_text()
    assert "flatc 2.0.8" in generated.splitlines()[0]
    # Every enum of the source is in the generated module.
    import re

    from edgetl._vendor import tflite_metadata_schema as vendored

    for name in re.findall(r"^enum (\w+)", fbs, re.M):
        assert hasattr(vendored, name), name
