"""Hostile files: decompression and zip bombs, crafted model metadata, external data outside the
folder, unreadable and oddly named files, models that are not classifiers or must not be trusted.
Each is one error line, exit code 2, no traceback, in bounded time and memory."""
from __future__ import annotations

import json
import os
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import run_cli
from helpers.images import make_shapes, write_rgb
from helpers.cli import one_error, peak_rss_mb
from helpers.tflite_files import with_files
from helpers.models import colour_images, to_tflite


# ---------------------------------------------------------------------------------------------
# Decompression bombs and hostile files.

def _bomb_png(path: Path, side: int = 30000) -> Path:
    """A valid grayscale PNG of side x side pixels, all black: under 1 MB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return _bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


def test_decompression_bomb_is_flagged_fast_in_bounded_memory(bomb, tmp_path):
    data = make_shapes(tmp_path / "data", per_class=4)
    shutil.copy(bomb, data / "circle" / "huge.png")
    proc, _, peak = peak_rss_mb("data", "check", data)
    assert proc.returncode == 1 and "huge.png" in proc.stdout and "pixel cap" in proc.stdout, proc.stdout
    assert "30000x30000" in proc.stdout
    # Refused from its header: decoding 30000x30000 pixels would need 2.7 GB (above 20: the
    # figure is a real measurement). Time is bounded by the helper's timeout, not asserted.
    assert 20 < peak < 300, f"peak RSS {peak:.0f} MB"
    proc = run_cli("data", "check", data, "--max-pixels", str(2 * 10**9))  # the cap is the user's to raise
    assert "pixel cap" not in proc.stdout


def test_decompression_bomb_given_to_predict(colour, bomb):
    proc, _, peak = peak_rss_mb("predict", colour["model"], bomb)
    assert "pixel cap" in one_error(proc) and peak < 400, peak


def test_zip_bomb_in_model_metadata_is_refused(colour, tmp_path):
    crafted = tmp_path / "bomb.tflite"
    crafted.write_bytes(with_files(colour["model"].read_bytes(), {"labels.txt": b"red\ngreen\nblue\n",
                                                                  "edgetl.json": b"\x00" * (64 << 20)},
                                   zipfile.ZIP_DEFLATED))
    assert crafted.stat().st_size < 4 << 20
    proc, _, peak = peak_rss_mb("predict", crafted, colour["image"])
    line = one_error(proc)
    assert "bomb.tflite" in line and "edgetl.json" in line and "MiB" in line and peak < 400, (line, peak)


@pytest.mark.parametrize("files,field", [
    ({"labels.txt": b"red\n\xffgreen\nblue\n"}, "labels.txt"),
    ({"labels.txt": b"red\ngreen\nblue\n", "edgetl.json": b"{not json"}, "edgetl.json"),
    ({"labels.txt": b"red\ngreen\nblue\n", "edgetl.json": b"[1, 2]"}, "edgetl.json"),
    ({"labels.txt": b"red\ngreen\nblue\n", "edgetl.json": b'{"height": 16, "width": 16, "std": 0}'}, "'std'"),
    ({"labels.txt": b"red\ngreen\nblue\n", "edgetl.json": b'{"height": 16, "width": 16, "mean": "x"}'}, "'mean'"),
    ({"labels.txt": b"red\ngreen\nblue\n", "edgetl.json": b'{"height": 16, "width": 16, "resize": "rm -rf"}'}, "'resize'"),
])
def test_crafted_tflite_metadata_is_one_line_naming_the_field(colour, tmp_path, files, field):
    crafted = tmp_path / "crafted.tflite"
    crafted.write_bytes(with_files(colour["model"].read_bytes(), files))
    line = one_error(run_cli("predict", crafted, colour["image"]))
    assert "crafted.tflite" in line and field in line, line


def test_encrypted_or_oddly_compressed_entries_are_refused(colour, tmp_path):
    body = with_files(colour["model"].read_bytes(), {"labels.txt": b"red\ngreen\nblue\n"})
    start = body.find(b"PK\x03\x04")
    for flag_offset, value, what in ((6, 1, "encrypted"), (8, 12, "compression")):
        data = bytearray(body)
        central = data.find(b"PK\x01\x02", start)
        data[central + flag_offset + 2] = value  # central directory: flags at +8, method at +10
        crafted = tmp_path / f"{what}.tflite"
        crafted.write_bytes(bytes(data))
        assert what in one_error(run_cli("predict", crafted, colour["image"]))


def _onnx_classifier(path: Path, props: dict[str, str] | None = None, external: str | None = None) -> Path:
    """A tiny real ONNX classifier (NHWC 8x8 input, channel means, softmax) with metadata ``props``."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(3, dtype=np.float32) * 0.05, "w")
    if external is not None:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        entry = w.external_data.add()
        entry.key, entry.value = "location", external
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probability"])],
        "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 8, 8, 3])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [1, 3])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, props or {})
    path.write_bytes(model.SerializeToString())
    return path


