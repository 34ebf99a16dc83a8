"""A wheel of this checkout installs with only the `device` extra and runs predict; the clone imports
from the folder that holds it; the README speaks to users."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import run_cli
from helpers.images import write_rgb
from helpers.shared import ROOT
from helpers.models import keras_mean_colour, to_tflite


@pytest.mark.slow
def test_wheel_with_device_extra_runs_predict_without_tensorflow(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], check=True,
                   capture_output=True, timeout=600)
    wheel = next(dist.glob("edgetl-*.whl"))
    env_dir = tmp_path / "device-venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # Nothing from this environment's path: a PYTHONPATH holding the clone would make pip take the
    # wheel's package as installed already.
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", f"{wheel}[device]"], capture_output=True, text=True,
                          timeout=900, env=clean_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, env=clean_env).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert {"ai-edge-litert", "onnxruntime", "opencv-python-headless", "numpy"} <= names
    assert not names & {"tensorflow", "tensorflow-cpu", "keras"}
    rng = np.random.default_rng(0)
    calib = rng.integers(0, 255, (8, 16, 16, 3)).astype(np.uint8)
    (tmp_path / "m").mkdir()
    model = to_tflite(keras_mean_colour(), tmp_path / "m" / "colour.tflite", "uint8", calib)
    (tmp_path / "m" / "labels.txt").write_text("red\ngreen\nblue\n")
    img = np.zeros((40, 40, 3), np.uint8)
    img[..., 1] = 230
    photo = write_rgb(tmp_path / "green.png", img)
    proc = subprocess.run([str(env_dir / "bin" / "edgetl"), "predict", str(model), str(photo), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=clean_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["top"][0]["label"] == "green"


def test_cli_usage_errors_exit_2():
    assert run_cli("train", "data", "--epochs", "zero").returncode == 2
    assert run_cli("nonsense").returncode == 2
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("edgetl ")


def test_python_api_entry_points(tmp_path):
    """edgetl.audit/train/export/load/bench/evaluate are plain typed functions of `import edgetl`,
    whatever was imported before (the stage packages have names of their own)."""
    import inspect

    import edgetl.training  # noqa: F401  (a stage package imported first changes nothing)
    import edgetl

    for name in ("train", "export", "bench", "evaluate"):
        function = getattr(edgetl, name)
        assert inspect.isfunction(function) and function.__module__ == "edgetl", name
        assert inspect.signature(function).return_annotation != inspect.Signature.empty, name
    assert edgetl.TrainConfig().backbone == "mobilenet_v2" and callable(edgetl.audit)
    rng = np.random.default_rng(0)
    (tmp_path / "m").mkdir()
    model = to_tflite(keras_mean_colour(), tmp_path / "m" / "c.tflite", "uint8", rng.integers(0, 255, (4, 16, 16, 3)).astype(np.uint8))
    from edgetl.benchmark.harness import BenchOptions

    result = edgetl.bench([model], threads=[1], options=BenchOptions(runs=5, warmup=1, min_seconds=0))
    assert result[0].model == "c.tflite" and result[0].p50_ms > 0
    assert edgetl.load(model).num_classes == 3


@pytest.mark.parametrize("module, never", [
    ("benchmark", "edgetl.report"),  # edgetl.bench refreshes a run's page, the benchmark only measures
    ("remote", "edgetl.benchmark"),  # the SSH transport and the device program serve bench, deploy, verify alike
    ("golden_check.py", "edgetl.data"),  # checking a model on a device needs no dataset code
    ("runtime", "edgetl.data"),
    ("runtime", "edgetl.exporting"),  # the device side runs artifacts; export may use runtime, not the reverse
])
def test_layers_do_not_reach_up(module, never):
    """Imports that would tie a lower layer to a higher one, read from the source (every import,
    also those inside functions)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "edgetl" / module
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    found = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{f.name}: {n}" for n in names if n == never or n.startswith(never + ".")]
    assert not found, found


def test_import_edgetl_from_the_folder_that_holds_the_clone(tmp_path):
    (tmp_path / "edgetl").symlink_to(ROOT)  # a clone named edgetl, and Python started beside it
    proc = subprocess.run([sys.executable, "-c", "import edgetl; print(edgetl.__file__, callable(edgetl.audit))"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    file, ok = proc.stdout.split()
    assert Path(file) == ROOT / "edgetl" / "__init__.py" or "site-packages" in file
    assert ok == "True"


def test_readme_speaks_to_users():
    text = (ROOT / "README.md").read_text()
    for word in ("The issue", "issue asks", "this session"):
        assert word not in text
    assert "../shared" not in text or "EDGETL_SHARED" in text
