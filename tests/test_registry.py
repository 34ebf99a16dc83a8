"""A backbone is one registry entry: MobileNetV3Small added as such, trained, exported to every
format and verified, with no other change anywhere."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli


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
    assert all(c["passed"] for c in doc["checks"])
    fp32 = next(c for c in doc["checks"] if c["file"] == "model_fp32.tflite")
    assert fp32["agreement"] == 1.0 and fp32["max_prob_diff"] < 1e-4  # the float file computes what Keras does
    for name in ("model_int8.tflite", "model.onnx"):
        assert run_cli("verify", tmp_path / "run" / "export" / name).returncode == 0