MANIFEST = {"schema_version": 1, "format": "onnx", "precision": "fp32", "labels": ["a", "b", "c"],
            "input": {"height": 8, "width": 8}}


@pytest.mark.parametrize("props,field", [
    ({"labels": '"abc"'}, "labels"),
    ({"labels": "[not json"}, "labels"),
    ({"labels": '["a", 2, "c"]'}, "labels"),
    ({"edgetl": '{"height": 8, "width": 8, "std": 0}'}, "'std'"),
    ({"edgetl": '{"height": 8, "width": 8, "resize": "sideways"}'}, "'resize'"),
    ({"edgetl": '{"height": 8, "width": 8, "mean": 1%s}' % ("0" * 400)}, "'mean'"),  # overflows a float
    ({"edgetl": '{"height": 1%s, "width": 8}' % ("0" * 400)}, "'height'"),
    ({"edgetl": json.dumps(MANIFEST | {"confidence": {
        "threshold": 10 ** 400, "min_precision": 0.9, "precision": 0.9, "coverage": 0.9}})}, "threshold"),
    ({"edgetl": json.dumps(MANIFEST | {"confidence": {
        "threshold": 0.5, "min_precision": 0.9, "precision": 0.9, "coverage": 0.9, "temperature": 0}})}, "temperature"),
    ({"edgetl": json.dumps(MANIFEST | {"confidence": {
        "threshold": 0.5, "min_precision": 0.9, "precision": 0.9, "coverage": 0.9, "temperature": -5}})}, "temperature"),
    ({"edgetl": json.dumps(MANIFEST | {"confidence": {
        "threshold": 0.5, "min_precision": 0.9, "precision": 0.9, "coverage": 0.9, "reached": "false"}})}, "reached"),
])
def test_crafted_onnx_metadata_is_one_line_naming_the_field(colour, tmp_path, props, field):
    model = _onnx_classifier(tmp_path / "crafted.onnx", props)
    line = one_error(run_cli("predict", model, colour["image"]))
    assert "crafted.onnx" in line and field in line, line


def test_onnx_external_data_outside_the_folder_is_refused(colour, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.eye(3, dtype=np.float32).tobytes())
    inside = tmp_path / "models"
    inside.mkdir()
    for location in ("../secret.bin", str(secret)):
        model = _onnx_classifier(inside / "leak.onnx", external=location)
        line = one_error(run_cli("predict", model, colour["image"]))
        assert "outside its folder" in line and "leak.onnx" in line


