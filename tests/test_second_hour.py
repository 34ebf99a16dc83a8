"""A new user's second hour: each thing that went wrong after the README's first steps, held fixed."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import WEIGHTS, make_shapes, needs_weights, run_cli, write_rgb
from models import keras_mean_colour, to_tflite


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory):
    """A real TFLite colour classifier (its class is the dominant colour channel) and its labels."""
    d = tmp_path_factory.mktemp("second_hour")
    model = to_tflite(keras_mean_colour(), d / "colour.tflite")
    (d / "labels.txt").write_text("red\ngreen\nblue\n")
    return model, d / "labels.txt"


def test_predict_classifies_every_readable_file_and_lists_the_skipped(colour_model, tmp_path):
    """`predict` once stopped at the first unreadable file (exit 2, the other folders unread)."""
    model, labels = colour_model
    rng = np.random.default_rng(0)
    for i, colour in enumerate(("red", "green", "blue")):
        img = rng.integers(0, 60, (24, 24, 3)).astype(np.uint8)
        img[..., i] = 220
        write_rgb(tmp_path / "photos" / colour / f"{colour}.png", img)
    (tmp_path / "photos" / "green" / "empty.jpg").write_bytes(b"")
    (tmp_path / "photos" / "green" / "phone.jpg").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    proc = run_cli("predict", model, tmp_path / "photos", "--labels", labels)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and {line.split(": ")[1].split()[0] for line in lines} == {"red", "green", "blue"}
    assert "skipped" in proc.stderr and "empty.jpg" in proc.stderr and "phone.jpg" in proc.stderr
    assert "3 image(s) classified, 2 skipped" in proc.stderr and "Traceback" not in proc.stderr
    doc = [json.loads(line) for line in run_cli("predict", model, tmp_path / "photos", "--labels", labels,
                                                 "--json").stdout.splitlines()]
    assert sum("top" in d for d in doc) == 3 and sum("error" in d for d in doc) == 2
    only_bad = run_cli("predict", model, tmp_path / "photos" / "green" / "empty.jpg", "--labels", labels)
    assert only_bad.returncode == 2 and only_bad.stderr.count("\n") == 1, only_bad.stderr  # its own one line
    assert "empty.jpg" in only_bad.stderr and "cannot read image" in only_bad.stderr
    both_bad = run_cli("predict", model, tmp_path / "photos" / "green" / "empty.jpg",
                       tmp_path / "photos" / "green" / "phone.jpg", "--labels", labels)
    assert both_bad.returncode == 2 and both_bad.stderr.count("\n") == 1, both_bad.stderr
    assert "none of the 2 files could be read as an image" in both_bad.stderr


@pytest.mark.parametrize("line,named", [("epochs: five", "'epochs: five' is not a whole number"),
                                        ("lr: fast", "'lr: fast' is not a number"),
                                        ("augment: 3", "'augment: 3' is not true or false"),
                                        ("epochs: true", "'epochs: True' is not a whole number")])
def test_a_bad_value_in_a_yaml_config_names_the_key_and_type(tmp_path, line, named):
    """`epochs: five` once gave `error: TypeError: '>=' not supported ...`, exit 1."""
    (tmp_path / "c.yaml").write_text(f"data: {tmp_path}\n{line}\n")
    proc = run_cli("train", "--config", tmp_path / "c.yaml")
    assert proc.returncode == 2 and named in proc.stderr and "c.yaml" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_exporting_a_run_that_is_training_or_interrupted_says_which(tmp_path):
    """Both once said `no such run folder` (the run lives at .NAME.incomplete until it finishes)."""
    import fcntl
    import os

    work = tmp_path / "runs" / ".exp.incomplete"
    work.mkdir(parents=True)
    proc = run_cli("export", tmp_path / "runs" / "exp")
    assert proc.returncode == 2 and "interrupted" in proc.stderr and "edgetl train --resume" in proc.stderr, proc.stderr
    fd = os.open(work / ".edgetl.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what a running `edgetl train` holds
    try:
        proc = run_cli("export", tmp_path / "runs" / "exp")
        assert proc.returncode == 2 and "still training" in proc.stderr, proc.stderr
    finally:
        os.close(fd)


@pytest.mark.slow
def test_a_file_in_two_classes_is_left_out_and_training_says_so(tmp_path):
    """`data check` flagged `dup.jpg: same file as daisy/2.jpg but in another class`, and `train`
    trained on both labels without a word."""
    from conftest import make_shapes
    from edgetl.data.audit import audit

    root = make_shapes(tmp_path / "d", classes=("daisy", "rose"), per_class=6, size=40)
    (root / "rose" / "dup.jpg").write_bytes((root / "daisy" / "daisy_002.jpg").read_bytes())
    result = audit(root)
    assert not any(r.path.endswith(("dup.jpg", "daisy_002.jpg")) for r in result.records)
    left = {p.path.rsplit("/", 1)[1] for p in result.skipped}
    assert left == {"dup.jpg", "daisy_002.jpg"}
    proc = run_cli("train", root, "--weights", "none", "--alpha", "0.35", "--size", "32", "--epochs", "1",
                   "--fine-tune-epochs", "0", "--no-augment", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 file(s) skipped by the audit" in proc.stderr and "cannot be right in both" in proc.stderr


@pytest.mark.slow
def test_a_batch_larger_than_the_dataset_is_capped_and_said(tmp_path):
    """`--batch-size 512` on 30 photos padded every short batch to 512 (7 GB)."""
    import yaml

    from conftest import make_shapes

    root = make_shapes(tmp_path / "d", classes=("a", "b"), per_class=6, size=40)
    proc = run_cli("train", root, "--weights", "none", "--alpha", "0.35", "--size", "32", "--epochs", "1",
                   "--fine-tune-epochs", "0", "--no-augment", "--batch-size", "512", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--batch-size 512 is larger than the 10 training images; using 10" in proc.stderr
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["batch_size"] == 10


@pytest.mark.slow
def test_training_shows_a_bar_within_each_epoch_on_a_terminal(tmp_path):
    """A first epoch of minutes printed nothing until it ended; under a terminal (a real pty, through
    util-linux's `script`) a bar with the step, images/s and time left is drawn within it."""
    import shlex
    import shutil
    import subprocess
    import sys

    from conftest import make_shapes

    if not shutil.which("script"):
        pytest.skip("util-linux's `script` is not installed")
    root = make_shapes(tmp_path / "d", classes=("a", "b"), per_class=40, size=40)
    command = shlex.join([sys.executable, "-m", "edgetl", "train", str(root), "--weights", "none", "--alpha", "0.35",
                          "--size", "32", "--epochs", "1", "--fine-tune-epochs", "0", "--no-augment", "--batch-size",
                          "4", "--out", str(tmp_path / "run")])
    proc = subprocess.run(["script", "-q", "-e", "-c", command, str(tmp_path / "typescript")], capture_output=True,
                          text=True, timeout=600, env=dict(__import__("os").environ, COLUMNS="120"))
    assert proc.returncode == 0, proc.stdout[-2000:]
    screen = (tmp_path / "typescript").read_text(errors="replace")
    assert "epoch 1" in screen and "images/s" in screen and "/16" in screen, screen[-2000:]


@pytest.fixture
def small_disk(tmp_path):
    """A real 1.5 MB file system (tmpfs), where a run's first whole-model checkpoint does not fit."""
    import subprocess

    where = tmp_path / "small"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.slow
@pytest.mark.shared
def test_a_full_disk_names_where_and_how_to_go_on(small_disk, tmp_path):
    """A full disk once ended training with `error: OSError: [Errno 28] No space left on device`."""
    from conftest import WEIGHTS, make_shapes

    if not WEIGHTS.exists():
        pytest.skip(f"no shared weights at {WEIGHTS}")
    data = make_shapes(tmp_path / "d", classes=("a", "b"), per_class=6, size=40, splits=("train", "val"))
    run = small_disk / "run"
    # the head's checkpoints (a few KB) fit; the whole model's, at the end of stage 1, does not
    proc = run_cli("train", data, "--weights", WEIGHTS, "--size", "32", "--epochs", "1", "--fine-tune-epochs", "1",
                   "--no-augment", "--out", run)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "no space left on the disk while writing the run" in line and str(small_disk) in line, line
    assert f"edgetl train --resume {run}" in line, line
    # nothing half-kept beyond the resumable run
    assert [p.name for p in small_disk.iterdir()] == [".run.incomplete"]


@pytest.mark.parametrize("args, said", [
    (["--alpha", "0.6"], "--alpha 0.6 is not available for mobilenet_v2 — choose one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4"),
    (["--size", "20"], "--size 20 is below the mobilenet_v2 minimum of 32"),
    (["--backbone", "mobilenet_v3_small", "--alpha", "0.5"], "--alpha 0.5 is not available for mobilenet_v3_small"),
])
def test_options_are_checked_before_anything_is_read(tmp_path, args, said):
    """A backbone's sizes and widths are checked first: one line, exit 2, no dataset read and no run folder."""
    data = make_shapes(tmp_path / "data", per_class=4, size=32)
    proc = run_cli("train", data, "--weights", "none", *args, "--out", tmp_path / "run")
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {said}") and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


@needs_weights
@pytest.mark.slow
def test_weights_of_another_backbone_are_one_line_naming_the_one_they_fit(tmp_path):
    """EfficientNetB0 given MobileNetV2's weights: no Keras warning per layer, one line saying which
    backbone the file fits, before the dataset is read."""
    data = make_shapes(tmp_path / "data", per_class=4, size=32)
    proc = run_cli("train", data, "--backbone", "efficientnet_b0", "--weights", WEIGHTS, "--size", "32",
                   "--out", tmp_path / "run")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr == (f"error: {WEIGHTS}: these weights do not fit efficientnet_b0; they fit --backbone mobilenet_v2 "
                           "--alpha 1.0 — train with --backbone mobilenet_v2 --alpha 1.0\n")
    assert not (tmp_path / "run").exists()


def test_a_bad_file_has_one_reason_in_every_checker(colour_model, tmp_path):
    """HEIC named .jpg, a corrupt JPEG and a real .heic: `data check` and `predict` give the same reason."""
    model, _ = colour_model
    photos = tmp_path / "photos" / "red"
    photos.mkdir(parents=True)
    write_rgb(photos / "ok.png", np.full((40, 40, 3), (200, 10, 10), np.uint8))
    (photos / "phone.jpg").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 500)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x13" * 900 + b"\xff\xd9")
    (photos / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 200)
    audit = json.loads(run_cli("data", "check", tmp_path / "photos", "--json").stdout)
    reasons = {p["path"].rsplit("/", 1)[-1]: p["reason"] for p in audit["problems"]}
    for name in ("phone.jpg", "broken.jpg", "photo.heic"):
        proc = run_cli("predict", model, photos / name)
        assert proc.returncode == 2 and f"cannot read image: {reasons[name]}" in proc.stderr, (name, reasons, proc.stderr)
    assert reasons["phone.jpg"].startswith("unsupported format heic/avif")
    assert reasons["photo.heic"].startswith("not an image extension (.heic)")


