"""`edgetl demo` (issue 45): the whole path, as a new user runs it, passes on whatever CPU runs it.

The demo trains from scratch (no ImageNet weights offline), and training is not bit-exact across
CPUs, so the test asserts what the demo guarantees rather than one machine's figures: Keras at
0.97 or more on the held-out images, every artifact passed by its gate (no "not proven"), top-1
agreement with Keras of 99 % or more. How long it takes is a figure of the benchmarks, not a
verdict here (a busy machine only takes longer)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_cli


@pytest.mark.slow
def test_the_demo_passes_with_margin(tmp_path):
    proc = run_cli("demo", "--project", tmp_path, "--json", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    assert s["keras_accuracy"] >= 0.97, s["keras_accuracy"]
    verdicts = {Path(a["file"]).name: (a["verdict"], a["agreement"]) for a in s["artifacts"]}
    assert set(verdicts) == {"model_fp32.tflite", "model_fp16.tflite", "model_dynamic.tflite", "model.onnx",
                             "model_int8.onnx", "model_int8.tflite"}
    assert all(v == "passed" and agreement >= 0.99 for v, agreement in verdicts.values()), verdicts
    assert all(a["kept"] and a["p50_ms"] for a in s["artifacts"])
    # every other step happened: the drawn data, the run's page, a live run over the held-out video
    assert {p.name for p in (tmp_path / "demo-data").iterdir() if not p.name.startswith(".")} == {"ball", "box", "cone"}
    run = Path(s["run"])
    assert run.name == "demo" and (run / "demo_summary.json").exists() and (run / "report.html").exists()
    assert s["live"]["frames"] > 0 and s["live"]["model"] == "model_int8.tflite"
    assert "[2/6] train: MobileNetV2 (alpha 0.5, 96 px) from scratch" in proc.stderr
    for banner in ("absl::InitializeLog", "oneDNN custom operations", "XNNPACK delegate", "Downloading data from"):
        assert banner not in proc.stderr, banner
