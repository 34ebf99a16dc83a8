"""Training: the quality bar on real data, both backbones, BatchNorm, resume, strategy, bad input."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import run_cli
from helpers.images import make_shapes

RUN_FILES = {"model.keras", "labels.txt", "config.yaml", "metrics.json", "history.png", "confusion_matrix.png",
             "train.log", "manifest.json", "audit.json"}


@pytest.mark.slow
@pytest.mark.shared
def test_hymenoptera_reaches_the_quality_bar(hymenoptera_run):
    run = hymenoptera_run
    m = run.metrics
    print(f"hymenoptera val accuracy {m.val_accuracy:.4f}, seconds {m.seconds}, path: {m.stage1_path}")
    assert m.val_accuracy >= 0.95
    assert RUN_FILES <= {p.name for p in run.path.iterdir()}
    assert not any(p.name.endswith(".incomplete") for p in run.path.parent.iterdir())
    assert m.epochs["stage1"] >= 1 and set(m.per_class) == {"ants", "bees"}
    assert (run.path / "labels.txt").read_text() == "ants\nbees\n"
    log = (run.path / "train.log").read_text()
    assert "through the frozen base (augmentation on)" in log and "BatchNorm frozen" in log


@pytest.mark.slow
def test_efficientnet_from_scratch_run_folder_is_complete(efficientnet_run):
    run, metrics = efficientnet_run
    assert metrics["epochs"] == {"stage1": 2, "stage2": 1}
    assert RUN_FILES <= {p.name for p in run.iterdir()}
    assert "whole network from scratch" in (run / "train.log").read_text()


@pytest.mark.slow
def test_stage1_path_follows_augmentation_and_the_feature_cache(tmp_path):
    """A pretrained base (here: weights saved from a base built in the test): without augmentation
    the features are computed once; with it (the default) the base runs each epoch, and with
    --augment-views 5 the features of 5 augmented views are computed once; --no-feature-cache runs
    the base each epoch."""
    from edgetl.models.backbones import BACKBONES, build_base

    weights = tmp_path / "backbone.weights.h5"
    build_base(BACKBONES["mobilenet_v2"], 48, 0.35, "none").save_weights(weights)
    data = make_shapes(tmp_path / "data", per_class=12, size=48)
    from edgetl import TrainConfig, train

    # In this process: the branch is what is checked, and four CLI runs spent most of their time
    # importing TensorFlow.
    for settings, phrase in (({"augment": False}, "cached backbone features (no augmentation)"),
                             ({}, "through the frozen base (augmentation on)"),
                             ({"augment_views": 5}, "cached backbone features of 5 augmented views"),
                             ({"augment": False, "feature_cache": False}, "feature cache off")):
        out = tmp_path / "-".join(["default", *settings])
        run = train(TrainConfig(data=str(data), weights=str(weights), alpha=0.35, size=48, epochs=2,
                                fine_tune_epochs=0, out=str(out), **settings))
        assert phrase in (out / "train.log").read_text()
        assert phrase in run.metrics.stage1_path


def test_stage1_checkpoints_hold_the_head_and_restore_the_whole_model(tmp_path):
    """While the pretrained base is frozen a checkpoint holds the head alone; loaded into a model
    built afresh from the same backbone weights (what a resumed run does) it gives back the same
    model. A checkpoint that does not fit the model is one clear error."""
    from edgetl.errors import EdgetlError
    from edgetl.models.backbones import BACKBONES, build_base, build_classifier
    from edgetl.training.stages import load_checkpoint, save_checkpoint, trained_variables

    spec = BACKBONES["mobilenet_v2"]
    weights = tmp_path / "backbone.weights.h5"
    build_base(spec, 48, 0.35, "none").save_weights(weights)

    def model(classes=3):
        return build_classifier(spec, build_base(spec, 48, 0.35, str(weights)), 48, classes, 0.2)[0]

    trained = model()
    head = trained.get_layer("predictions")
    head.set_weights([np.random.default_rng(1).normal(size=w.shape).astype(np.float32) for w in head.get_weights()])
    saved = tmp_path / "last.weights.npz"
    save_checkpoint(trained_variables(trained, base_frozen=True), saved)
    assert set(np.load(saved).files) == {"predictions/kernel", "predictions/bias"}
    resumed = model()
    x = np.random.default_rng(2).uniform(0, 255, (4, 48, 48, 3)).astype(np.float32)
    assert not np.allclose(resumed.predict_on_batch(x), trained.predict_on_batch(x), atol=1e-3)
    load_checkpoint(resumed, saved)
    np.testing.assert_allclose(resumed.predict_on_batch(x), trained.predict_on_batch(x), atol=1e-6)
    with pytest.raises(EdgetlError, match="does not fit this model"):
        load_checkpoint(model(classes=5), saved)


def test_each_backbone_sees_the_range_it_was_trained_on():
    import keras

    from edgetl.models.backbones import BACKBONES, build_base, build_classifier

    image = np.linspace(0, 255, 32 * 32 * 3, dtype=np.float32).reshape(1, 32, 32, 3)
    for name, spec in BACKBONES.items():
        base = build_base(spec, 32, 1.0, "none")
        model, _ = build_classifier(spec, base, 32, 2, 0.2)
        before_base = model.layers[model.layers.index(model.get_layer(base.name)) - 1]
        feed = keras.Model(model.input, before_base.output)  # what enters the base
        seen = np.asarray(feed(image))
        if spec.normalises_itself:
            assert seen.min() == 0 and seen.max() == 255, name
            inner = [layer.name for layer in base.layers[:4]]
            assert any("rescaling" in n for n in inner), inner  # the application rescales 0..255 itself
            if name == "efficientnet_b0":
                assert any("normalization" in n for n in inner), inner
        else:
            assert np.isclose(seen.min(), -1) and np.isclose(seen.max(), 1), name


def test_fine_tuning_keeps_batchnorm_frozen():
    import keras

    from edgetl.models.backbones import BACKBONES, build_base, build_classifier, freeze_for_fine_tuning

    spec = BACKBONES["mobilenet_v2"]
    base = build_base(spec, 32, 0.35, "none")
    model, _ = build_classifier(spec, base, 32, 2, 0.2)
    at = spec.fine_tune_at(len(base.layers))
    freeze_for_fine_tuning(base, at)
    bns = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and not any(layer.trainable for layer in bns)
    assert not any(layer.trainable for layer in base.layers[:at])
    before = [np.array(layer.moving_mean) for layer in bns]
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    model.fit(x, np.eye(2)[[0, 1] * 4], epochs=1, verbose=0)
    assert all(np.array_equal(b, np.array(layer.moving_mean)) for b, layer in zip(before, bns))


def _wait_for(path: Path, predicate, timeout: float = 240) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        try:
            state = json.loads(path.read_text())
            if predicate(state):
                return state
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached the expected state")


@pytest.mark.slow
def test_interrupted_runs_resume_where_they_stopped(tmp_path):
    """Ctrl-C in stage 1 (head-only checkpoints on a pretrained base), kill -9 in stage 2 (whole-model
    checkpoints): each resume goes on from the last finished epoch."""
    from edgetl.models.backbones import BACKBONES, build_base

    weights = tmp_path / "backbone.weights.h5"
    build_base(BACKBONES["mobilenet_v2"], 48, 0.35, "none").save_weights(weights)
    data = make_shapes(tmp_path / "data", per_class=30, size=48)
    args = [sys.executable, "-m", "edgetl", "train", str(data), "--weights", str(weights), "--alpha", "0.35", "--size", "48",
            "--epochs", "4", "--fine-tune-epochs", "3", "--patience", "20", "--project", str(tmp_path / "runs")]
    work = tmp_path / "runs" / ".exp.incomplete"
    # Ctrl-C during stage 1
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(work / "state.json", lambda s: s["epoch"] >= 1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "resume with: edgetl train --resume" in stderr and "Traceback" not in stderr
    stopped_at = json.loads((work / "state.json").read_text())["epoch"]
    assert set(np.load(work / "last.weights.npz").files) == {"predictions/kernel", "predictions/bias"}
    assert not (tmp_path / "runs" / "exp").exists()
    # resume, then kill -9 during stage 2
    proc = subprocess.Popen([sys.executable, "-m", "edgetl", "train", "--resume", str(tmp_path / "runs" / "exp")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(work / "state.json", lambda s: s["stage"] == 2)
    proc.kill()
    proc.wait(timeout=60)
    state = json.loads((work / "state.json").read_text())
    assert state["stage1_done"]
    log_before = (work / "train.log").read_text()
    proc = run_cli("train", "--resume", work, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = tmp_path / "runs" / "exp"
    history = json.loads((final / "history.json").read_text())
    epochs = [h["epoch"] for h in history]
    assert epochs == list(range(len(epochs))), epochs  # no epoch redone, none skipped
    assert [h["stage"] for h in history].count(1) == 4 and [h["stage"] for h in history].count(2) == 3
    assert stopped_at >= 1
    third = (final / "train.log").read_text()[len(log_before):]
    assert "resuming after epoch" in third and "stage 1:" not in third  # stage 1 not redone
    assert run_cli("train", "--resume", final).returncode == 2  # finished runs are not resumed


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    data = make_shapes(tmp_path / "data", per_class=10, size=32)
    code = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import edgetl
r = edgetl.train(edgetl.TrainConfig(data={str(data)!r}, weights="none", alpha=0.35, size=32, epochs=2, fine_tune_epochs=1,
                          batch_size=8, strategy="mirrored", out={str(tmp_path / 'run')!r}))
print("RUN", r.path)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "MirroredStrategy over 2 device(s)" in log and "/device:CPU:1" in log


def test_yaml_config_and_cli_override(tmp_path):
    from edgetl.training import load_config

    cfg_file = tmp_path / "edgetl.yaml"
    cfg_file.write_text("data: photos\nepochs: 7\nfine-tune-epochs: 2\nbatch_size: 16\n")
    cfg = load_config(cfg_file, {"epochs": 3, "lr": None})
    assert (cfg.data, cfg.epochs, cfg.fine_tune_epochs, cfg.batch_size, cfg.lr) == ("photos", 3, 2, 16, 3e-3)
    cfg_file.write_text("epochz: 7\n")
    proc = run_cli("train", "--config", cfg_file)
    assert proc.returncode == 2 and "unknown option 'epochz'" in proc.stderr


@pytest.mark.parametrize("case", ["empty_class", "single_class", "only_corrupt", "bad_option"])
def test_bad_training_input_is_one_line_exit_2(tmp_path, case):
    data = make_shapes(tmp_path / "data", classes=("a", "b"), per_class=4, size=32)
    extra: list[str] = []
    if case == "empty_class":
        (data / "c").mkdir()
    elif case == "single_class":
        for f in (data / "b").iterdir():
            f.unlink()
        (data / "b").rmdir()
    elif case == "only_corrupt":
        for f in data.rglob("*.jpg"):
            f.write_bytes(b"\xff\xd8\xff garbage")
    else:
        extra = ["--backbone", "resnet9000"]
    proc = run_cli("train", data, "--weights", "none", "--project", tmp_path / "runs", *extra)
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_offline_imagenet_weights_error_names_cache_and_alternatives(tmp_path):
    data = make_shapes(tmp_path / "data", classes=("a", "b"), per_class=4, size=32)
    env = {"KERAS_HOME": str(tmp_path / "empty_keras"), "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    proc = run_cli("train", data, "--size", "96", "--project", tmp_path / "runs", env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")][0]
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in line
    assert "--weights PATH" in line and 'weights="none"' in line
    # the cause in words (not "Exception") and where the file comes from
    assert "could not be downloaded (Exception)" not in line and "could not be downloaded (" in line
    assert "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/" in line
    assert not (tmp_path / "runs").exists() or not any(p.name == "exp" for p in (tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_a_deterministic_run_gives_the_same_model_twice(tmp_path):
    """`--deterministic` (what the demo uses, so its stated figures hold on every run): the same
    seed and data give the same weights, byte for byte, from scratch and augmented."""
    import hashlib

    data = make_shapes(tmp_path / "data", per_class=8, size=40)
    digests = []
    for name in ("a", "b"):
        proc = run_cli("train", data, "--weights", "none", "--alpha", "0.35", "--size", "32", "--epochs", "2",
                       "--fine-tune-epochs", "0", "--batch-size", "8", "--deterministic", "--out", tmp_path / name)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "NodeDef" not in proc.stderr and "E0000" not in proc.stderr  # op determinism, quietly
        import keras

        model = keras.saving.load_model(str(tmp_path / name / "model.keras"), compile=False)
        digests.append(hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.slow
def test_metrics_count_epochs_from_one_and_small_held_out_sets_are_flagged(shapes_run, shapes_export):
    m = shapes_run.metrics
    assert m.final_epoch["epoch"] == m.epochs["stage1"] + m.epochs["stage2"]  # the last epoch, 1-based
    assert 1 <= m.best.epoch <= m.final_epoch["epoch"]
    # 30 held-out images do prove this export's relaxed gates (100 points, any agreement): no warning
    assert json.loads((shapes_export.folder / "report.json").read_text())["held_out_warning"] is None


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


@pytest.mark.slow
def test_a_file_in_two_classes_is_left_out_and_training_says_so(tmp_path):
    """`data check` flagged `dup.jpg: same file as daisy/2.jpg but in another class`, and `train`
    trained on both labels without a word."""
    from helpers.images import make_shapes
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

    from helpers.images import make_shapes

    root = make_shapes(tmp_path / "d", classes=("a", "b"), per_class=6, size=40)
    proc = run_cli("train", root, "--weights", "none", "--alpha", "0.35", "--size", "32", "--epochs", "1",
                   "--fine-tune-epochs", "0", "--no-augment", "--batch-size", "512", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--batch-size 512 is larger than the 10 training images; using 10" in proc.stderr
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["batch_size"] == 10


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
    from helpers.images import make_shapes
    from helpers.shared import WEIGHTS

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
