"""The runtime layer on real TFLite and ONNX Runtime models, including ones edgetl did not make."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.cli import run_cli
from helpers.images import write_rgb
from helpers.cli import run_without_tensorflow
from helpers.models import colour_images, keras_mean_colour, onnx_nchw_logits, to_tflite
from edgetl.exporting.metadata import embed_tflite
from edgetl.runtime.manifest import ModelManifest
from edgetl.runtime import load
from edgetl.runtime.spec import PixelSpec


@pytest.fixture(scope="module")
def colour_models(tmp_path_factory):
    """fp32 and uint8/int8 TFLite models of the colour classifier, converted by TFLite directly."""
    d = tmp_path_factory.mktemp("colour")
    images, _ = colour_images()
    model = keras_mean_colour()
    paths = {
        "fp32": to_tflite(model, d / "fp32.tflite"),
        "uint8": to_tflite(model, d / "uint8.tflite", "uint8", images),
        "int8": to_tflite(model, d / "int8.tflite", "int8", images),
    }
    (d / "labels.txt").write_text("red\ngreen\nblue\n")
    return paths, model


def test_quantized_io_is_exact(colour_models):
    paths, model = colour_models
    images, labels = colour_images()
    keras_probs = model.predict(images.astype(np.float32), verbose=0)
    for name, path in paths.items():
        clf = load(path)
        probs = clf.scores(list(images))
        assert (probs.argmax(1) == labels).all(), name
        tol = 1e-5 if name == "fp32" else 2 * clf.output.scale + 1e-6
        assert np.abs(probs - keras_probs).max() <= tol, name
        # the input mapping uses the tensor's own scale/zero point
        x = clf.prepare(images[0])
        assert x.dtype == clf.input.dtype
        if name == "int8":
            q = np.clip(np.rint(images[0] / clf.input.scale + clf.input.zero_point), -128, 127)
            assert np.abs(x[0].astype(int) - q).max() <= 1
        raw = clf.infer(x)
        if clf.output.quantized:  # raw integer output decoded against an independent oracle: Keras itself
            assert raw.dtype == clf.output.dtype and raw.dtype != np.float32
            assert np.abs(clf.probabilities(raw)[0] - keras_probs[0]).max() <= 2 * clf.output.scale + 1e-6
    assert load(paths["uint8"]).classify(images[1], top_k=1)[0].label == "green"  # labels.txt beside the model


def test_float_model_with_its_own_normalisation_metadata(tmp_path):
    """A float model that expects [-1, 1] input and says so in standard TFLite metadata."""
    model = keras_mean_colour(scale=0.5, offset=0.5)  # maps [-1, 1] back to [0, 1] inside
    raw = to_tflite(model, tmp_path / "raw.tflite").read_bytes()
    spec = PixelSpec(16, 16, mean=127.5, std=127.5)
    (tmp_path / "m.tflite").write_bytes(embed_tflite(raw, "minus-one-to-one", ModelManifest(["r", "g", "b"], spec, "tflite", "fp32")))
    clf = load(tmp_path / "m.tflite")
    assert (clf.pixels.mean, clf.pixels.std) == (127.5, 127.5)
    assert clf.labels == ["r", "g", "b"]
    x = clf.prepare(np.full((16, 16, 3), 255, np.uint8))
    assert np.allclose(x, 1.0) and clf.prepare(np.zeros((16, 16, 3), np.uint8)).min() == -1.0
    images, labels = colour_images()
    assert (clf.scores(list(images)).argmax(1) == labels).all()


def test_onnx_nchw_logits_with_labels_file_on_command_line(tmp_path):
    model = onnx_nchw_logits(tmp_path / "nchw.onnx")
    labels = tmp_path / "names.txt"
    labels.write_text("R\nG\nB\n")
    clf = load(model, labels=labels, mean=127.5, std=127.5)
    assert clf.input.layout == "NCHW" and clf.labels == ["R", "G", "B"]
    img = np.zeros((20, 30, 3), np.uint8)
    img[..., 2] = 255
    x = clf.prepare(img)
    assert x.shape == (1, 3, 8, 8) and np.allclose(x[0, 2], 1.0) and np.allclose(x[0, 0], -1.0)
    probs = clf.scores(img)[0]
    logits = np.array([-4.0, -4.0, 4.0])
    assert np.allclose(probs, np.exp(logits) / np.exp(logits).sum(), atol=1e-6)  # softmax applied to logits
    path = write_rgb(tmp_path / "blue.png", img)
    proc = run_cli("predict", model, path, "--labels", labels, "--json", "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.strip())
    assert doc["path"] == str(path) and doc["top"][0]["label"] == "B" and len(doc["top"]) == 2


def test_background_label_and_1001_outputs(tmp_path):
    """Google's ImageNet models: labels with 'background' first, for 1001 or 1000 outputs."""
    images, _ = colour_images()
    names = ["background"] + [f"n{i}" for i in range(1000)]
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n")
    m1001 = to_tflite(keras_mean_colour(outputs=1001), tmp_path / "q1001.tflite", "uint8", images)
    m1000 = to_tflite(keras_mean_colour(outputs=1000), tmp_path / "q1000.tflite", "uint8", images)
    assert load(m1001).labels == names
    assert load(m1000).labels == names[1:]
    assert load(m1000).classify(images[0], top_k=1)[0].label == "n0"


