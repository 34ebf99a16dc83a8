"""Multi-label, end to end (issue 44), on a dataset built from real photos: 2x2 mosaics of
hymenoptera's ants and bees and scikit-image's photos of other things, each labelled with what its
tiles show. Both CSV forms and Roboflow's split folders are read alike; the bad inputs are one line
each; a run trains sigmoid outputs with each label's threshold folded in; export's artifacts answer
label sets and are judged on them; predict, eval, live and MediaPipe read the same sets."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgetl.data.audit import audit
from edgetl.errors import EdgetlError
from helpers.cli import one_error, run_cli
from helpers.mosaics import LABELS, make_mosaics
from helpers.shared import HYMENOPTERA, WEIGHTS, needs_hymenoptera, needs_weights

pytestmark = needs_hymenoptera


@pytest.fixture(scope="module")
def mosaics(tmp_path_factory) -> dict:
    return make_mosaics(HYMENOPTERA, tmp_path_factory.mktemp("mosaics"))


def test_both_csv_forms_read_the_same_label_sets(mosaics):
    listed, one_hot = audit(mosaics["list"]), audit(mosaics["one_hot"])
    assert listed.multi_label and one_hot.multi_label and listed.classes == one_hot.classes == list(LABELS)
    sets = {Path(r.path).name: [listed.classes[i] for i in r.labels] for r in listed.records}
    assert sets == {Path(r.path).name: [one_hot.classes[i] for i in r.labels] for r in one_hot.records}
    assert sets == {Path(p).name: labels for p, labels, _ in mosaics["rows"]}  # what each mosaic's tiles show
    assert {r.split for r in listed.records} == {"train", "val"}
    stats = listed.label_stats()
    assert stats["no_label"]["train"] == sum(1 for _, labels, s in mosaics["rows"] if not labels and s == "train")
    assert stats["pairs"][0]["labels"] == ["ants", "bees"] and stats["pairs"][0]["images"] > 0


def test_data_check_says_multi_label_first(mosaics):
    proc = run_cli("data", "check", mosaics["list"])
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    mean = np.mean([len(labels) for _, labels, _ in mosaics["rows"]])
    assert first.startswith(f"read {mosaics['list']} as a multi-label dataset (a CSV, path,labels): 2 labels, "
                            f"{mean:.2f} labels per image on average")
    assert "(no label)" in proc.stdout and "seen together most: ants + bees" in proc.stdout


def test_roboflow_split_folders_with_classes_csv(mosaics, tmp_path):
    for split, folder in (("train", "train"), ("val", "valid")):
        (tmp_path / folder).mkdir()
        lines = [" filename, ants, bees"]  # Roboflow's header has spaces
        for path, labels, s in mosaics["rows"]:
            if s == split:
                shutil.copy(mosaics["list"].parent / path, tmp_path / folder / Path(path).name)
                lines.append(f"{Path(path).name}, {int('ants' in labels)}, {int('bees' in labels)}")
        (tmp_path / folder / "_classes.csv").write_text("\n".join(lines) + "\n")
    result = audit(tmp_path)
    assert result.multi_label and result.classes == ["ants", "bees"]
    assert len(result.split("train")) == sum(s == "train" for _, _, s in mosaics["rows"])
    assert "valid/_classes.csv" in result.describe()


@pytest.mark.parametrize("text, message", [
    ("path,labels\na.jpg,ants;bees\na.jpg,bees\n", "lists a.jpg again with other labels"),
    ("filename,ants,bees\na.jpg,1,0\nb.jpg,1,maybe\n", "column 'bees': 'maybe' is not 0 or 1"),
    ("filename,ants,bees\na.jpg,2,0\n", "column 'ants': '2' is not 0 or 1"),
    ("path,labels\na.jpg,ants\nb.jpg,path\n", "the label 'path' is also a column name"),
    ("path,label\na.jpg,ants;bees\n", "name the column 'labels'"),
])
def test_bad_multi_label_csv_is_one_line(tmp_path, text, message):
    csv_file = tmp_path / "data.csv"
    csv_file.write_text(text)
    with pytest.raises(EdgetlError) as e:
        audit(csv_file)
    assert message in str(e.value)
    assert message in one_error(run_cli("data", "check", csv_file))


def test_a_label_in_one_split_only_is_a_grouped_warning(mosaics, tmp_path):
    rows = [(p, labels + (["wasps"] if i < 6 and s == "train" else []), s)
            for i, (p, labels, s) in enumerate(mosaics["rows"])]
    csv_file = mosaics["list"].parent / "wasps.csv"
    csv_file.write_text("path,labels,split\n" + "".join(f"{p},{'|'.join(labels)},{s}\n" for p, labels, s in rows))
    result = audit(csv_file)
    groups = {g.kind: g for g in result.groups()}
    assert "label 'wasps' is in the train split only" in groups["label in one split only"].problems[0].reason
    assert result.classes == ["ants", "bees", "wasps"]  # | separates labels as ; does


@pytest.fixture(scope="module")
def multi_run(mosaics, tmp_path_factory):
    """A multi-label MobileNetV2 on the mosaics' list CSV (detected, no flag), and its export."""
    if not WEIGHTS.exists():
        pytest.skip(f"no shared weights at {WEIGHTS}")
    from edgetl import TrainConfig, train
    from edgetl.exporting.pipeline import ExportOptions, export

    root = tmp_path_factory.mktemp("multi_run")
    run = train(TrainConfig(data=str(mosaics["list"]), weights=str(WEIGHTS), size=128, epochs=12, fine_tune_epochs=0,
                            augment=False, out=str(root / "run")))
    return run, export(run.path, ExportOptions(formats=["int8"]))


