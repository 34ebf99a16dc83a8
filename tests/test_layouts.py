"""Datasets in the layouts people download them in: read right, or refused with the reason and the fix."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import one_error, run_cli
from helpers.images import make_shapes, write_rgb
from helpers.shared import HYMENOPTERA, needs_hymenoptera
from helpers.models import keras_mean_colour, to_tflite
from edgetl.data.audit import AuditOptions, audit
from edgetl.errors import EdgetlError


def first_line(proc) -> str:
    return proc.stdout.splitlines()[0] if proc.stdout else ""


def link_hymenoptera(root: Path, train: str, val: str) -> Path:
    """hymenoptera's photos under other folder names (symlinks: the audit follows them once)."""
    root.mkdir(parents=True)
    (root / train).symlink_to(HYMENOPTERA / "train")
    (root / val).symlink_to(HYMENOPTERA / "val")
    return root


@needs_hymenoptera
@pytest.mark.parametrize("train,val", [("train", "validation"), ("train", "valid"), ("Training", "DEV")])
def test_validation_folders_by_their_common_names(tmp_path, train, val):
    root = link_hymenoptera(tmp_path / "d", train, val)
    result = audit(root)
    assert result.counts() == {"ants": {"train": 124, "val": 70}, "bees": {"train": 121, "val": 83}}
    proc = run_cli("data", "check", root)
    assert proc.returncode == 1, proc.stderr  # the placeholder GIF is a warning
    line = first_line(proc)
    assert f"train 245 ({train}/)" in line and f"val 153 ({val}/)" in line, line
    assert "ignored" not in proc.stdout


def test_roboflow_train_valid_test(tmp_path):
    root = make_shapes(tmp_path / "rf", classes=("a", "b"), per_class=9, splits=("train", "valid", "test"), size=40)
    result = audit(root)
    assert {c: n for c, n in result.counts().items()} == {"a": {"train": 3, "val": 3, "test": 3},
                                                          "b": {"train": 3, "val": 3, "test": 3}}
    assert not result.carved and result.sources == {"train": "train/", "val": "valid/", "test": "test/"}


def test_mnist_training_testing_is_two_splits_with_val_carved_from_training(tmp_path):
    """The 70,000-PNG MNIST layout (training/<digit>/, testing/<digit>/) in small: ten classes,
    not two ("training" vs "testing"), a validation split carved out of training/, test kept."""
    rng = np.random.default_rng(0)
    for split, n in (("training", 10), ("testing", 3)):
        for digit in range(10):
            for i in range(n):
                img = rng.integers(0, 255, (28, 28), np.uint8)
                write_rgb(tmp_path / "mnist" / split / str(digit) / f"{i}.png", np.repeat(img[..., None], 3, 2))
    result = audit(tmp_path / "mnist")
    assert result.classes == [str(d) for d in range(10)]
    assert len(result.split("train")) == 80 and len(result.split("val")) == 20 and len(result.split("test")) == 30
    assert result.carved
    train_paths = {r.path for r in result.split("train") + result.split("val")}
    assert all("/training/" in p for p in train_paths)
    proc = run_cli("data", "check", tmp_path / "mnist")
    line = first_line(proc)
    assert "10 classes" in line and "val 20 (20% of training/" in line and "test 30 (testing/)" in line, line
    # 130 images under 32 px: one grouped informational line, not one warning per file
    assert proc.returncode == 0, proc.stdout
    assert "130 × small images (under 32 px): upscaled to the model's input size" in proc.stdout
    assert proc.stdout.count("tiny image") == 3


