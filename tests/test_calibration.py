"""`edgetl calibrate` (issue 40): the "unknown" rule chosen again without retraining, its one
constant rewritten in model.keras and in every exported file (TFLite fp32 and int8, ONNX fp32 and
int8 here), the manifests and the golden answers with it, and the artifacts verified again.

Real parts: the shapes run trained from scratch, exported by the real converters; the files are
read back by LiteRT and ONNX Runtime. Bad input is one line."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from helpers.cli import one_error, run_cli


@pytest.fixture
def run_copy(shapes_export, tmp_path):
    """A copy of the shared shapes run with its export (calibrate rewrites what it is given)."""
    copy = tmp_path / "run"
    shutil.copytree(shapes_export.folder.parent, copy)
    return copy


def _scores(path, pixels):
    from edgetl.runtime import load

    clf = load(path)
    return clf.probabilities(clf.infer(clf.to_input(pixels))), clf


@pytest.mark.slow
def test_calibrate_rewrites_the_rule_everywhere_and_verifies(run_copy):
    from edgetl.runs import RunFolder
    from edgetl.runtime.unknown_rule import SHARPNESS

    folder = RunFolder(run_copy)
    before = folder.read_manifest().confidence.feature_rule
    assert before is not None and before.answer_rate == 0.95
    pixels = np.load(folder.export.path / "golden.npy")
    old_fp32, _ = _scores(folder.export.path / "model_fp32.tflite", pixels)
    proc = run_cli("calibrate", run_copy, "--answer-rate", "0.6", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    after = folder.read_manifest().confidence.feature_rule
    assert out["ok"] and after.answer_rate == 0.6 and after.threshold > before.threshold
    assert 0.6 <= after.answered < 0.7 and after.class_images == before.class_images
    assert out["checks"] and all(c["kept"] for c in out["checks"])
    # Keras's gate carries the new threshold ...
    import keras

    model = keras.saving.load_model(str(folder.model), compile=False)
    assert model.get_layer("unknown_gate").get_weights()[1][0] == pytest.approx(-SHARPNESS * after.threshold, rel=1e-6)
    keras_scores = np.asarray(model.predict_on_batch(pixels.astype(np.float32)))
    # ... and every file computes what it does now (fp32 to 1e-4; the int8 files within their
    # own step), with the new rule in its embedded manifest; the golden answers were replayed.
    for name, tol in (("model_fp32.tflite", 1e-4), ("model.onnx", 1e-4), ("model_int8.tflite", 0.2),
                      ("model_int8.onnx", 0.2)):
        scores, clf = _scores(folder.export.path / name, pixels)
        assert np.abs(scores - keras_scores).max() < tol, name
        assert clf.manifest.confidence.feature_rule.threshold == pytest.approx(after.threshold), name
        assert run_cli("verify", folder.export.path / name).returncode == 0, name
    new_fp32, _ = _scores(folder.export.path / "model_fp32.tflite", pixels)
    assert not np.allclose(new_fp32, old_fp32, atol=1e-6)  # the constant did change in the file
    assert run_cli("verify", run_copy).returncode == 0  # the export manifest's hashes are the new files'
    assert "the \"unknown\" rule chosen again" not in proc.stderr  # --json: the summary is the JSON


def test_bad_answer_rates_are_one_line(tmp_path):
    for rate in ("0", "1.5"):
        line = one_error(run_cli("calibrate", tmp_path, "--answer-rate", rate))
        assert f"--answer-rate {rate}" in line and "is not a share of the images" in line


@pytest.mark.slow
def test_a_run_without_the_rule_says_what_is_missing(run_copy):
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["confidence"].pop("feature_rule", None)
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    line = one_error(run_cli("calibrate", run_copy))
    assert "carries no \"unknown\" rule to choose again" in line and str(run_copy) in line