@pytest.mark.slow
@needs_weights
def test_the_run_folds_each_labels_threshold(multi_run, mosaics):
    import keras

    from edgetl.runs import RunFolder

    run, _ = multi_run
    folder = RunFolder(run.path)
    manifest = json.loads(folder.manifest.read_text())
    assert manifest["task"] == "multi-label" and manifest["artifacts"][0]["schema_version"] == 2
    thresholds = manifest["thresholds"]
    assert len(thresholds) == 2 and all(0 < t < 1 for t in thresholds)
    m = run.metrics.multi_label["val"]
    assert m["map"] > 0.6 and 0 <= m["exact_match"] <= 1 and run.metrics.val_accuracy == m["exact_match"]
    assert [x["label"] for x in m["per_label"]] == ["ants", "bees"] and folder.pr_plot.is_file()
    # the folded model's scores cross 0.5 where the raw sigmoid crosses each label's threshold
    model = keras.saving.load_model(str(folder.model), compile=False)
    head = model.get_layer("predictions")
    kernel, bias = head.get_weights()
    x = np.random.default_rng(0).normal(size=(50, kernel.shape[0])).astype(np.float32)
    folded = 1 / (1 + np.exp(-(x @ kernel + bias)))
    raw = 1 / (1 + np.exp(-(x @ kernel + bias + np.log(np.array(thresholds) / (1 - np.array(thresholds))))))
    assert np.array_equal(folded >= 0.5, raw >= np.array(thresholds))
    predictions = json.loads(folder.predictions.read_text())["val"]
    assert all(set(p["pred"]) == {i for i, s in enumerate(p["scores"]) if s >= 0.5} for p in predictions)


@pytest.mark.slow
@needs_weights
def test_the_run_page_shows_the_labels(multi_run):
    from helpers.browser import browser_page

    run, _ = multi_run
    with browser_page() as (tab, requested):
        tab.goto((run.path / "report.html").as_uri())
        text = tab.inner_text("body")
        assert "Labels (multi-label, val)" in text and "mAP (macro)" in text and "exact match" in text
        assert tab.locator("#label-figures tbody tr").count() == 2
        assert all(u.startswith(("file://", "data:")) for u in requested)


@pytest.mark.slow
@needs_weights
def test_export_judges_label_sets_and_keeps_the_task(multi_run):
    from edgetl.runtime import load

    run, exported = multi_run
    checks = {c.file: c for c in exported.checks + exported.attempts}
    fp32 = checks["model_fp32.tflite"]
    assert fp32.kept and fp32.agreement >= 0.98  # float: the same label sets as Keras
    int8 = checks["model_int8.tflite"]
    # int8 ships on the same terms as a single-label model: kept unless the evidence proves a loss
    assert int8.kept == (int8.verdict != "refused") and int8.classed == run.metrics.images["val"]
    if int8.verdict == "refused":  # only on evidence, and then a fallback is tried as for one label
        assert int8.p_value < 0.05 and len(exported.attempts) >= 1
    for c in exported.checks:
        clf = load(exported.folder / c.file) if (exported.folder / c.file).exists() else None
        if clf is not None:
            assert clf.multi_label and clf.manifest.thresholds == pytest.approx(json.loads(
                (run.path / "manifest.json").read_text())["thresholds"])


