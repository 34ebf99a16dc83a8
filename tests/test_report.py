"""The run report opened in a real browser, TensorBoard logs, and a quiet console."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np

import pytest

from helpers.browser import browser_page, not_blank
from helpers.cli import run_cli
from helpers.images import make_shapes

BANNERS = ("absl::InitializeLog", "oneDNN custom operations", "Created TensorFlow Lite XNNPACK delegate",
           "Downloading data from", "cpu_feature_guard", "fully_quantize", "Statistics for quantized inputs")


@pytest.fixture(scope="module")
def reported_run(shapes_export, tmp_path_factory):
    """The shapes run, exported and benchmarked, copied so this module can add to it."""
    run = tmp_path_factory.mktemp("report") / "exp"
    shutil.copytree(shapes_export.folder.parent, run)
    models = sorted((run / "export").glob("*.tflite"))
    proc = run_cli("bench", *models, "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    return run


@pytest.mark.slow
def test_report_opens_offline_with_accuracy_artifacts_and_ship_line(reported_run):
    page_file = reported_run / "report.html"
    assert page_file.is_file() and (reported_run / "export" / "bench.json").is_file()
    metrics = json.loads((reported_run / "metrics.json").read_text())
    export = json.loads((reported_run / "export" / "report.json").read_text())
    artifacts = {c["file"] for c in export["checks"] + export["int8_fallback"]}
    with browser_page() as (page, requested):
        page.goto(page_file.as_uri())
        page.wait_for_selector("#ship-this")
        assert page.inner_text("#val-accuracy") == f"{metrics['val_accuracy']:.4f}"
        ship = page.inner_text("#ship-this")
        assert "Ship this" in ship and any(a in ship for a in artifacts), ship
        export_rows = page.eval_on_selector_all("#export-table tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
        assert sorted(export_rows) == sorted(artifacts), export_rows  # one row per artifact
        assert page.locator("text=Benchmark").count() >= 1 and page.locator("text=p50 latency").count() >= 1
        broken = page.eval_on_selector_all("img", "imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0).length")
        assert broken == 0
        # where int8 loses accuracy: the layers adding most error, largest first, as report.json ranks them
        added = sorted((e["added"] for e in export["int8_layers"]["layers"]), reverse=True)[:8]
        shown = page.eval_on_selector_all("#int8-layers tbody tr", "rows => rows.map(r => parseFloat(r.cells[2].dataset.v))")
        assert shown == pytest.approx(added, abs=1e-6)
        # confidence: the reliability diagram and the accuracy-coverage curve, and the chosen threshold
        conf = metrics["confidence"]["manifest"]
        assert page.locator("#confidence ~ .charts svg.chart").count() >= 2
        table = page.inner_text("#confidence ~ .scroll table")
        assert f"{conf['threshold']:.3f}" in table and f"{conf['temperature']:.3f}" in table, table
        # each chart's legend swatches are drawn in their line's own colour (a CSS rule once made them all grey)
        legends = page.eval_on_selector_all("svg.chart", "cs => cs.map(c => [...c.querySelectorAll('.swatch')]"
                                                         ".map(r => getComputedStyle(r).fill))")
        multi = [fills for fills in legends if len(fills) > 1]
        assert multi and all(len(set(fills)) == len(fills) for fills in multi), legends
        # sorting a table by a column reorders its rows
        page.locator("#export-table th", has_text="size MB").click()
        sizes = page.eval_on_selector_all("#export-table tbody tr", "rows => rows.map(r => parseFloat(r.cells[6].dataset.v))")
        assert sizes == sorted(sizes) and len(set(sizes)) > 1
        shot = page.screenshot(full_page=True)
    assert not_blank(shot)
    assert all(u.startswith(("file:", "data:")) for u in requested), [u for u in requested if not u.startswith("file:")]


@pytest.mark.slow
def test_a_later_one_model_bench_keeps_the_comparison_and_ship_this_compares_like_for_like(reported_run, tmp_path):
    """A one-model check at two threads adds its row; the earlier 1-thread rows stay, and "Ship
    this" quotes the 1-thread benchmark with its source, never export's figure for one file and
    the benchmark's for another."""
    run = tmp_path / "exp"
    shutil.copytree(reported_run, run)
    before = json.loads((run / "export" / "bench.json").read_text())
    proc = run_cli("bench", run / "export" / "model_fp32.tflite", "--runs", "3", "--warmup", "1", "--min-seconds", "0",
                   "--threads", "2")
    assert proc.returncode == 0, proc.stderr
    after = json.loads((run / "export" / "bench.json").read_text())
    assert [(r["model"], r["threads"]) for r in after] == [(r["model"], r["threads"]) for r in before] + [("model_fp32.tflite", 2)]
    with browser_page() as (page, _):
        page.goto((run / "report.html").as_uri())
        ship = page.inner_text("#ship-this")
        benched = {r["model"]: r["p50_ms"] for r in before}
        tflite = next(line for line in ship.splitlines() if "TFLite" in line)
        name = next(m for m in benched if m in tflite)
        assert f"{benched[name]:.2f} ms, edgetl bench, 1 thread, p50 here" in tflite, tflite
        assert benched[name] == min(v for m, v in benched.items() if m.endswith(".tflite")), (benched, tflite)
        assert page.locator("#bench-table tbody tr").count() == len(after)


