"""Shared fixtures: generated photo folders and the ../shared data (skipped with a reason when absent)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# A shell that starts the tests in the background (`bash .ci/run &`, nohup) leaves SIGINT ignored,
# and an ignored signal stays ignored in every child process: the Ctrl-C tests would press a key
# that does nothing (this, not edgetl, was the "fails only in the full suite" of the SSH Ctrl-C
# test). With a handler here, each child starts with the default action, as under a terminal.
signal.signal(signal.SIGINT, signal.default_int_handler)
SHARED = Path(os.environ.get("EDGETL_SHARED", ROOT.parent / "shared")).resolve()
WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet_no_top.weights.h5"
HYMENOPTERA = SHARED / "datasets" / "hymenoptera"

needs_weights = pytest.mark.skipif(not WEIGHTS.exists(), reason=f"no shared weights at {WEIGHTS} (set EDGETL_SHARED)")
needs_hymenoptera = pytest.mark.skipif(not HYMENOPTERA.exists(),
                                       reason=f"no hymenoptera dataset at {HYMENOPTERA} (set EDGETL_SHARED)")


def shape_image(kind: str, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """An RGB uint8 photo-like picture of one shape class on a noisy, grey background. Each class
    also leans to a colour of its own (as real classes do: daisies are white, roses red), so a
    model with random, untrained features — the tests train from scratch in seconds — still beats
    chance on held-out images."""
    bg = rng.integers(60, 196)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    lean = {"circle": (200, 60, 60), "square": (60, 200, 60)}.get(kind, (60, 60, 200))
    colour = tuple(int(c) for c in (np.array(lean) + rng.integers(-40, 40, 3)).clip(0, 255))
    c = size // 2 + rng.integers(-size // 8, size // 8 + 1, 2)
    r = int(size * rng.uniform(0.18, 0.3))
    if kind == "circle":
        cv2.circle(img, (int(c[0]), int(c[1])), r, colour, -1)
    elif kind == "square":
        cv2.rectangle(img, (int(c[0] - r), int(c[1] - r)), (int(c[0] + r), int(c[1] + r)), colour, -1)
    else:
        pts = np.array([[c[0], c[1] - r], [c[0] - r, c[1] + r], [c[0] + r, c[1] + r]], np.int32)
        cv2.fillPoly(img, [pts], colour)
    return img


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB array with OpenCV (which wants BGR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def make_shapes(root: Path, classes=("circle", "square", "triangle"), per_class: int = 20, seed: int = 0,
                size: int = 96, splits: tuple[str, ...] = ()) -> Path:
    """A generated dataset: one folder per class, or train/val splits when ``splits`` is given."""
    rng = np.random.default_rng(seed)
    for cls in classes:
        for i in range(per_class):
            split = splits[i % len(splits)] if splits else ""
            write_rgb(root / split / cls / f"{cls}_{i:03d}.jpg", shape_image(cls, rng, size))
    return root


def none_of_the_classes(root: Path, photos: list[Path], seed: int, per_kind: int = 40) -> Path:
    """Images that are neither ants nor bees, for the "unknown" tests (no third class of real photos
    is at hand): real photos cut into 16 px tiles and shuffled (a photo's colours and textures, no
    insect), and generated shape pictures. ``photos`` and ``seed`` keep two such sets disjoint."""
    rng = np.random.default_rng(seed)
    for i, photo in enumerate(photos[:per_kind]):
        image = cv2.resize(cv2.imread(str(photo)), (224, 224))
        tiles = image.reshape(14, 16, 14, 16, 3).swapaxes(1, 2).reshape(196, 16, 16, 3)[rng.permutation(196)]
        cv2.imwrite(str(root / f"tiles_{i:03d}.jpg"), tiles.reshape(14, 14, 16, 16, 3).swapaxes(1, 2).reshape(224, 224, 3))
    for i in range(per_kind):
        write_rgb(root / f"shape_{i:03d}.jpg", shape_image(("circle", "square", "triangle")[i % 3], rng, 160))
    return root


SHARED_RUNS = {"hymenoptera_run": "hymenoptera", "hymenoptera_export": "hymenoptera",
               "efficientnet_run": "efficientnet",
               "shapes_run": "shapes", "shapes_export": "shapes", "shapes_data": "shapes", "pi": "shapes"}
"""The session fixtures that train, export or build the emulated Pi, in order of cost, and the
group of tests that share each: the tests run on two workers (pytest-xdist), and each group
runs on one, so what it shares is made once per session. The emulated Pi goes with the shapes
models its tests run (and two builds of it at once would race for its cache folder)."""


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Each test's xdist group: the first shared run it uses, else its file (a module's fixtures
    are then made once)."""
    for item in items:
        group = next((SHARED_RUNS[name] for name in SHARED_RUNS if name in item.fixturenames), item.path.name)
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    """A small clean three-class folder dataset."""
    return make_shapes(tmp_path / "shapes")


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run `python -m edgetl ...` in a subprocess, as a user would: without the log level the test
    process set for its own TensorFlow (models.py), which a user's shell does not have."""
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | (env or {})
    return subprocess.run([sys.executable, "-m", "edgetl", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout)


@pytest.fixture(scope="session")
def hymenoptera_run(tmp_path_factory):
    """The quality-bar run: MobileNetV2 224 with the shared ImageNet weights on hymenoptera, defaults,
    its "unknown" threshold chosen with 80 images of none of the classes (--unknown)."""
    if not (WEIGHTS.exists() and HYMENOPTERA.exists()):
        pytest.skip(f"needs {WEIGHTS} and {HYMENOPTERA} (set EDGETL_SHARED)")
    from edgetl import TrainConfig, train

    unknown = none_of_the_classes(tmp_path_factory.mktemp("unknown_chosen_with"),
                                  sorted((HYMENOPTERA / "train").glob("*/*.jpg"))[::5], seed=1)
    return train(TrainConfig(data=str(HYMENOPTERA), weights=str(WEIGHTS), unknown=str(unknown),
                             project=str(tmp_path_factory.mktemp("hymenoptera") / "runs")))


@pytest.fixture(scope="session")
def hymenoptera_export(hymenoptera_run):
    """Every artifact of the quality-bar run, verified."""
    from edgetl.exporting.formats import ALL
    from edgetl.exporting.pipeline import ExportOptions, export

    return export(hymenoptera_run.path, ExportOptions(formats=list(ALL)))


@pytest.fixture(scope="session")
def efficientnet_run(tmp_path_factory) -> tuple[Path, dict]:
    """EfficientNetB0 from scratch on shapes at 48 px, both stages, trained once for the run-folder
    and the export tests: the run folder and what `train --json` printed."""
    root = tmp_path_factory.mktemp("efficientnet")
    data = make_shapes(root / "data", per_class=16, size=48)
    proc = run_cli("train", data, "--backbone", "efficientnet_b0", "--weights", "none", "--size", "48",
                   "--epochs", "2", "--fine-tune-epochs", "1", "--no-augment", "--out", root / "run", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run", json.loads(proc.stdout)


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory) -> Path:
    """Generated circles, squares and triangles in train/val folders."""
    return make_shapes(tmp_path_factory.mktemp("shapes") / "data", per_class=40, splits=("train", "train", "train", "val"),
                       size=64)


@pytest.fixture(scope="session")
def shapes_run(shapes_data, tmp_path_factory):
    """A small MobileNetV2 trained from scratch on the generated shapes (no shared data needed)."""
    from edgetl import TrainConfig, train

    # Batches of 8: from scratch, BatchNorm's moving statistics need the steps to catch up with the
    # weights, or the model is at chance at inference whatever it learned (export then says so).
    return train(TrainConfig(data=str(shapes_data), weights="none", alpha=0.35, size=48, epochs=12, batch_size=8,
                             fine_tune_epochs=0, augment=False, lr=3e-3, patience=12,
                             project=str(tmp_path_factory.mktemp("shapes_runs"))))


@pytest.fixture(scope="session")
def shapes_export(shapes_run):
    """fp32 and int8 TFLite plus ONNX of the shapes model (gates relaxed: the point is the artifacts),
    its SavedModel and int8 calibration in a second process however busy the machine is, so every test of these
    artifacts holds that path too."""
    from edgetl.exporting import pipeline
    from edgetl.exporting.formats import Gates

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "idle_cores", lambda: pipeline.CORE_FOR_BACKGROUND)
        return pipeline.export(shapes_run.path, pipeline.ExportOptions(formats=["fp32", "int8", "onnx", "onnx_int8"],
                                                                      gates=Gates(max_drop=100, min_agreement=0)))


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 with ssh_config aliases mypi, badkey, nohost."""
    import sshd

    if not sshd.SSHD:
        pytest.skip("no OpenSSH server installed (.ci/run installs openssh-server)")
    server = sshd.start(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def colour(tmp_path_factory):
    """A real TFLite colour classifier (red/green/blue) with edgetl's embedded metadata, the same
    model without metadata, and a red image: the security tests' victim."""
    from models import COLOURS, colour_images, keras_mean_colour, to_tflite
    from edgetl.exporting.metadata import embed_tflite
    from edgetl.runtime.manifest import ModelManifest
    from edgetl.runtime.spec import PixelSpec

    d = tmp_path_factory.mktemp("colour")
    raw = to_tflite(keras_mean_colour(), d / "raw.tflite").read_bytes()
    pixels = PixelSpec(16, 16, mean=0.0, std=1.0)
    model = d / "model.tflite"
    model.write_bytes(embed_tflite(raw, "colour", ModelManifest(list(COLOURS), pixels, "tflite", "fp32")))
    plain = d / "plain.tflite"
    plain.write_bytes(raw)
    image = write_rgb(d / "red.png", colour_images()[0][0])
    return {"model": model, "plain": plain, "image": image, "dir": d}


@pytest.fixture(scope="session")
def colour_model(tmp_path_factory) -> Path:
    """A uint8 TFLite colour classifier (red/green/blue, 16 px) with labels.txt beside it: the live
    and outbox tests' model."""
    from models import COLOURS, colour_frame, keras_mean_colour, to_tflite

    d = tmp_path_factory.mktemp("live")
    rng = np.random.default_rng(0)
    calib = np.stack([colour_frame(i % 3, rng, 16, 16) for i in range(12)])
    path = to_tflite(keras_mean_colour(), d / "colour.tflite", "uint8", calib)
    (d / "labels.txt").write_text("\n".join(COLOURS) + "\n")
    return path