def test_bad_models_give_one_line_and_exit_2(tmp_path, colour_models):
    paths, _ = colour_models
    image = write_rgb(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    truncated = tmp_path / "cut.tflite"
    data = paths["fp32"].read_bytes()
    truncated.write_bytes(data[: len(data) - 300])
    (tmp_path / "text.onnx").write_text("hello")
    (tmp_path / "model.pt").write_bytes(b"x")
    import keras

    inp = keras.Input((10,))
    to_tflite(keras.Model(inp, keras.layers.Dense(2)(inp)), tmp_path / "vector.tflite")
    (tmp_path / "wrong_labels.txt").write_text("a\nb\n")
    cases = {
        tmp_path / "missing.tflite": "no such model file",
        truncated: "not a valid TFLite model",
        tmp_path / "text.onnx": "not a valid ONNX model",
        tmp_path / "model.pt": "not a model type edgetl runs",
        tmp_path: "this is a folder, not a model file",
        tmp_path / "vector.tflite": "not an RGB image batch",
    }
    for model, message in cases.items():
        proc = run_cli("predict", model, image)
        assert proc.returncode == 2, (model, proc.stderr)
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and message in lines[0] and str(model) in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
    proc = run_cli("predict", paths["fp32"], image, "--labels", tmp_path / "wrong_labels.txt")
    assert proc.returncode == 2 and "2 labels for a model with 3 outputs" in proc.stderr


def test_model_whose_run_fails(tmp_path):
    """An ONNX model that loads but fails when run (a reshape to an impossible shape)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [1, 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "bad.onnx"))
    image = write_rgb(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    proc = run_cli("predict", tmp_path / "bad.onnx", image)
    assert proc.returncode == 2 and "the model failed to run" in proc.stderr and "Traceback" not in proc.stderr


def test_device_side_never_imports_tensorflow(tmp_path, colour_models):
    paths, _ = colour_models
    images, labels = colour_images()
    data = tmp_path / "colours"
    for i, (img, y) in enumerate(zip(images, labels)):
        write_rgb(data / ["red", "green", "blue"][y] / f"{i}.png", img)
    onnx_model = onnx_nchw_logits(tmp_path / "m.onnx", size=16)
    for model in (paths["uint8"], paths["fp32"], onnx_model):
        lab = ["--labels", str(tmp_path / "l.txt")]
        (tmp_path / "l.txt").write_text("red\ngreen\nblue\n")
        proc = run_without_tensorflow("predict", model, data, "--json", *lab)
        assert proc.returncode == 0, proc.stderr
        assert len(proc.stdout.splitlines()) == 12
        proc = run_without_tensorflow("eval", model, data, "--json", *lab)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["accuracy"] == 1.0
    keras_model = tmp_path / "colour.keras"
    keras_mean_colour(size=16).save(keras_model)  # a real .keras file: only its backend needs Keras
    proc = run_without_tensorflow("predict", keras_model, data)
    assert proc.returncode == 2 and "needs Keras and TensorFlow" in proc.stderr, proc.stderr


def test_training_and_runtime_see_the_same_pixels(tmp_path):
    """The training loader (decode+resize cache) and the runtime's preprocessing agree within 1 level."""
    from edgetl.data.cache import load_images
    from edgetl.image import decode

    rng = np.random.default_rng(1)
    path = write_rgb(tmp_path / "photo.jpg", rng.integers(0, 255, (240, 320, 3), np.uint8))
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    clf_path = to_tflite(keras_mean_colour(size=64), model_dir / "m.tflite")
    clf = load(clf_path)
    runtime_pixels = clf.resize(decode(path))
    train_pixels = load_images([str(path)], PixelSpec(64, 64), use_cache=False)[0]
    assert np.abs(runtime_pixels.astype(int) - train_pixels.astype(int)).max() <= 1
