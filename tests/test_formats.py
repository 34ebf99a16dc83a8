"""The export format registry (edgetl.exporting.formats): entries, plans, shorthands, bad names."""
from __future__ import annotations

import pytest

from helpers.cli import run_cli
from edgetl.errors import EdgetlError
from edgetl.exporting.formats import ALL, FORMATS, Int8Settings, chosen_formats, plan


def test_registry_entries_are_consistent():
    assert len({f.file for f in FORMATS.values()}) == len(FORMATS)
    for name, fmt in FORMATS.items():
        assert fmt.name == name and fmt.kind in ("tflite", "onnx") and fmt.file.endswith("." + fmt.kind)
        assert all(fallback in FORMATS and fallback != name for fallback in fmt.fallbacks), name
    rungs = ("int8_float1", "int8_float3", "int8_mixed")  # the selective-float ladder, in order of speed
    assert FORMATS["int8"].fallbacks == (*rungs, "dynamic", "fp16")
    assert set(ALL) == set(FORMATS) - set(rungs) and all(FORMATS[r].precision == "int8+float" for r in rungs)


def test_plan_and_shorthands():
    assert plan([]) == ["fp32"] and plan(["onnx", "int8"]) == ["fp32", "onnx", "int8"]
    assert chosen_formats([], int8=True, onnx=True) == ["onnx", "onnx_int8", "int8"]
    # the formats made from the calibrated TFLite model come last: their calibration runs meanwhile
    order = list(FORMATS)
    calibrated = [n for n, f in FORMATS.items() if f.kind == "tflite" and f.needs_calibration]
    assert order[-len(calibrated):] == calibrated
    assert chosen_formats(["int8_mixed"], fp16=True) == ["fp16", "int8_mixed"]
    assert chosen_formats([], every=True) == list(ALL)
    assert chosen_formats(["nonsense"]) == ["nonsense"]  # kept, so the check can name it


def test_bad_options_are_one_line_naming_the_choices(tmp_path):
    from edgetl.exporting.pipeline import ExportOptions

    with pytest.raises(EdgetlError, match="unknown format.*'webp'.*choose from fp32, fp16"):
        ExportOptions(formats=["webp"]).check()
    with pytest.raises(EdgetlError, match="--target riscv"):
        ExportOptions(int8=Int8Settings(target="riscv")).check()
    proc = run_cli("export", tmp_path, "--format", "webp")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "unknown format" in lines[0] and "Traceback" not in proc.stderr
