"""The int8 calibration in a child process (edgetl.exporting.background_calibration): the same
calibrated model, byte for byte, as calibrating in the export's own process; a failed child is
replaced by calibrating here; a stopped one leaves no process behind. Real TensorFlow in both."""
from __future__ import annotations

import numpy as np
import pytest

from models import colour_images


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small convolutional Keras model written as the SavedModel export converts from, and
    calibration images for it."""
    import keras

    from edgetl.exporting import tflite

    keras.utils.set_random_seed(5)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    folder = tmp_path_factory.mktemp("saved")
    images, _ = colour_images(size=16)
    return model, tflite.saved_model(model, folder / "saved_model"), np.concatenate([images] * 3)


def test_the_child_calibrates_the_same_model_byte_for_byte(saved, tmp_path):
    from edgetl.exporting import tflite
    from edgetl.exporting.background_calibration import BackgroundCalibration

    _, saved_model, calib = saved
    child = BackgroundCalibration.start(saved_model, calib, tmp_path)
    here = tflite.calibrated(saved_model, calib)
    data, said = child.result()
    assert data == here and said.startswith(f"calibrated on {len(calib)} images in ")
    assert not (tmp_path / "calibrated.tflite.partial").exists()


def test_a_failed_child_is_said_and_the_export_calibrates_itself(saved, tmp_path):
    from edgetl.exporting import tflite
    from edgetl.exporting.background_calibration import BackgroundCalibration
    from edgetl.exporting.formats import Build, Int8Settings

    model, saved_model, calib = saved
    broken = BackgroundCalibration.start(tmp_path / "no-such-saved-model", calib, tmp_path)
    data, why = broken.result()
    assert data is None and why  # the child's last word: what went wrong
    said: list[str] = []
    build = Build(model, calib, Int8Settings(), 17, lambda fmt: None, tmp_path, log=said.append,
                  saved_model=saved_model, background=BackgroundCalibration.start(tmp_path / "missing", calib, tmp_path))
    assert build.calibrated_tflite() == tflite.calibrated(saved_model, calib)
    assert said[0].startswith("calibration in a second process failed (") and "calibrating here" in said[0]
    assert build.calibration.startswith("in this process: calibrated on 36 images in ") and said[1:] == [
        f"int8 calibration {build.calibration}"]
    build.calibrated_tflite()
    assert len(said) == 2  # said once, however often the model is asked for


def test_closing_the_build_ends_a_calibration_still_running(saved, tmp_path):
    from edgetl.exporting.background_calibration import BackgroundCalibration
    from edgetl.exporting.formats import Build, Int8Settings

    model, saved_model, calib = saved
    child = BackgroundCalibration.start(saved_model, calib, tmp_path)
    build = Build(model, calib, Int8Settings(), 17, lambda fmt: None, tmp_path, background=child)
    build.close()  # what a failed or interrupted export does
    assert child.process.poll() is not None and build.background is None


@pytest.mark.slow
def test_the_shared_export_took_its_int8_model_from_the_second_process(shapes_export):
    """conftest's shapes export calibrates beside (as on a machine with an idle core): its report
    says where the calibration ran, and its int8 model is what every shapes test checks."""
    import json

    report = json.loads((shapes_export.folder / "report.json").read_text())
    assert report["int8_calibration"].startswith("in a second process: calibrated on "), report["int8_calibration"]
    assert any(c["file"] == "model_int8.tflite" for c in report["checks"])