def test_onnx_external_data_guard_fails_closed(colour, tmp_path):
    """An unknown protobuf group before the graph (valid wire format, which ONNX Runtime's parser
    skips) once made the guard give up and let the model load: it is read through now; and bytes
    the guard cannot follow at all refuse the model rather than wave it through."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.eye(3, dtype=np.float32).tobytes())
    model = _onnx_classifier(tmp_path / "leak.onnx", external=str(secret))
    group = bytes([0xA3, 0x06, 0x08, 0x01, 0xA4, 0x06])  # field 100: start group, a varint, end group
    model.write_bytes(group + model.read_bytes())
    line = one_error(run_cli("predict", model, colour["image"]))
    assert "outside its folder" in line and "leak.onnx" in line, line
    model.write_bytes(bytes([0x0F]) + model.read_bytes())  # wire type 7 does not exist
    line = one_error(run_cli("predict", model, colour["image"]))
    assert "its protobuf cannot be read" in line, line


def test_non_utf8_labels_file(colour, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"red\ngr\xe9en\nblue\n")
    line = one_error(run_cli("predict", colour["plain"], colour["image"], "--labels", labels))
    assert "labels.txt" in line and "UTF-8" in line


def test_audit_never_hangs_or_reads_devices_and_reports_each_skip(tmp_path):
    data = make_shapes(tmp_path / "data", per_class=4)
    os.mkfifo(data / "circle" / "x.png")
    os.symlink("/dev/zero", data / "square" / "zero.jpg")
    os.symlink("/nonexistent/folder", data / "square" / "gone.png")
    elsewhere = make_shapes(tmp_path / "elsewhere", classes=("triangle",), per_class=3)
    os.symlink(elsewhere / "triangle", data / "triangle" / "linked")
    os.symlink(data / "triangle", data / "triangle" / "loop")
    proc = run_cli("data", "check", data, "--json", timeout=60)
    doc = json.loads(proc.stdout)
    reasons = {Path(p["path"]).name: p["reason"] for p in doc["problems"]}
    assert "FIFO" in reasons["x.png"] and "device" in reasons["zero.jpg"] and "cannot read" in reasons["gone.png"]
    assert doc["classes"]["triangle"]["train"] + doc["classes"]["triangle"]["val"] == 4 + 3  # linked folder read once
    assert "loop" in reasons


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder: permission errors cannot be made here as root")
def test_unreadable_folder_is_reported(tmp_path):
    data = make_shapes(tmp_path / "data", per_class=4)
    (data / "circle" / "private").mkdir()
    (data / "circle" / "private").chmod(0)
    try:
        proc = run_cli("data", "check", data)
    finally:
        (data / "circle" / "private").chmod(0o755)
    assert "private" in proc.stdout and "cannot be read" in proc.stdout


def test_non_utf8_file_names_with_a_strict_utf8_stdout(colour, tmp_path):
    data = make_shapes(tmp_path / "data", per_class=4)
    odd = os.fsencode(data / "circle") + b"/caf\xe9.txt"
    with open(odd, "wb") as f:
        f.write(b"x")
    image = os.fsencode(tmp_path) + b"/r\xe9d.png"
    shutil.copy(colour["image"], os.fsdecode(image))
    env = {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    proc = run_cli("data", "check", data, env=env)
    assert proc.returncode == 1 and "caf\\xe9.txt" in proc.stdout and "Traceback" not in proc.stderr, proc.stderr
    proc = run_cli("predict", colour["model"], os.fsdecode(image), env=env)
    assert proc.returncode == 0 and "r\\xe9d.png" in proc.stdout, proc.stderr


def test_disk_cache_is_keyed_on_content_and_validated(tmp_path, monkeypatch):
    from edgetl.data import cache
    from edgetl.runtime.spec import PixelSpec

    monkeypatch.setenv("EDGETL_CACHE", str(tmp_path / "cache"))
    a = write_rgb(tmp_path / "a.png", np.full((20, 20, 3), 10, np.uint8))
    first = cache.load_images([str(a)], PixelSpec(8, 8))
    st = a.stat()
    write_rgb(a, np.full((20, 20, 3), 200, np.uint8))  # same size on disk (PNG of a flat colour)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))  # what cp -p, rsync -t and tar x do
    assert a.stat().st_size == st.st_size and a.stat().st_mtime_ns == st.st_mtime_ns
    second = cache.load_images([str(a)], PixelSpec(8, 8))
    assert first[0, 0, 0, 0] == 10 and second[0, 0, 0, 0] == 200
    for f in (tmp_path / "cache" / "images").glob("*.npy"):
        np.save(f, np.zeros((3, 5), np.float64))  # a valid .npy of the wrong shape and dtype
    again = cache.load_images([str(a)], PixelSpec(8, 8))
    assert again.shape == (1, 8, 8, 3) and again.dtype == np.uint8 and again[0, 0, 0, 0] == 200


# ---------------------------------------------------------------------------------------------
# Models that are not classifiers, and models that must not be trusted.

def test_models_that_are_not_classifiers(colour, tmp_path):
    import keras

    inp = keras.Input((16, 16, 3))
    pose = keras.layers.Reshape((1, 17, 3))(keras.layers.Dense(51)(keras.layers.Flatten()(inp)))
    to_tflite(keras.Model(inp, pose), tmp_path / "pose.tflite")
    seg = keras.layers.Conv2D(4, 1)(inp)
    to_tflite(keras.Model(inp, seg), tmp_path / "seg.tflite")
    for name in ("pose", "seg"):
        line = one_error(run_cli("predict", tmp_path / f"{name}.tflite", colour["image"]))
        assert "is not a vector of class scores" in line, line
    features = keras.layers.ReLU()(keras.layers.Dense(1024)(keras.layers.GlobalAveragePooling2D()(inp)))
    (tmp_path / "features").mkdir()  # a folder of its own: no labels.txt beside it
    to_tflite(keras.Model(inp, features), tmp_path / "features" / "f.tflite")
    proc = run_cli("predict", tmp_path / "features" / "f.tflite", colour["image"])
    assert proc.returncode == 0 and "feature extractor" in proc.stderr, proc.stderr


def test_keras_files_load_in_safe_mode(tmp_path, colour):
    import keras

    marker = tmp_path / "lambda-ran"
    target = str(marker)
    inp = keras.Input((16, 16, 3))
    out = keras.layers.Lambda(lambda x: (open(target, "w").close(), x)[1])(inp)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(out))
    keras.Model(inp, out).save(tmp_path / "lambda.keras")
    marker.unlink(missing_ok=True)  # building the model above called the lambda once
    line = one_error(run_cli("predict", tmp_path / "lambda.keras", colour["image"]))
    assert "lambda.keras" in line and "not a loadable Keras model" in line
    assert not marker.exists(), "code inside a .keras file ran"


def test_eval_reports_skipped_files(colour, tmp_path):
    images, labels = colour_images()
    names = ["red", "green", "blue"]
    for i, (img, y) in enumerate(zip(images, labels)):
        write_rgb(tmp_path / "data" / "val" / names[y] / f"{i}.png", img)
        write_rgb(tmp_path / "data" / "train" / names[y] / f"{i}.png", img)
    (tmp_path / "data" / "val" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    proc = run_cli("eval", colour["model"], tmp_path / "data", "--json")
    doc = json.loads(proc.stdout)
    assert [Path(s["path"]).name for s in doc["skipped"]] == ["broken.png"] and doc["count"] == 12
    proc = run_cli("eval", colour["model"], tmp_path / "data")
    assert "1 file(s) skipped" in proc.stdout and "broken.png" in proc.stdout
