"""The export's second process (edgetl.exporting.background): from the model file it writes a
SavedModel and makes the fp16 and calibrated models, each the same, byte for byte, as the export
makes them in its own process from its own model; a failed child is said and the export makes
what it had not made; a stopped one leaves no process behind. Real TensorFlow in both."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.models import colour_images


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small convolutional Keras model, its file and the SavedModel the export writes from it,
    and calibration images for it."""
    import keras

    from edgetl.exporting import tflite

    keras.utils.set_random_seed(5)
    inp = keras.Input((16, 16, 3), name="image")  # named as edgetl's models are: the SavedModel's signature takes it
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    folder = tmp_path_factory.mktemp("saved")
    model.save(folder / "model.keras")
    images, _ = colour_images(size=16)
    return model, folder / "model.keras", tflite.saved_model(model, folder / "saved_model"), np.concatenate([images] * 3)


def test_the_child_makes_what_the_export_would_byte_for_byte(saved, tmp_path):
    from edgetl.exporting import tflite
    from edgetl.exporting.background import Background

    _, model_file, saved_model, calib = saved
    with Background.start(model_file, calib, tmp_path, ("fp16", "calibrated")) as child:
        assert tflite.fp32(child.saved_model()) == tflite.fp32(saved_model)
        fp16, said_fp16 = child.take("fp16")
        calibrated, said = child.take("calibrated")
    assert fp16 == tflite.fp16(saved_model) and said_fp16.startswith("converted in ")
    assert calibrated == tflite.calibrated(saved_model, calib)
    assert said.startswith(f"calibrated on {len(calib)} images in ")
    assert not list(tmp_path.glob("*.partial"))


def test_a_failed_child_is_said_and_the_export_makes_it_itself(saved, tmp_path):
    from edgetl.exporting import tflite
    from edgetl.exporting.background import Background
    from edgetl.exporting.formats import Build, Int8Settings

    model, _, saved_model, calib = saved
    broken = Background.start(tmp_path / "no-such-model.keras", calib, tmp_path, ("fp16", "calibrated"))
    assert broken.saved_model() is None
    data, why = broken.take("calibrated")
    assert data is None and "no-such-model.keras" in why  # the child's last word: what went wrong
    said: list[str] = []
    build = Build(model, calib, Int8Settings(), 17, lambda fmt: None, tmp_path, log=said.append, background=broken)
    assert build.fp16_tflite() == tflite.fp16(saved_model)
    assert build.calibrated_tflite() == tflite.calibrated(saved_model, calib)
    assert said[0].startswith("fp16 in a second process failed (") and "making it here" in said[0]
    assert said[1].startswith("calibrated in a second process failed (")
    assert build.calibration.startswith("in this process: calibrated on 36 images in ") and said[2:] == [
        f"int8 calibration {build.calibration}"]
    build.calibrated_tflite()
    assert len(said) == 3  # said once, however often the model is asked for


def test_stopping_ends_a_child_still_running(saved, tmp_path):
    from edgetl.exporting.background import Background

    _, model_file, _, calib = saved
    with Background.start(model_file, calib, tmp_path, ("calibrated",)) as child:
        pass  # what a failed, interrupted or finished export does on its way out
    assert child.process.poll() is not None


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        return "\nState:\tZ" not in open(f"/proc/{pid}/status").read()
    except OSError:
        return False


def test_the_child_ends_when_the_export_is_killed_outright(saved, tmp_path):
    """SIGKILL runs no cleanup in the export: the kernel ends the child with it (Linux), instead of
    leaving it to calibrate for nobody."""
    import subprocess
    import sys
    import time

    _, model_file, _, calib = saved
    np.save(tmp_path / "calib.npy", calib)
    export = subprocess.Popen([sys.executable, "-c", (
        "import time, numpy as np; from pathlib import Path; from edgetl.exporting.background import Background; "
        f"b = Background.start(Path({str(model_file)!r}), np.load({str(tmp_path / 'calib.npy')!r}), "
        f"Path({str(tmp_path)!r}), ('fp16', 'calibrated')); print(b.process.pid, flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    child = int(export.stdout.readline())
    export.kill()
    export.wait()
    deadline = time.monotonic() + 60  # a bound, not a verdict: the kernel ends it at once
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
    assert not (tmp_path / "calibrated.tflite").exists()  # it did not go on to finish


@pytest.mark.slow
def test_the_shared_export_took_its_int8_model_from_the_second_process(shapes_export):
    """conftest's shapes export runs the second process (as on a machine with an idle core): its
    report says where the calibration ran, and its int8 model is what every shapes test checks."""
    import json

    report = json.loads((shapes_export.folder / "report.json").read_text())
    assert report["int8_calibration"].startswith("in a second process: calibrated on "), report["int8_calibration"]
    assert any(c["file"] == "model_int8.tflite" for c in report["checks"])