def test_eval_lists_the_misclassified_files(colour_model, tmp_path):
    """A red photo filed under green is named, with what it was taken for, on the console and in --json."""
    model, labels = colour_model
    colours = {"red": (200, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 200)}
    for name, rgb in colours.items():
        for i in range(3):
            write_rgb(tmp_path / "data" / name / f"{name}{i}.png", np.full((32, 32, 3), rgb, np.uint8))
    write_rgb(tmp_path / "data" / "green" / "misfiled.png", np.full((32, 32, 3), (210, 30, 25), np.uint8))
    doc = json.loads(run_cli("eval", model, tmp_path / "data", "--labels", labels, "--json").stdout)
    assert [(m["path"].rsplit("/", 1)[-1], m["true"], m["predicted"]) for m in doc["mistakes"]] == [
        ("misfiled.png", "green", "red")]
    said = run_cli("eval", model, tmp_path / "data", "--labels", labels).stdout
    assert "1 misclassified, most confident first:" in said and "misfiled.png: green taken for red 0." in said, said


def test_labels_with_commas_read_one_way_and_zero_scores_are_not_runners_up(colour_model, tmp_path):
    model, _ = colour_model
    labels = tmp_path / "labels.txt"
    labels.write_text('red, crimson\ngreen\nblue "navy"\n')
    photo = write_rgb(tmp_path / "p.png", np.full((32, 32, 3), (220, 10, 10), np.uint8))
    line = run_cli("predict", model, photo, "--labels", labels, "--top-k", "3").stdout.strip()
    assert line.startswith(f'{photo}: "red, crimson" 0.') and 'blue \\"navy\\"' not in line.split(":", 1)[0], line
    from edgetl.cli import scores_line

    assert scores_line([("cat", 0.9996), ("background", 0.0003), ("dog", 0.0001)]) == "cat 1.000"
    assert scores_line([("a", 0.6), ("b, c", 0.4)]) == 'a 0.600, "b, c" 0.400'