@pytest.mark.slow
def test_report_on_a_phone_and_runs_side_by_side(reported_run, tmp_path):
    other = tmp_path / "exp2"
    shutil.copytree(reported_run, other)
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["val_accuracy"] /= 2  # a worse run, so the first one's accuracy is the column's best
    (other / "metrics.json").write_text(json.dumps(metrics))
    proc = run_cli("report", reported_run, other, "--out", tmp_path / "compare.html")
    assert proc.returncode == 0, proc.stderr
    with browser_page(width=390, height=844) as (page, requested):
        page.goto((tmp_path / "compare.html").as_uri())
        rows = page.eval_on_selector_all("#compare-table tbody tr", "rows => rows.map(r => [r.cells[0].textContent, "
                                         "[...r.cells].slice(1).map(c => [c.textContent, c.className])])")
        by_label = dict((label, cells) for label, cells in rows)
        accuracy = json.loads((reported_run / "metrics.json").read_text())["val_accuracy"]
        assert by_label["val accuracy"][0] == [f"{accuracy:.4f}", "best"], rows
        config = json.loads(json.dumps(__import__("yaml").safe_load((reported_run / "config.yaml").read_text())))
        assert by_label["backbone"][0][0] == config["backbone"] and by_label["size px"][0][0] == str(config["size"])
        assert "model_int8.tflite ms" in by_label and "epochs (stage 1 + 2)" in by_label
        page.set_viewport_size({"width": 1068, "height": 800})  # every artifact's figures in view, no sideways scroll
        assert page.evaluate("(() => { const t = document.querySelector('#compare-table');"
                             " return t.scrollWidth <= t.parentElement.clientWidth; })()")
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto((reported_run / "report.html").as_uri())
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, width  # wide tables scroll inside their box; the page itself fits a phone
        assert not_blank(page.screenshot())
    assert all(u.startswith(("file:", "data:")) for u in requested)


def test_report_escapes_names_from_files(tmp_path):
    from edgetl.report import write_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("backbone: mobilenet_v2\nsize: 32\n")
    evil = "<img src=x onerror=alert(1)>"
    (run / "audit.json").write_text(json.dumps({"class_names": [evil, "b"], "classes": {evil: {"train": 1}, "b": {"train": 1}},
                                                "problems": [{"path": f"/x/{evil}.png", "reason": evil, "severity": "error"}]}))
    (run / "metrics.json").write_text(json.dumps({"val_accuracy": 0.5, "per_class": {evil: {"precision": 1, "recall": 1,
                                                                                             "support": 1}}}))
    html = write_report(run).read_text()
    assert evil not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.slow
def test_train_export_predict_live_print_no_native_banners_and_tensorboard_logs(tmp_path):
    data = make_shapes(tmp_path / "data", per_class=8, size=48)
    proc = run_cli("train", data, "--weights", "none", "--alpha", "0.35", "--size", "32", "--epochs", "2",
                   "--fine-tune-epochs", "0", "--no-augment", "--tensorboard", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    outputs = {"train": proc.stderr}
    proc = run_cli("export", tmp_path / "run", "--int8", "--max-drop", "100", "--min-agreement", "0")
    outputs["export"] = proc.stderr
    model = tmp_path / "run" / "export" / "model_fp32.tflite"
    image = next((data / "circle").iterdir())
    outputs["predict"] = run_cli("predict", model, image).stderr
    outputs["live"] = run_cli("live", model, "--source", data / "circle", "--headless", "--max-frames", "3").stderr
    for command, stderr in outputs.items():
        assert not [b for b in BANNERS if b in stderr], (command, stderr[:800])
        # any line of absl's native log format ("E0000 00:00:1796200214.641994 5327 util.cc:131] ...")
        assert not re.search(r"^[IWEF]\d{4} \d\d:\d\d:\d\d", stderr, re.M), (command, stderr[:800])
    assert "Created TensorFlow Lite XNNPACK delegate" in run_cli("--debug", "predict", model, image).stderr
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "stage1"))
    events.Reload()
    tags = set(events.Tags()["tensors"]) | set(events.Tags()["scalars"])
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= tags, tags
    assert (tmp_path / "run" / "report.html").is_file()


