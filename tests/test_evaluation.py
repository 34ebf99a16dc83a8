"""`edgetl eval` and `edgetl predict` (edgetl.evaluation) with real TFLite colour classifiers: which
images are scored, every readable file classified, the mistakes named, labels printed one way."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.cli import run_cli
from helpers.images import write_rgb
from helpers.models import keras_mean_colour, to_tflite
from edgetl.exporting.metadata import embed_tflite
from edgetl.runtime.manifest import ModelManifest
from edgetl.runtime.spec import PixelSpec


@pytest.fixture
def colour_labelled(colour, tmp_path):
    """The float TFLite colour classifier without metadata, and a labels file naming its classes."""
    labels = tmp_path / "model-labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    return colour["plain"], labels


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """A real TFLite colour classifier in a folder with the manifest training writes (its split
    settings included), and a one-level folder of 10 red, green and blue photos each."""
    d = tmp_path_factory.mktemp("colour_run")
    raw = to_tflite(keras_mean_colour(), d / "raw.tflite").read_bytes()
    model = d / "model" / "model.tflite"
    model.parent.mkdir()
    model.write_bytes(embed_tflite(raw, "colour", ModelManifest(["red", "green", "blue"], PixelSpec(16, 16, 0.0, 1.0), "tflite", "fp32")))
    (model.parent / "manifest.json").write_text(json.dumps({"labels": ["red", "green", "blue"],
                                                            "split": {"val_split": 0.2, "seed": 0}}))
    rng = np.random.default_rng(1)
    for i in range(30):
        img = rng.integers(0, 60, (24, 24, 3)).astype(np.uint8)
        img[..., i % 3] = 220
        write_rgb(d / "photos" / ("red", "green", "blue")[i % 3] / f"{i}.png", img)
    return model, d / "photos"


def test_eval_on_a_one_level_folder_away_from_its_run_scores_it_whole_and_split_val_remakes_the_split(colour_run):
    """A model with no run folder beside it cannot know its training images: auto scores the
    whole folder and says so; --split val re-makes the seeded split its manifest records."""
    model, photos = colour_run
    proc = run_cli("eval", model, photos)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "scored 30 images (every image of the folder; no run folder beside the model" in first, first
    doc = json.loads(run_cli("eval", model, photos, "--split", "val", "--json").stdout)
    assert doc["split"] == "val" and doc["count"] == 6 and "seeded split" in doc["split_how"]
    doc = json.loads(run_cli("eval", model, photos, "--split", "all", "--json").stdout)
    assert doc["count"] == 30 and "training images included" in doc["split_how"]


def test_predict_classifies_every_readable_file_and_lists_the_skipped(colour_labelled, tmp_path):
    """`predict` once stopped at the first unreadable file (exit 2, the other folders unread)."""
    model, labels = colour_labelled
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


def test_eval_lists_the_misclassified_files(colour_labelled, tmp_path):
    """A red photo filed under green is named, with what it was taken for, on the console and in --json."""
    model, labels = colour_labelled
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


def test_labels_with_commas_read_one_way_and_zero_scores_are_not_runners_up(colour_labelled, tmp_path):
    model, _ = colour_labelled
    labels = tmp_path / "labels.txt"
    labels.write_text('red, crimson\ngreen\nblue "navy"\n')
    photo = write_rgb(tmp_path / "p.png", np.full((32, 32, 3), (220, 10, 10), np.uint8))
    line = run_cli("predict", model, photo, "--labels", labels, "--top-k", "3").stdout.strip()
    assert line.startswith(f'{photo}: "red, crimson" 0.') and 'blue \\"navy\\"' not in line.split(":", 1)[0], line
    from edgetl.cli.show import scores_line

    assert scores_line([("cat", 0.9996), ("background", 0.0003), ("dog", 0.0001)]) == "cat 1.000"
    assert scores_line([("a", 0.6), ("b, c", 0.4)]) == 'a 0.600, "b, c" 0.400'
