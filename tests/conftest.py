"""Shared fixtures: generated photo folders, the runs several tests share, and the ../shared data
(skipped with a reason when absent). The helpers themselves are in tests/helpers/."""
from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import run_cli
from helpers.images import make_shapes, none_of_the_classes, write_rgb
from helpers.shared import HYMENOPTERA, WEIGHTS

# A shell that starts the tests in the background (`bash .ci/run &`, nohup) leaves SIGINT ignored,
# and an ignored signal stays ignored in every child process: the Ctrl-C tests would press a key
# that does nothing (this, not edgetl, was the "fails only in the full suite" of the SSH Ctrl-C
# test). With a handler here, each child starts with the default action, as under a terminal.
signal.signal(signal.SIGINT, signal.default_int_handler)


SHARED_RUNS = {"hymenoptera_run": "hymenoptera", "hymenoptera_export": "hymenoptera",
               "efficientnet_run": "efficientnet",
               "shapes_run": "shapes", "shapes_export": "shapes", "shapes_data": "shapes", "pi": "shapes"}
"""The session fixtures that train, export or build the emulated Pi, in order of cost, and the
group of tests that share each: the tests run on two workers (pytest-xdist), and each group
runs on one, so what it shares is made once per session. The emulated Pi goes with the shapes
models its tests run (and two builds of it at once would race for its cache folder)."""


TRAINS = {"hymenoptera_run", "hymenoptera_export", "efficientnet_run", "shapes_run", "shapes_export", "pi", "field_loop"}
"""Session fixtures that train a model or build the emulated Pi: a test using one is slow."""


FIRST = ("test_demo.py",)
"""Groups handed to a worker first. The whole demo is one test of minutes: left to xdist's own
order (groups by their number of tests, most first) it ran last while the other worker sat idle
for minutes; first, it runs beside everything else."""


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook and the -m selection read the marks
def pytest_collection_modifyitems(config, items):
    """Each test's xdist group: the first shared run it uses, else its file (a module's fixtures
    are then made once); the slow mark on every test that uses a training fixture; the demo first."""
    groups = {}
    for item in items:
        group = next((SHARED_RUNS[name] for name in SHARED_RUNS if name in item.fixturenames), item.path.name)
        item.add_marker(pytest.mark.xdist_group(group))
        groups[item.nodeid] = group
        if TRAINS & set(item.fixturenames):  # the quick tier (-m "not slow") never trains, by construction
            item.add_marker(pytest.mark.slow)
    # then as xdist would order them (pyproject turns its own reordering off): most tests first
    count = Counter(groups.values())
    order = {item.nodeid: i for i, item in enumerate(items)}
    items.sort(key=lambda item: (groups[item.nodeid] not in FIRST, -count[groups[item.nodeid]], order[item.nodeid]))


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    """A small clean three-class folder dataset."""
    return make_shapes(tmp_path / "shapes")


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
    from helpers import sshd

    if not sshd.SSHD:
        pytest.skip("no OpenSSH server installed (.ci/run installs openssh-server)")
    server = sshd.start(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def colour(tmp_path_factory):
    """A real TFLite colour classifier (red/green/blue) with edgetl's embedded metadata, the same
    model without metadata, and a red image: the security tests' victim."""
    from helpers.models import COLOURS, colour_images, keras_mean_colour, to_tflite
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
    from helpers.models import COLOURS, colour_frame, keras_mean_colour, to_tflite

    d = tmp_path_factory.mktemp("live")
    rng = np.random.default_rng(0)
    calib = np.stack([colour_frame(i % 3, rng, 16, 16) for i in range(12)])
    path = to_tflite(keras_mean_colour(), d / "colour.tflite", "uint8", calib)
    (d / "labels.txt").write_text("\n".join(COLOURS) + "\n")
    return path