def test_numbers_that_are_not_numbers_never_become_markup(tmp_path):
    """A hostile device or a crafted file puts markup where a number belongs (a device's core count,
    export's image count, the epochs): the page shows it as text, and Chromium runs none of it."""
    from edgetl.report import write_report

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    evil = "<img src=x onerror=\"document.title='pwned'\">"
    (run / "config.yaml").write_text("backbone: mobilenet_v2\nsize: 32\n")
    (run / "audit.json").write_text(json.dumps({"class_names": ["a", "b"], "classes": {"a": {"train": 1}, "b": {"train": 1}},
                                                "problems": []}))
    (run / "metrics.json").write_text(json.dumps({"val_accuracy": evil, "epochs": {"stage1": evil, "stage2": 1},
                                                  "confusion": [[evil, 0], [0, 1]], "labels": ["a", "b"],
                                                  "confidence": {"manifest": {"threshold": evil, "coverage": evil,
                                                                              "precision": 0.5, "unknown_images": evil},
                                                                 "reliability_before": [{"low": evil, "high": 1, "accuracy": 1}],
                                                                 "risk_coverage": [{"coverage": evil, "accuracy": evil}],
                                                                 "roc_auc": evil}}))
    check = {"file": "model_fp32.tflite", "format": "tflite", "precision": "fp32", "accuracy": evil, "drop_points": evil,
             "agreement": 1.0, "max_prob_diff": 0.0, "size_bytes": evil, "latency_ms": evil, "passed": True}
    (run / "export" / "report.json").write_text(json.dumps({"images": evil, "keras_accuracy": evil, "checks": [check],
                                                            "held_out_warning": [evil]}))
    (run / "export" / "bench.json").write_text(json.dumps([{"model": "model_fp32.tflite", "threads": 1, "p50_ms": evil,
                                                            "device": {"target": "local", "cores": evil, "cpu": evil}}]))
    html = write_report(run).read_text()
    assert "<img src=x" not in html and "unsafe-inline'" not in html.split("script-src")[1].split('"')[0]
    with browser_page() as (page, _):
        page.goto((run / "report.html").as_uri())
        assert page.title() != "pwned" and not_blank(page.screenshot())


def test_yaml_aliases_are_refused_not_expanded(tmp_path):
    """A 'billion laughs' config.yaml once drove `report` to MemoryError; `train --config` reads the same way."""
    from edgetl.report import write_report

    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(laughs)
    html = write_report(run).read_text()
    assert "Could not read" in html and "config.yaml" in html
    (tmp_path / "c.yaml").write_text(laughs)
    proc = run_cli("train", "--config", tmp_path / "c.yaml")
    assert proc.returncode == 2 and "aliases" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_a_thousand_classes_make_a_page_a_browser_draws(tmp_path):
    """1,000 classes and 50,000 mistakes once made a 50 MB page Chromium had not drawn after 120 s:
    the matrix gives way to the most confused pairs and the thumbnails are capped, with the counts."""
    from edgetl.report import write_report

    n = 1000
    run = tmp_path / "run"
    run.mkdir()
    labels = [f"class{i:04d}" for i in range(n)]
    cm = np.zeros((n, n), int)
    np.fill_diagonal(cm, 40)
    rng = np.random.default_rng(0)
    for _ in range(50_000):
        cm[rng.integers(n), rng.integers(n)] += 1
    (run / "metrics.json").write_text(json.dumps({
        "val_accuracy": 0.5, "confusion": cm.tolist(),
        "per_class": {c: {"precision": 0.5, "recall": 0.5, "support": 90} for c in labels}}))
    (run / "audit.json").write_text(json.dumps({"class_names": labels, "classes": {}, "problems": []}))
    (run / "history.json").write_text(json.dumps([{"epoch": e, "stage": 1, "accuracy": 0.5, "val_accuracy": 0.5,
                                                   "loss": 1.0, "val_loss": 1.0} for e in range(2)]))
    (run / "predictions.json").write_text(json.dumps({"val": [
        {"path": str(tmp_path / f"gone{i}.jpg"), "true": i % n, "pred": (i + 1) % n, "score": 0.9} for i in range(50_000)]}))
    page = write_report(run)
    html = page.read_text()
    assert page.stat().st_size < 2_000_000, page.stat().st_size
    assert "the 50 most frequent of" in html and "1000x1000 matrix" in html and "<table class='cm'>" not in html
    assert "most confident of 50000 mistakes are shown" in html
    with browser_page() as (p, _):
        p.goto(page.as_uri(), timeout=30000)
        assert not_blank(p.screenshot())


def test_the_report_says_which_images_came_home_from_a_device(tmp_path):
    """Frames a device doubted keep the outbox's names through harvest and labelling: a later run's
    page counts them per split and class (a class name with markup stays text)."""
    from edgetl.report import write_report

    run = tmp_path / "run"
    run.mkdir()
    evil = "<b>bees</b>"
    frame = "1796000000000000000_{}.jpg"
    records = ([{"path": f"/d/ants/{frame.format(i)}", "label": 0, "split": "train"} for i in range(3)]
               + [{"path": f"/d/{evil}/{frame.format(9)}", "label": 1, "split": "val"}]
               + [{"path": "/d/ants/photo.jpg", "label": 0, "split": "train"},
                  {"path": "/d/ants/1796_1.jpg", "label": 0, "split": "train"}])
    (run / "audit.json").write_text(json.dumps({"class_names": ["ants", evil], "records": records,
                                                "classes": {"ants": {"train": 5}, evil: {"val": 1}}, "problems": []}))
    page = write_report(run)
    with browser_page() as (p, _):
        p.goto(page.as_uri())
        said = p.inner_text("#harvested")
    assert said.startswith("4 of these images are frames a device doubted") and "train 3, val 1" in said, said
    assert f"by class: {evil} 1, ants 3" in said  # sorted by name, shown as typed
