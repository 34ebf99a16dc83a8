"""`edgetl tune` (issue 43): the grid from the registry, which candidates can train here, the quick
estimate, bad input, and one search on hymenoptera over the loopback sshd: latencies measured on
the device and cached, the over-budget candidates never trained, a stop at --max-hours, --resume,
a verified pick within budget, the chart on a page in Chromium."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgetl.models import backbones
from edgetl.registry import Registry
from edgetl.tuning import Grid, Quant, Status, Target
from edgetl.tuning.chart import pareto
from edgetl.tuning.estimate import linear_probe
from edgetl.tuning.grid import trainable
from helpers.cli import one_error, run_cli
from helpers.fake_device import fake_device_python
from helpers.images import make_shapes
from helpers.shared import HYMENOPTERA, WEIGHTS, needs_hymenoptera, needs_weights


def test_the_grid_is_every_registered_backbone_width_and_size(monkeypatch):
    grid = Grid(sizes=(96, 160))
    archs = grid.architectures()
    expected = {(name, a, s) for name, spec in backbones.BACKBONES.items() for a in spec.alphas for s in (96, 160)}
    assert {(a.backbone, a.alpha, a.size) for a in archs} == expected
    assert len(grid.candidates(archs)) == 2 * len(archs)  # int8 and fp16 of each
    # a backbone added to the registry joins the search with no change to tune
    bigger = Registry("backbone", list(backbones.BACKBONES.items()))
    bigger.register("tiny_net", backbones.BackboneSpec(
        name="tiny_net", application="MobileNetV2", default_size=96, min_size=64, base_range=(-1.0, 1.0),
        normalises_itself=False, fine_tune_at=lambda n: n // 2, alphas=(0.35,)))
    monkeypatch.setattr(backbones, "BACKBONES", bigger)
    monkeypatch.setattr("edgetl.tuning.grid.BACKBONES", bigger)
    assert [a.key for a in Grid(sizes=(48, 96)).architectures() if a.backbone == "tiny_net"] == ["tiny_net-a0.35-96"]
    assert Grid(backbones=("tiny_net",), sizes=(96,), quants=(Quant.INT8,)).candidates()[0].describe() == \
        "tiny_net at 96, int8"


@needs_weights
def test_a_weights_file_trains_only_the_backbone_it_fits(tmp_path, monkeypatch):
    archs = Grid(sizes=(96,)).architectures()
    found = trainable(archs, str(WEIGHTS))
    assert [a.key for a in found.archs] == ["mobilenet_v2-a1-96"]  # the shared file is MobileNetV2 at width 1.0
    assert len(found.skipped) == len(archs) - 1 and all("does not fit" in s.reason for s in found.skipped)
    assert trainable(archs, "none").archs == archs  # from scratch, every candidate
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache, offline: nothing to start from
    offline = trainable(archs, "imagenet")
    assert not offline.archs and "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in \
        offline.skipped[0].fix


def test_pareto_front_and_the_linear_probe():
    points = [(1.0, 0.80), (2.0, 0.90), (2.5, 0.85), (3.0, 0.95), (4.0, 0.94)]
    assert pareto(points) == [(1.0, 0.80), (2.0, 0.90), (3.0, 0.95)]
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 20))
    y = rng.integers(0, 3, 300)
    x = centres[y] + rng.normal(0, 1, (300, 20))
    assert linear_probe(x[:200], y[:200], x[200:], y[200:], 3) > 0.95  # separable classes are found
    shuffled = rng.permutation(y[:200])  # labels with nothing to learn stay near chance
    assert linear_probe(x[:200], shuffled, x[200:], y[200:], 3) < 0.6


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("tune") / "shapes", per_class=12, size=48, splits=("train", "val"))


@pytest.mark.parametrize("args, message", [
    (["--budget-ms", "0"], "--budget-ms must be a positive number"),
    (["--budget-ms", "33", "--backbones", "resnet9000"], "unknown backbone 'resnet9000'"),
    (["--budget-ms", "33", "--sizes", "big"], "--sizes 'big' is not a comma-separated list"),
    (["--budget-ms", "33", "--sizes", "8"], "--sizes must be input sizes between 32 and 1024"),
    (["--budget-ms", "33", "--formats", "int4"], "unknown value"),
    (["--budget-ms", "33", "--device", "toaster"], "unknown --device toaster"),
    (["--budget-ms", "33", "--device", "rpi"], "--device rpi needs --host"),
    (["--budget-ms", "33", "--weights", "missing.h5"], "no such weights file"),
    (["--budget-ms", "33", "--backbones", "efficientnet_b0", "--weights", str(WEIGHTS)],
     "no candidate has weights to start from here (efficientnet_b0 at 96"),
])
def test_bad_settings_are_one_line_and_write_nothing(shapes, tmp_path, args, message):
    if str(WEIGHTS) in args and not WEIGHTS.exists():
        pytest.skip(f"no shared weights at {WEIGHTS}")
    proc = run_cli("tune", shapes, *args, "--out", tmp_path / "t", env={"EDGETL_CACHE": str(tmp_path / "c")})
    assert message in one_error(proc)
    assert not (tmp_path / "t").exists() and not (tmp_path / "c").exists()


def test_a_full_folder_or_an_unfinished_resume_is_refused(shapes, tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "mine.txt").write_text("x")
    proc = run_cli("tune", shapes, "--budget-ms", "33", "--out", tmp_path / "t", "--weights", "none")
    assert "the --out folder is not empty" in one_error(proc)
    proc = run_cli("tune", shapes, "--budget-ms", "33", "--out", tmp_path / "u", "--resume", "--weights", "none")
    assert "no search to resume here" in one_error(proc)
    proc = run_cli("tune", shapes, "--budget-ms", "33", "--resume", "--weights", "none")
    assert "--resume needs --out" in one_error(proc)
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "tune.json").write_text('{"data": 3}')
    proc = run_cli("tune", shapes, "--budget-ms", "33", "--out", tmp_path / "v", "--resume", "--weights", "none")
    assert "cannot read this search's record" in one_error(proc)


def test_a_budget_no_candidate_meets_names_the_fastest(shapes, tmp_path):
    """Measured for real on this machine: no network answers in a microsecond, so the verdict does
    not depend on how fast or busy the machine is."""
    proc = run_cli("tune", shapes, "--budget-ms", "0.001", "--sizes", "32", "--backbones", "mobilenet_v2",
                   "--alphas", "0.35", "--formats", "int8", "--weights", "none", "--bench-seconds", "0.2",
                   "--out", tmp_path / "t", env={"EDGETL_CACHE": str(tmp_path / "c")})
    line = one_error(proc)
    assert "no candidate runs within 0.001 ms on this machine: the fastest is mobilenet_v2 alpha 0.35 at 32, int8 at" in line
    assert "raise --budget-ms" in line
    record = json.loads((tmp_path / "t" / "tune.json").read_text())
    assert [r["status"] for r in record["rows"]] == ["over budget"] and record["rows"][0]["latency_ms"] > 0.001
    assert not (tmp_path / "t" / "runs").exists()  # nothing trained
    assert (tmp_path / "t" / "tune.html").is_file() and (tmp_path / "t" / "tune.png").is_file()


@pytest.mark.ssh
def test_an_unreachable_device_is_said_before_anything_is_converted(ssh_server, shapes, tmp_path):
    proc = run_cli("tune", shapes, "--budget-ms", "33", "--device", "rpi", "--host", "nohost", "--ssh-config",
                   ssh_server.config, "--weights", "none", "--out", tmp_path / "t", env={"EDGETL_CACHE": str(tmp_path / "c")})
    assert "nohost: cannot connect over SSH" in one_error(proc)
    assert not (tmp_path / "c").exists() and not (tmp_path / "t").exists()


@pytest.mark.slow
@pytest.mark.ssh
@needs_weights
@needs_hymenoptera
def test_tune_on_hymenoptera_over_ssh(ssh_server, tmp_path, monkeypatch):
    """The search as a user runs it, on the loopback sshd with a TensorFlow-free device Python: the
    latencies measured there first (in this process, into the cache the command reads), the budget
    set between the small and the large input size, so the large one must be dropped untrained."""
    from edgetl.tuning.latency import LatencyCache, measure

    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("EDGETL_CACHE", str(cache_dir))
    device_python = str(fake_device_python(tmp_path / "dev"))
    target = Target("rpi", "mypi", remote_python=device_python, ssh_config=str(ssh_server.config))
    grid = Grid(backbones=("mobilenet_v2",), alphas=(1.0,), sizes=(96, 224))
    latencies = measure(grid.candidates(), target, 2, LatencyCache(), seconds=0.5)
    assert set(latencies) == {c.key for c in grid.candidates()} and all(v.p50_ms > 0 for v in latencies.values())
    assert {v.device["target"] for v in latencies.values()} == {"ssh:mypi"}  # measured on the device
    small = max(v.p50_ms for k, v in latencies.items() if "-96-" in k)
    large = min(v.p50_ms for k, v in latencies.items() if "-224-" in k)
    assert large > 1.5 * small  # 5.4 times the pixels
    budget = math.sqrt(small * large)
    cached = (cache_dir / "tune" / "latency.json").read_bytes()

    out = tmp_path / "search"
    common = ["--budget-ms", f"{budget:.3f}", "--device", "rpi", "--host", "mypi", "--ssh-config", ssh_server.config,
              "--remote-python", device_python, "--backbones", "mobilenet_v2", "--alphas", "1.0", "--sizes", "96,224",
              "--weights", WEIGHTS, "--finalists", "1", "--epochs", "1", "--fine-tune-epochs", "0",
              "--bench-seconds", "0.5", "--out", out]
    env = {"EDGETL_CACHE": str(cache_dir)}
    stopped = run_cli("tune", HYMENOPTERA, *common, "--max-hours", "0.00001", env=env)
    assert stopped.returncode == 1, stopped.stderr[-2000:]
    assert "nothing chosen: --max-hours 1e-05 reached" in stopped.stdout
    assert (cache_dir / "tune" / "latency.json").read_bytes() == cached  # benched nothing again
    record = json.loads((out / "tune.json").read_text())
    over = {r["size"] for r in record["rows"] if r["status"] == Status.OVER_BUDGET}
    assert over == {224} and not (out / "runs").exists()

    done = run_cli("tune", HYMENOPTERA, *common, "--resume", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    first = done.stdout.splitlines()[0]
    assert first.startswith("mobilenet_v2 alpha 1 at 96, ") and f"on mypi (budget {budget:.3f}" in first
    record = json.loads((out / "tune.json").read_text())
    chosen = [r for r in record["rows"] if r["status"] == Status.CHOSEN]
    assert len(chosen) == 1 and chosen[0]["device_ms"] <= budget and 0.5 < chosen[0]["accuracy"] <= 1
    assert [p.name for p in (out / "runs").iterdir()] == ["mobilenet_v2-a1-96"]  # 224 never trained
    run = Path(chosen[0]["run"])
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    shipped = next(a for a in manifest["artifacts"] if Path(a["file"]).name == Path(chosen[0]["artifact"]).name)
    assert shipped["verified"] and Path(chosen[0]["artifact"]).is_file()
    assert {"latency", "estimate", "train mobilenet_v2-a1-96"} <= set(record["seconds"])

    from helpers.browser import browser_page

    with browser_page(bypass_csp=True) as (tab, requested):  # bypass: evaluate() is the test's script
        tab.goto((out / "tune.html").as_uri())
        text = tab.inner_text("body")
        assert record["recommendation"] in text and "over budget" in text
        assert tab.locator("#candidates tbody tr").count() == 4
        assert tab.evaluate("document.querySelector('img.chart').naturalWidth") > 0
        assert all(u.startswith(("file://", "data:")) for u in requested)