@pytest.mark.slow
@needs_weights
def test_predict_and_eval_answer_sets(multi_run, mosaics):
    from edgetl import evaluate

    run, exported = multi_run
    model = exported.folder / "model_fp32.tflite"
    val = [mosaics["list"].parent / p for p, _, s in mosaics["rows"] if s == "val"][:6]
    proc = run_cli("predict", model, *val, "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    for line in lines:
        assert set(line["scores"]) == set(LABELS) and set(line["decisions"]) == set(LABELS)
        assert line["labels"] == sorted((k for k, v in line["decisions"].items() if v), key=lambda k: -line["scores"][k])
        assert all((line["scores"][k] >= 0.5) == v for k, v in line["decisions"].items())
    plain = run_cli("predict", model, *val)
    assert all(ln.split(": ", 1)[1].startswith(tuple(LABELS) + ("none (",)) for ln in plain.stdout.splitlines())
    result = evaluate(model, mosaics["list"])
    keras_val = run.metrics.multi_label["val"]
    assert result.labels.map == pytest.approx(keras_val["map"], abs=0.02)  # the same val images, a float copy
    assert result.report.accuracy == pytest.approx(keras_val["exact_match"], abs=0.03)


@pytest.mark.slow
@needs_weights
def test_mediapipe_reads_the_same_label_sets(multi_run, mosaics):
    """MediaPipe's ImageClassifier with score_threshold 0.5 and max_results -1 (and with the
    threshold the metadata carries) returns exactly the labels edgetl answers, on the same pixels."""
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import BaseOptions, vision

    from edgetl.image import decode
    from edgetl.runtime import load

    _, exported = multi_run
    for name in ("model_fp32.tflite", "model_int8.tflite"):
        model = exported.folder / name
        if not model.exists():
            continue
        ours = load(model)
        checked = 0
        for options in (dict(max_results=-1, score_threshold=0.5), dict(max_results=-1)):
            opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model)), **options)
            with vision.ImageClassifier.create_from_options(opts) as classifier:
                for path, _, split in mosaics["rows"]:
                    if split != "val":
                        continue
                    pixels = ours.resize(decode(mosaics["list"].parent / path))
                    scores = ours.scores(pixels)[0]
                    if np.abs(scores - 0.5).min() < 1e-3:
                        continue  # on a threshold to the last digit: either answer is the same model
                    cats = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels))
                    theirs = sorted(c.category_name for c in cats.classifications[0].categories)
                    assert theirs == sorted(c.label for c in ours.present(scores)), (name, path, scores)
                    checked += 1
        assert checked > 100


@pytest.mark.slow
@needs_weights
def test_live_shows_every_present_label_and_captures_near_a_threshold(multi_run, mosaics, tmp_path):
    import cv2

    _, exported = multi_run
    video = tmp_path / "mosaics.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (128, 128))
    for path, _, split in mosaics["rows"][-40:]:
        writer.write(cv2.imread(str(mosaics["list"].parent / path)))
    writer.release()
    proc = run_cli("live", exported.folder / "model_fp32.tflite", "--source", video, "--headless", "--json",
                   "--smooth", "1", "--capture", tmp_path / "outbox", "--capture-every", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = [json.loads(line) for line in proc.stdout.splitlines() if '"frame"' in line]
    assert len(frames) == 40
    for f in frames:
        assert f["labels"] == [t["label"] for t in f["top"] if t["score"] >= 0.5]
        assert f["label"] == (", ".join(f["labels"]) or "none")
    assert any(len(f["labels"]) == 2 for f in frames) and any(not f["labels"] for f in frames)
    notes = [json.loads(p.read_text()) for p in (tmp_path / "outbox").glob("*.json")]
    assert notes and all("labels" in n for n in notes)
    near = [n for n in notes if n["reason"] == "near a threshold"]
    assert all(any(abs(t["score"] - 0.5) < 0.075 for t in n["top"]) for n in near)


def test_the_labelling_page_refuses_a_multi_label_dataset(mosaics, tmp_path):
    (tmp_path / "frames").mkdir()
    shutil.copy(mosaics["list"].parent / mosaics["rows"][0][0], tmp_path / "frames" / "f.jpg")
    proc = run_cli("label", tmp_path / "frames", "--into", mosaics["list"])
    assert "a multi-label dataset: the labelling page files each frame into one class" in one_error(proc)


@pytest.mark.slow
@needs_weights
def test_what_single_label_only_commands_say_of_a_multi_label_run(multi_run):
    run, _ = multi_run
    assert "multi-label runs are not compared yet" in one_error(run_cli("compare", run.path, run.path))
    assert "a multi-label run has a threshold per label" in one_error(run_cli("calibrate", run.path))
