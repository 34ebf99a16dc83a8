"""`edgetl doctor` on this machine: versions, runtimes, weights, OpenCV, conflicts and notes."""
from __future__ import annotations

import json

from helpers.cli import run_cli


def test_doctor_calls_the_old_runtime_optional():
    proc = run_cli("doctor")
    assert "tflite-runtime: missing" not in proc.stdout
    assert "tflite-runtime: not installed (optional" in proc.stdout or "tflite-runtime: loads" in proc.stdout


def test_doctor_notes_side_by_side_opencv_wheels():
    from edgetl.doctor import _notes, _versions

    v = _versions()
    proc = run_cli("doctor")
    if v["opencv-python-headless"] and v["opencv-contrib-python"] and v["opencv-python-headless"] == v["opencv-contrib-python"]:
        assert "note: opencv-python-headless and opencv-contrib-python are both installed" in proc.stdout
    fake = dict(v, **{"opencv-python-headless": "5.0", "opencv-contrib-python": "5.0", "opencv-python": None})
    assert any("mediapipe" in n for n in _notes(fake))


def test_doctor_reports_versions_runtimes_and_weights_and_its_json_is_the_typed_diagnosis():
    from edgetl.doctor import Diagnosis, OpenCvCheck, RuntimeCheck, TensorflowCheck, WeightsCheck, diagnose

    proc = run_cli("doctor", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    d = json.loads(proc.stdout)
    assert d["versions"]["numpy"] and d["runtimes"]["ai-edge-litert"]["loads"]
    assert "CPUExecutionProvider" in d["runtimes"]["onnxruntime"]["providers"]
    assert set(d["imagenet_weights"]) >= {"mobilenet_v2", "efficientnet_b0", "cache_dir"}
    assert d["tensorflow"]["installed"] and isinstance(d["tensorflow"]["gpus"], list)
    assert isinstance(d["opencv"]["cameras"], list) and isinstance(d["conflicts"], list)
    assert (proc.returncode == 1) == bool(d["conflicts"])
    # The README's install (`pip install -e ".[dev]"`, what CI runs) is consistent: mediapipe's
    # opencv-contrib-python once came in a newer version than the headless wheel, a conflict.
    assert not d["conflicts"], d["conflicts"]
    typed = diagnose()
    assert isinstance(typed, Diagnosis) and all(isinstance(r, RuntimeCheck) for r in typed.runtimes.values())
    assert (type(typed.tensorflow), type(typed.imagenet_weights), type(typed.opencv)) == (TensorflowCheck, WeightsCheck,
                                                                                           OpenCvCheck)
    assert typed.to_dict() == d  # the --json output is the typed object's, field for field
