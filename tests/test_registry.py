"""Registries: a second entry under a name already taken is refused (a dict literal would keep
the last silently, so a plug-in or a copy-paste could replace a runtime, a backbone or a format
unseen); and a backbone is one registry entry: MobileNetV3Small added as such, trained, exported
to every format and verified, with no other change anywhere."""
from __future__ import annotations

import json

import pytest

from helpers.cli import run_cli
from edgetl.registry import Registry


@pytest.mark.slow
def test_mobilenet_v3_small_end_to_end(shapes_data, tmp_path):
    from edgetl.models.backbones import BACKBONES

    assert "mobilenet_v3_small" in BACKBONES
    proc = run_cli("train", shapes_data, "--backbone", "mobilenet_v3_small", "--weights", "none", "--size", "48",
                   "--epochs", "3", "--fine-tune-epochs", "0", "--no-augment", "--out", tmp_path / "run", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["backbone"] == "mobilenet_v3_small"
    proc = run_cli("export", tmp_path / "run", "--all", "--max-drop", "100", "--min-agreement", "0", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert {c["file"] for c in doc["checks"]} == {"model_fp32.tflite", "model_fp16.tflite", "model_dynamic.tflite",
                                                 "model_int8.tflite", "model.onnx", "model_int8.onnx"}
    assert all(c["kept"] for c in doc["checks"])
    fp32 = next(c for c in doc["checks"] if c["file"] == "model_fp32.tflite")
    assert fp32["agreement"] == 1.0 and fp32["max_prob_diff"] < 1e-4  # the float file computes what Keras does
    for name in ("model_int8.tflite", "model.onnx"):
        assert run_cli("verify", tmp_path / "run" / "export" / name).returncode == 0


def test_a_second_entry_with_the_same_name_is_refused():
    reg = Registry("bench target", [("local", 1)])
    with pytest.raises(ValueError, match="a bench target named 'local' is registered already"):
        reg.register("local", 2)
    assert reg["local"] == 1 and list(reg) == ["local"] and len(reg) == 1
    with pytest.raises(ValueError):
        Registry("backbone", [("a", 1), ("a", 2)])


def test_every_registry_of_edgetl_is_one():
    from edgetl.benchmark.targets import TARGETS
    from edgetl.exporting.background import PRODUCTS
    from edgetl.exporting.formats import FORMATS
    from edgetl.exporting.onnx import INT8_TARGETS
    from edgetl.live.sources import SOURCES
    from edgetl.models.backbones import BACKBONES
    from edgetl.runtime.classifier import BACKENDS

    for reg in (TARGETS, PRODUCTS, FORMATS, INT8_TARGETS, SOURCES, BACKBONES, BACKENDS):
        assert isinstance(reg, Registry) and len(reg) >= 2, reg
    with pytest.raises(ValueError, match="backbone named 'mobilenet_v2'"):
        BACKBONES.register("mobilenet_v2", BACKBONES["mobilenet_v2"])
    assert list(FORMATS)[:6] == ["fp32", "fp16", "dynamic", "onnx", "onnx_int8", "int8"]  # the order they are made
