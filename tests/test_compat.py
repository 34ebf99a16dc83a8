"""Will it run there? Models record the oldest runtime that runs them, and an old runtime gets the
right diagnosis: tested with tflite-runtime 2.14 from PyPI, the release many Pi guides install,
in a virtual environment of its own (numpy 1.x, no TensorFlow, edgetl's device side from the clone)."""
from __future__ import annotations

import json
import subprocess
import venv

import numpy as np
import pytest

from helpers.shared import ROOT
from helpers.models import colour_images

PROBE = """
import json, sys
import numpy as np
from edgetl.errors import EdgetlError
from edgetl.runtime import load
out = {}
for name in sys.argv[1:]:
    try:
        clf = load(name)
        x = clf.to_input(np.load(sys.argv[1].rsplit("/", 1)[0] + "/images.npy"))
        out[name] = {"runtime": clf.runtime, "top1": [int(clf.probabilities(clf.infer(x[i:i + 1]))[0].argmax())
                                                      for i in range(len(x))]}
    except EdgetlError as e:
        out[name] = {"error": str(e)}
print(json.dumps(out))
"""


def old_runtime_python(env_dir, numpy: str) -> str:
    """A virtual environment with tflite-runtime 2.14 from PyPI, ``numpy`` as given, and flatbuffers."""
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    pip = subprocess.run([py, "-m", "pip", "install", "-q", "tflite-runtime==2.14.0", numpy, "flatbuffers"],
                         capture_output=True, text=True, timeout=600)
    if pip.returncode != 0 and "No matching distribution" in pip.stderr + pip.stdout:
        pytest.skip(f"tflite-runtime 2.14 cannot be installed here: {pip.stderr.strip().splitlines()[-1]}")
    assert pip.returncode == 0, pip.stderr[-2000:]
    return py


def probe(py: str, *models) -> subprocess.CompletedProcess:
    """Run PROBE on ``models`` in that environment, with edgetl's device side from the clone."""
    return subprocess.run([py, "-c", PROBE, *map(str, models)], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def _models(tmp_path):
    """A dynamic-range model (FULLY_CONNECTED version 12: needs 2.17) and a full-integer one (1.14)."""
    import keras
    import tensorflow as tf

    images, labels = colour_images(size=16)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inp, dense(keras.layers.Flatten()(x)))
    w = np.zeros((768, 3), np.float32)
    for c in range(3):
        w[c::3, c] = 0.05  # each output sums its colour channel: red, green, blue images are told apart
    dense.set_weights([w, np.zeros(3, np.float32)])
    paths = {}
    for name, int8 in (("dynamic", False), ("int8", True)):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if int8:
            conv.representative_dataset = lambda: ([im[None].astype(np.float32)] for im in images)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.uint8
        paths[name] = tmp_path / f"model_{name}.tflite"
        paths[name].write_bytes(conv.convert())
    np.save(tmp_path / "images.npy", images)
    return paths, labels


@pytest.mark.slow
def test_tflite_runtime_2_14_gets_the_right_diagnosis(tmp_path):
    from edgetl.runtime.litert import min_runtime_version

    paths, labels = _models(tmp_path)
    assert min_runtime_version(paths["dynamic"].read_bytes()) == "2.17.0"
    assert min_runtime_version(paths["int8"].read_bytes()) == "1.14.0"
    py = old_runtime_python(tmp_path / "old-runtime", "numpy<2")
    proc = probe(py, paths["int8"], paths["dynamic"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    int8, dynamic = out[str(paths["int8"])], out[str(paths["dynamic"])]
    assert int8["runtime"] == "tflite-runtime 2.14.0" and int8["top1"] == labels.tolist()
    assert "needs a TFLite runtime >= 2.17.0" in dynamic["error"] and "tflite-runtime 2.14.0" in dynamic["error"]
    assert "ai-edge-litert" in dynamic["error"] and "not a valid TFLite model" not in dynamic["error"]


@pytest.mark.slow
def test_export_records_what_each_artifact_needs(shapes_export):
    manifest = json.loads((shapes_export.folder / "manifest.json").read_text())
    needs = {a["file"]: a["needs"] for a in manifest["artifacts"]}
    assert needs["model_int8.tflite"] == {"tflite_runtime": "1.14.0"}
    assert needs["model.onnx"]["onnx_opset"] == 17 and needs["model.onnx"]["onnxruntime"] == "1.13"


@pytest.mark.slow
@pytest.mark.ssh
def test_tflite_runtime_with_numpy_2_is_named_locally_and_by_doctor_over_ssh(tmp_path, ssh_server):
    paths, _ = _models(tmp_path)
    py = old_runtime_python(tmp_path / "numpy2", "numpy>=2")
    proc = probe(py, paths["int8"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    error = json.loads(proc.stdout)[str(paths["int8"])].get("error", "")
    assert "numpy" in error and ("numpy<2" in error or "ai-edge-litert" in error), proc.stdout
    # The same device seen from the workstation: edgetl is not installed there, the runner is copied.
    from helpers.cli import run_cli

    proc = run_cli("doctor", "--host", "mypi", "--ssh-config", ssh_server.config, "--remote-python", py, "--json")
    assert proc.returncode == 1, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["versions"]["tflite-runtime"] == "2.14.0" and doc["versions"]["numpy"].startswith("2.")
    assert any("numpy 1.x" in c for c in doc["conflicts"])
