"""The golden check: export keeps a golden set; `edgetl verify MODEL` replays it here, over SSH on
a real sshd, and (in test_arm64) on the emulated Pi; a model altered after export is caught."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from helpers.cli import run_cli
from helpers.fake_device import fake_device_python
from helpers.tflite_files import alter_weights


@pytest.fixture
def export_copy(shapes_export, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(shapes_export.folder, folder)
    return folder


@pytest.mark.slow
def test_export_keeps_a_golden_set_and_verify_replays_it(export_copy):
    manifest = json.loads((export_copy / "manifest.json").read_text())
    gold = manifest["golden"]
    pixels = np.load(export_copy / gold["file"])
    assert pixels.dtype == np.uint8 and pixels.shape[1:] == (48, 48, 3) and len(pixels) == len(gold["images"]) == 8
    kept = {p.name for p in export_copy.iterdir() if p.suffix in (".tflite", ".onnx")}
    assert set(gold["expected"]) == kept
    for name in sorted(kept):
        proc = run_cli("verify", export_copy / name, "--json")
        doc = json.loads(proc.stdout)
        assert proc.returncode == 0 and doc["ok"] and len(doc["checks"][0]["results"]) == 8, (name, proc.stderr)


@pytest.mark.slow
def test_a_model_altered_after_export_is_caught(export_copy):
    model = export_copy / "model_int8.tflite"
    alter_weights(model)
    proc = run_cli("verify", model)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "modified since export" in proc.stderr
    assert "at export" in proc.stdout and ", now " in proc.stdout and ".jpg" in proc.stdout  # names the image


@pytest.mark.slow
@pytest.mark.ssh
def test_golden_check_on_a_device_over_ssh(export_copy, ssh_server, tmp_path):
    device_python = fake_device_python(tmp_path / "dev")
    common = ["--host", "mypi", "--ssh-config", ssh_server.config, "--remote-python", device_python, "--json"]
    proc = run_cli("verify", export_copy / "model_int8.tflite", *common)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["ok"], proc.stderr[-2000:]
    assert doc["checks"][0]["where"] == "ssh:mypi" and doc["checks"][0]["device"]["cores"] >= 1
    alter_weights(export_copy / "model_int8.tflite")
    proc = run_cli("verify", export_copy / "model_int8.tflite", *common)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and not doc["ok"] and doc["modified_since_export"]
    assert not doc["checks"][0]["ok"]  # the device itself answered differently


def test_verify_model_without_golden_set_says_where_it_comes_from(tmp_path):
    from helpers.models import keras_mean_colour, to_tflite

    model = to_tflite(keras_mean_colour(), tmp_path / "m.tflite")
    proc = run_cli("verify", model)
    assert proc.returncode == 2 and "no golden set beside the model" in proc.stderr


@pytest.mark.slow
def test_a_device_that_answers_nothing_or_too_little_fails_the_golden_check(export_copy):
    """`"probabilities": []` once passed as "0 of 0 golden images"; fewer, more or malformed answers
    than golden images fail every image they leave unchecked."""
    from edgetl.runtime.golden import Golden

    gold = Golden.beside(export_copy / "model_int8.tflite")
    n = len(gold.names)
    assert n >= 1 and all(r.ok for r in gold.compare(gold.probabilities))
    for got in ([], gold.probabilities[:1], "junk", [[None]], np.vstack([gold.probabilities, gold.probabilities[:1]])):
        results = gold.compare(got)
        assert len(results) >= n and not all(r.ok for r in results), got


def test_golden_images_are_picked_clear_of_the_unknown_rules_threshold():
    """Images whose scores the rule's steep gate scaled come last: another CPU's rounding moves
    such an image's scores beyond any tolerance, and the check is about the model, not the boundary."""
    from edgetl.runtime.golden import pick

    labels = np.array([0, 0, 0, 1, 1, 1])
    clear = np.array([False, True, True, False, False, True])
    assert pick(labels, 4, clear) == [1, 5, 2, 3]  # each class's clear images first, the classes taking turns
    assert pick(labels, 4) == [0, 3, 1, 4]
