"""`train --from RUN` and `compare`: the warm start keeps RUN's weights (head rows by class name)
and split, a removed class is refused, and the verdict tells a better model from a worse one on
the same images. The models are small MobileNetV2s trained from scratch on drawn shapes: what
is claimed here is the bookkeeping of the loop, not anything about photos."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import one_error, run_cli
from helpers.images import make_shapes

from edgetl.data.audit import AuditOptions, audit
from edgetl.errors import EdgetlError

RECIPE = dict(weights="none", alpha=0.35, size=48, fine_tune_epochs=0, augment=False, batch_size=8, lr=3e-3)


@pytest.fixture(scope="module")
def field_loop(tmp_path_factory):
    """The loop as `edgetl demo --loop` runs it: an old run barely trained (one epoch: about
    chance); a field video of fresh drawings classified by `live --capture`, which keeps the
    frames it doubts; the labelling session filing each by what was drawn; a new run trained
    --from the old one (no DATA given: the old run's, with the frames) until it learnt the shapes;
    int8 export; compare."""
    from edgetl import TrainConfig, train
    from edgetl.demo_loop import run_loop
    from helpers.images import shape_image

    root = tmp_path_factory.mktemp("loop")
    data = make_shapes(root / "data", per_class=30, size=64)
    old = train(TrainConfig(data=str(data), epochs=1, out=str(root / "old"), **RECIPE))
    said, lib = _Lines(), logging.getLogger("edgetl")
    level = lib.level
    lib.addHandler(said)
    lib.setLevel(logging.INFO)
    try:  # in this process: a second TensorFlow start would cost more than the training
        summary = run_loop(old.path, old.path / "model.keras", kinds=["circle", "square", "triangle"],
                           draw=lambda kind, rng: shape_image(kind, rng, 64), per_kind=10, size=64,
                           epochs=14, patience=14, fine_tune_epochs=6, augment=False, batch_size=8)
    finally:
        lib.removeHandler(said)
        lib.setLevel(level)
    return root, data, old.path, Path(summary.new_run), said.lines, summary


class _Lines(logging.Handler):
    """The library's log lines, as the console would show them."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_new_run_keeps_the_old_split_and_says_what_came_from_where(field_loop):
    root, data, old, new, said, summary = field_loop
    assert summary.field_frames == 30 and summary.kept >= 10 and sum(summary.filed.values()) == summary.kept
    a_old = json.loads((old / "audit.json").read_text())
    a_new = json.loads((new / "audit.json").read_text())
    before = {r["sha256"]: r["split"] for r in a_old["records"]}
    after = {r["sha256"]: r["split"] for r in a_new["records"]}
    assert all(after[h] == s for h, s in before.items())  # every image the old run saw keeps its split
    fresh = [s for h, s in after.items() if h not in before]
    assert len(fresh) == summary.kept and 0 < fresh.count("val") < len(fresh) / 2
    first = next(line for line in said if line.startswith("warm start"))
    assert f"72 train and 18 val images keep their split, new: {fresh.count('train')} train, " \
           f"{fresh.count('val')} val" in first
    # without --from, the same data is split anew and old validation images move to training
    plain = audit(data, AuditOptions(seed=0))
    assert any(before.get(r.sha256) == "val" and r.split == "train" for r in plain.records)
    config = (new / "config.yaml").read_text()
    assert "from_run:" in config and "size: 48" in config  # the model's shape taken from the old run
    provenance = [json.loads(x) for x in (data / ".edgetl-provenance.jsonl").read_text().splitlines()]
    assert len(provenance) == summary.kept and all(p["model"] == "model.keras" for p in provenance)


def test_the_warm_start_copies_the_weights_and_maps_the_head_by_class_name(field_loop, tmp_path):
    """Right after the warm start, before any training: the new model's probabilities of the old
    classes are the old model's (renormalised past a new class whose row starts at zero)."""
    import keras

    from edgetl.models.backbones import build_base, build_classifier, get_backbone
    from edgetl.training.warm_start import load_into, read_warm_start
    from helpers.images import shape_image

    _, _, old, _, _ = field_loop[:5]
    ws = read_warm_start(old)
    classes = ["aardvark", "triangle", "square", "circle"]  # reordered, and a new class first
    base = build_base(get_backbone("mobilenet_v2"), 48, 0.35, "none")
    model, _ = build_classifier(get_backbone("mobilenet_v2"), base, 48, len(classes), 0.2)
    load_into(model, ws, classes)
    rng = np.random.default_rng(3)
    x = np.stack([shape_image(k, rng, 48) for k in ("circle", "square", "triangle")]).astype(np.float32)
    before = keras.saving.load_model(str(ws.model), compile=False).predict_on_batch(x)
    after = model.predict_on_batch(x)
    mapped = after[:, [classes.index(c) for c in ws.classes]]
    np.testing.assert_allclose(mapped / mapped.sum(axis=1, keepdims=True), before, atol=1e-5)
    assert np.all(after[:, 0] < after.max(axis=1))


def test_compare_proves_the_trained_run_better_and_the_reverse_worse(field_loop):
    from edgetl.comparison import Verdict, compare

    _, _, old, new, _ = field_loop[:5]
    forward = compare(old, new)
    assert forward.shared.images == 18 and forward.left_out == 0 and forward.fresh.images >= 1
    assert forward.verdict == Verdict.BETTER, forward.line
    assert forward.line.startswith("better: ") and forward.shared.gained > forward.shared.lost
    backward = compare(new, old)  # judged on NEW's validation images: the 18 and the new ones
    assert backward.verdict == Verdict.WORSE and backward.shared.images == 18 + forward.fresh.images
    from typer.testing import CliRunner

    from edgetl.cli.app import app

    said = CliRunner().invoke(app, ["compare", str(old), str(new)])  # the command's table, in this process
    assert said.exit_code == 0 and said.output.strip().splitlines()[-1].startswith("better: "), said.output
    assert json.loads((new / "comparison.json").read_text())["verdict"] == "better"  # kept with the new run
    page = run_cli("report", old, new, "--out", new.parent / "side.html")
    assert page.returncode == 0, page.stderr[-2000:]
    from helpers.browser import browser_page

    with browser_page() as (tab, requested):
        for html in (new.parent / "side.html", new / "report.html"):  # the side-by-side page and the run's own
            tab.goto(html.as_uri())
            assert f"Compared with {old}: better: " in tab.inner_text("body")
        assert all(u.startswith("file://") for u in requested)


def test_a_removed_class_or_another_model_shape_is_refused(field_loop, tmp_path):
    root, data, old, _, _ = field_loop[:5]
    fewer = tmp_path / "fewer"
    shutil.copytree(data, fewer)
    shutil.rmtree(fewer / "square")
    proc = run_cli("train", fewer, "--from", old, "--out", tmp_path / "r")
    assert "class 'square' of the run is not in the data" in one_error(proc)
    proc = run_cli("train", data, "--from", old, "--size", "64", "--out", tmp_path / "r")
    assert "its size is 48, not 64" in one_error(proc)
    proc = run_cli("train", data, "--from", tmp_path, "--out", tmp_path / "r")
    assert "not a run folder" in one_error(proc)
    assert not (tmp_path / "r").exists()


def test_images_to_decide_grows_with_a_closer_split():
    from edgetl.comparison import images_to_decide
    from edgetl.exporting.gate import mcnemar_p

    assert images_to_decide(100, 3, 3) is None and images_to_decide(100, 0, 0) is None
    near, far = images_to_decide(100, 4, 6), images_to_decide(100, 1, 6)
    assert near > far > 0
    m = 10 * near // 100  # the discordant pairs at that size, in the same proportions
    assert mcnemar_p(int(m * 0.6 + 0.999), m - int(m * 0.6 + 0.999)) < 0.06


def test_compare_refuses_what_it_cannot_judge(tmp_path):
    proc = run_cli("compare", tmp_path / "a", tmp_path / "b")
    assert "no such run folder or model file" in one_error(proc)
    (tmp_path / "m.tflite").write_bytes(b"x")
    proc = run_cli("compare", tmp_path / "m.tflite", tmp_path / "m.tflite")
    assert "not a model of a run folder" in one_error(proc)
    with pytest.raises(EdgetlError):
        from edgetl.comparison import compare

        compare(tmp_path, tmp_path)


def _device(ssh_server, tmp_path):
    from helpers.fake_device import fake_device_python

    return {"config": ssh_server.config, "dir": tmp_path / "device" / "deploy", "python": fake_device_python(tmp_path / "dev")}


def _deploy(device, *args):
    return run_cli("deploy", *args, "--host", "mypi", "--ssh-config", device["config"], "--remote-dir", device["dir"],
                   "--remote-python", device["python"])


@pytest.mark.ssh
def test_deploy_if_better_ships_the_better_model_and_refuses_the_worse(field_loop, ssh_server, tmp_path):
    """Over the loopback sshd: the device runs the old run's export; the new run's replaces it
    (proven better); the old one is then refused (proven worse) and the device keeps the new one."""
    from edgetl.exporting.formats import Gates
    from edgetl.exporting.pipeline import ExportOptions, export

    _, _, old, new, _ = field_loop[:5]
    # the old run's int8, gates open: the point is which model is judged better (the loop exported the new one's)
    export(old, ExportOptions(formats=["int8"], gates=Gates(max_drop=100, min_agreement=0)))
    device = _device(ssh_server, tmp_path)
    old_model, new_model = old / "export" / "model_int8.tflite", new / "export" / "model_int8.tflite"
    first = _deploy(device, old_model, "--if-better")
    assert first.returncode == 0 and "nothing is deployed there yet" in first.stdout, first.stderr[-2000:]
    better = _deploy(device, new_model, "--if-better")
    assert better.returncode == 0, better.stderr[-2000:]
    assert "deploying: better: " in better.stdout, better.stdout
    assert (device["dir"] / "model.tflite").read_bytes() == new_model.read_bytes()
    worse = _deploy(device, old_model, "--if-better")
    assert worse.returncode == 1 and "not deployed: worse: " in worse.stdout
    assert (device["dir"] / "model.tflite").read_bytes() == new_model.read_bytes()
    (tmp_path / "elsewhere").mkdir()
    unknown = _deploy(device, old_model, "--if-better", "--than", tmp_path / "elsewhere")
    assert "runs a model (sha256" in one_error(unknown)


def test_frames_without_the_devices_scores_are_guessed_by_the_runs_model(field_loop, tmp_path):
    """A folder of plain images (no score notes) labelled with --run: the run's model guesses each
    frame, and the page lists them most doubtful first."""
    from edgetl.labelling import open_session
    from helpers.images import shape_image

    _, data, old, _, _ = field_loop[:5]
    rng = np.random.default_rng(11)
    folder = tmp_path / "plain"
    folder.mkdir()
    import cv2

    for i, kind in enumerate(("circle", "square", "triangle") * 2):
        cv2.imwrite(str(folder / f"{i}_{kind}.png"), shape_image(kind, rng, 64))
    session = open_session(folder, run=old, into=tmp_path / "elsewhere")
    assert all(f.guess is not None and f.model == "model.keras" for f in session.frames)
    margins = [f.guess.margin for f in session.frames]
    assert margins == sorted(margins) and session.dataset.classes == ["circle", "square", "triangle"]