def test_batch_folders_that_hold_the_same_classes_are_refused_with_the_fix(tmp_path):
    root = tmp_path / "photos"
    for batch in ("2023", "2024"):
        make_shapes(root / batch, classes=("cats", "dogs"), per_class=4, size=40, seed=int(batch))
    proc = run_cli("data", "check", root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "2023/, 2024/ each hold the same sub-folders (cats, dogs)" in proc.stderr
    assert "0 files directly inside them, 16 one level down" in proc.stderr and "--class-depth 2" in proc.stderr
    proc = run_cli("train", root, "--weights", "none", "--out", tmp_path / "run")
    assert proc.returncode == 2 and "same sub-folders" in proc.stderr and not (tmp_path / "run").exists()
    result = audit(root, AuditOptions(class_depth=2))
    assert result.classes == ["cats", "dogs"] and len(result.records) == 16


def test_images_in_sub_folders_of_a_class_are_counted_and_said(tmp_path):
    root = make_shapes(tmp_path / "d", classes=("a", "b"), per_class=4, size=40)
    make_shapes(root / "a", classes=("indoor",), per_class=3, size=40, seed=5)
    result = audit(root)
    assert result.counts()["a"] == {"train": 6, "val": 1}
    said = [p for p in result.problems if p.kind == "images in sub-folders of a class"]
    assert len(said) == 1 and "3 of 7 files are in its sub-folders (indoor/)" in said[0].reason


def test_two_folders_for_one_split_are_refused(tmp_path):
    root = make_shapes(tmp_path / "d", classes=("a", "b"), per_class=4, splits=("train", "val", "validation"), size=40)
    with pytest.raises(EdgetlError, match="val/ and validation/ both read as the val split"):
        audit(root)


def test_a_split_folder_without_a_training_folder_names_what_it_found(tmp_path):
    root = make_shapes(tmp_path / "d", classes=("a", "b"), per_class=4, splits=("valid", "test"), size=40)
    proc = run_cli("data", "check", root)
    assert proc.returncode == 2 and "has valid/, test/ but no training folder" in proc.stderr, proc.stderr


def write_csv(tmp_path: Path) -> Path:
    """A Kaggle-style CSV beside an images/ folder: relative paths, a split column, bad rows."""
    make_shapes(tmp_path / "images", classes=("circle", "square"), per_class=12, size=40)
    lines = ["Image,Label,Split"]
    for cls in ("circle", "square"):
        for i in range(11):
            lines.append(f"images/{cls}/{cls}_{i:03d}.jpg,{cls},{'Valid' if i % 4 == 0 else 'train'}")
    lines += ["images/nowhere.jpg,circle,train", "images/circle/circle_011.jpg,,train",
              "images/square/square_011.jpg,square,holdout"]
    csv = tmp_path / "data.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def test_csv_dataset_with_relative_paths_and_bad_rows(tmp_path):
    csv = write_csv(tmp_path)
    result = audit(csv)
    assert result.layout == "csv" and result.classes == ["circle", "square"]
    assert result.counts() == {"circle": {"train": 8, "val": 3}, "square": {"train": 8, "val": 3}}
    reasons = {Path(p.path).name: p.reason for p in result.skipped}
    assert "cannot read it (No such file or directory) (data.csv line 24)" in reasons["nowhere.jpg"]
    assert reasons["circle_011.jpg"].startswith("empty label (data.csv line 25)")
    assert reasons["square_011.jpg"].startswith("unknown split value 'holdout' (data.csv line 26)")
    proc = run_cli("data", "check", csv)
    assert proc.returncode == 1 and "as a CSV, 2 classes: train 16 (rows marked train), val 6 (rows marked val)" in \
        first_line(proc), proc.stdout


def test_csv_labels_that_differ_only_in_case_are_refused(tmp_path):
    make_shapes(tmp_path / "images", classes=("cat",), per_class=4, size=40)
    (tmp_path / "d.csv").write_text("path,label\nimages/cat/cat_000.jpg,Cat\nimages/cat/cat_001.jpg, cat \n")
    proc = run_cli("data", "check", tmp_path / "d.csv")
    assert proc.returncode == 2 and "labels 'Cat' and 'cat' differ only in letter case" in proc.stderr, proc.stderr
    (tmp_path / "w.csv").write_text("path,label\nimages/cat/cat_000.jpg,tabby cat\nimages/cat/cat_001.jpg,tabby  cat\n")
    proc = run_cli("data", "check", tmp_path / "w.csv")
    assert proc.returncode == 2 and "or white space" in proc.stderr, proc.stderr
    (tmp_path / "h.csv").write_text("file,name\nx.jpg,a\n")
    proc = run_cli("data", "check", tmp_path / "h.csv")
    assert proc.returncode == 2 and "no label column in the header (file, name)" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_train_on_a_csv(tmp_path):
    csv = write_csv(tmp_path)
    proc = run_cli("train", csv, "--weights", "none", "--alpha", "0.35", "--size", "32", "--epochs", "1",
                   "--fine-tune-epochs", "0", "--no-augment", "--out", tmp_path / "run", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "as a CSV, 2 classes: train 16 (rows marked train)" in proc.stderr.splitlines()[0]
    assert (tmp_path / "run" / "labels.txt").read_text().split() == ["circle", "square"]


def test_summary_stays_one_screen_however_many_files(tmp_path):
    def lines(n: int) -> int:
        root = make_shapes(tmp_path / f"d{n}", classes=("a", "b"), per_class=5, size=40)
        for i in range(n):  # tiny images and broken files: two groups of n
            write_rgb(root / "ab"[i % 2] / f"t{i}.png", np.full((12, 12, 3), i % 250, np.uint8))
            (root / "b" / f"broken{i}.jpg").write_bytes(b"")
        proc = run_cli("data", "check", root)
        assert f"{n} × empty file" in proc.stdout, proc.stdout
        return len(proc.stdout.splitlines())

    assert lines(8) == lines(80) <= 30
    doc = json.loads(run_cli("data", "check", tmp_path / "d80", "--json").stdout)
    assert sum(p["kind"] == "empty file" for p in doc["problems"]) == 80


def colour_folder(root: Path, n: int, seed: int) -> Path:
    """A one-level folder of red, green and blue photos, n in all."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(0, 60, (24, 24, 3)).astype(np.uint8)
        img[..., i % 3] = 220
        write_rgb(root / ("red", "green", "blue")[i % 3] / f"{seed}_{i}.png", img)
    return root


@pytest.fixture(scope="module")
def colour_runs(tmp_path_factory):
    """A run folder trained on a one-level folder of colour photos (a real Keras model whose class
    is the dominant colour; model.keras, audit.json and a TFLite artifact in export/), a separate
    folder of other photos, and the same artifact copied away from its run."""
    d = tmp_path_factory.mktemp("eval_runs")
    photos, other = colour_folder(d / "photos", 30, seed=1), colour_folder(d / "other", 12, seed=2)
    run = d / "run"
    (run / "export").mkdir(parents=True)
    model = keras_mean_colour()
    model.save(run / "model.keras")
    audit(photos).save(run / "audit.json")
    (run / "labels.txt").write_text("red\ngreen\nblue\n")
    tflite = to_tflite(model, run / "export" / "model_fp32.tflite")
    (d / "elsewhere").mkdir()
    shutil.copy(tflite, d / "elsewhere" / "model.tflite")
    return run, photos, other, d / "elsewhere" / "model.tflite"


def eval_json(*args) -> dict:
    proc = run_cli("eval", *args, "--labels", args[0].parent.parent / "labels.txt" if "export" in str(args[0])
                   else args[0].parent / "labels.txt", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_eval_never_scores_what_the_run_trained_on_and_scores_a_separate_folder_whole(colour_runs):
    run, photos, other, _ = colour_runs
    trained = audit(photos)
    n_val, n_train = len(trained.split("val")), len(trained.split("train"))
    own = eval_json(run / "export" / "model_fp32.tflite", photos)
    assert own["count"] == n_val and own["left_out_trained"] == n_train and own["run"] == str(run)
    assert f"left out {n_train} the model's run trained on" in own["split_how"]
    separate = eval_json(run / "export" / "model_fp32.tflite", other)
    assert separate["count"] == 12 and separate["left_out_trained"] == 0 and separate["split"] == "folder"
    proc = run_cli("eval", run / "model.keras", other)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "scored 12 images (every image of the folder)" in first_line(proc), first_line(proc)


def test_eval_of_a_model_away_from_its_run_scores_the_whole_folder_and_says_why(colour_runs):
    _, photos, _, elsewhere = colour_runs
    (elsewhere.parent / "labels.txt").write_text("red\ngreen\nblue\n")
    doc = eval_json(elsewhere, photos)
    assert doc["count"] == 30 and doc["run"] is None and "cannot be told apart" in doc["split_how"]
    doc = eval_json(elsewhere, photos, "--split", "val")
    assert doc["count"] == 6 and "seeded split" in doc["split_how"]


@needs_hymenoptera
@pytest.mark.slow
@pytest.mark.shared
def test_eval_on_a_separate_validation_folder_agrees_with_training(hymenoptera_export, hymenoptera_run):
    """hymenoptera's val/ given on its own: every one of its 153 photos is scored, and the fp32
    artifact's accuracy there is Keras's on the run's val split, but for images its "unknown" rule
    refuses (their top class is noise: scores all near 0), which export does not compare."""
    model = hymenoptera_export.folder / "model_fp32.tflite"
    proc = run_cli("eval", model, HYMENOPTERA / "val", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["count"] == 153 and doc["left_out_trained"] == 0
    fp32 = next(c for c in hymenoptera_export.checks if c.file == "model_fp32.tflite")
    refused = 153 - fp32.classed
    assert fp32.agreement == 1.0 and abs(doc["accuracy"] - hymenoptera_export.keras_accuracy) <= refused / 153 + 1e-9


@pytest.mark.parametrize("csv_text, said", [
    ("path,label\nimg/a.jpg,circle\nimg/b.jpg,square;circle\n", "line 3 gives several labels to one image ('square;circle')"),
    ("path,label\nimg/a.jpg,circle|square\n", "line 2 gives several labels to one image ('circle|square')"),
])
def test_several_labels_in_a_label_column_are_refused_not_read_as_combined_classes(tmp_path, csv_text, said):
    """A `label` column holding ; or | could be one class whose name holds it or several labels: one
    line that says which column name reads it as multi-label, never classes named 'square;circle'."""
    path = tmp_path / "data.csv"
    path.write_text(csv_text)
    line = one_error(run_cli("data", "check", path))
    assert said in line and "name the column 'labels'" in line and str(path) in line


@pytest.mark.parametrize("csv_text", [
    "path,labels\nimg/a.jpg,circle\n",
    "filename,circle,square\nimg/a.jpg,1,0\nimg/b.jpg,1,1\n",
])
def test_a_multi_label_csv_is_read_as_multi_label(tmp_path, csv_text):
    """A `labels` column or Roboflow's one-hot columns: read as several labels per image, and said."""
    path = tmp_path / "data.csv"
    path.write_text(csv_text)
    proc = run_cli("data", "check", path)
    assert proc.stdout.startswith(f"read {path} as a multi-label dataset"), proc.stdout + proc.stderr
