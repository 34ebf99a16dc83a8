"""The run folder (edgetl.runs): one owner for every file name, the typed manifests a run and an
export folder hold (edgetl.runtime.folder_manifest) read field by field, and the folder under races
and failures (two writers, a crash mid-swap, a damaged resume)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers.cli import run_cli
from helpers.images import make_shapes
from helpers.shared import ROOT
from helpers.cli import one_error
from edgetl.errors import EdgetlError
from edgetl.runs import RunFolder, check_run_folder, run_of
from edgetl.runtime.confidence import Confidence
from edgetl.runtime.folder_manifest import ArtifactEntry, ExportManifest, GoldenAnswers, GoldenEntry, RunManifest
from edgetl.runtime.manifest import ModelManifest
from edgetl.runtime.spec import PixelSpec

PIXELS = PixelSpec(96, 96, mean=0.0, std=1.0)


def _model(fmt: str = "tflite", precision: str = "int8", sha: str | None = "ab" * 32) -> ModelManifest:
    return ModelManifest(["ants", "bees"], PIXELS, fmt, precision, backbone="mobilenet_v2", sha256=sha,
                         confidence=Confidence(0.9, 0.95, 0.96, 0.6, True, 100, temperature=1.2))


def _export(tmp_path: Path) -> ExportManifest:
    return ExportManifest(["ants", "bees"], PIXELS, [
        ArtifactEntry("model_int8.tflite", _model(), 1000, True, {"tflite_runtime": "2.14"}),
        ArtifactEntry("rejected/model_int8.onnx", _model("onnx"), 900, False, {"onnx_opset": 17})],
        backbone="mobilenet_v2", split={"val_split": 0.2, "seed": 42}, run=str(tmp_path), versions={"keras": "3"},
        golden=GoldenEntry("golden.npy", ["a.jpg"], {"model_int8.tflite": GoldenAnswers([[0.1, 0.9]], 0.02)}),
        created="2026-12-02T00:00:00+0000")


def test_an_export_manifest_reads_back_as_it_was_written(tmp_path):
    written = _export(tmp_path)
    written.write(tmp_path / "manifest.json")
    read = ExportManifest.read(tmp_path / "manifest.json")
    assert read == written
    assert [a.file for a in read.verified] == ["model_int8.tflite"]
    assert read.entry("model_int8.onnx").file == "rejected/model_int8.onnx"
    assert read.sha256("model_int8.tflite") == "ab" * 32
    assert read.sha256("other.tflite") is None
    assert not list(tmp_path.glob(".*tmp"))  # written under a temporary name, then renamed


def test_a_run_manifest_reads_back_as_it_was_written(tmp_path):
    written = RunManifest(["ants", "bees"], PIXELS, "mobilenet_v2", {"val_split": 0.2, "seed": 1}, {"keras": "3"},
                          Confidence(0.5, 0.95, 0.97, 0.7, True, 80), 1.0, [ArtifactEntry(RunFolder.model.name, _model("keras", "fp32"))])
    RunFolder(tmp_path).write_manifest(written)
    assert RunFolder(tmp_path).read_manifest() == written


@pytest.mark.parametrize("change, field", [
    (lambda d: d["artifacts"][0].update(file="../../etc/passwd"), "file"),
    (lambda d: d["artifacts"][0].update(file="/etc/passwd"), "file"),
    (lambda d: d["artifacts"][0].update(verified="yes"), "verified"),
    (lambda d: d["artifacts"][0].update(size_bytes=True), "size_bytes"),
    (lambda d: d["artifacts"][0].update(precision=8), "precision"),
    (lambda d: d["golden"].update(file="../golden.npy"), "file"),
    (lambda d: d["golden"]["expected"]["model_int8.tflite"].update(tolerance=True), "golden.expected"),
    (lambda d: d.update(artifacts={"a": 1}), "artifacts"),
    (lambda d: d.update(labels=["ants", 3]), "labels"),
])
def test_a_crafted_export_manifest_is_one_error_naming_the_field(tmp_path, change, field):
    doc = _export(tmp_path).to_dict()
    change(doc)
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(EdgetlError) as e:
        ExportManifest.read(tmp_path / "manifest.json")
    assert field in str(e.value) and e.value.path == str(tmp_path / "manifest.json"), str(e.value)


@pytest.mark.parametrize("text", ["{", "[]", '{"input": {}}'])
def test_a_damaged_run_manifest_names_the_file_and_the_fix(tmp_path, text):
    RunFolder(tmp_path).manifest.write_text(text)
    with pytest.raises(EdgetlError) as e:
        RunFolder(tmp_path).read_manifest()
    assert e.value.path == str(tmp_path / "manifest.json") and "train the run again" in (e.value.fix or "")


def test_a_run_folder_is_recognised_by_its_files(tmp_path):
    model = tmp_path / "run" / "export" / "model_int8.tflite"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"x")
    assert run_of(model) is None
    run = RunFolder(tmp_path / "run")
    run.audit.write_text("{}")
    run.model.write_bytes(b"k")
    assert run_of(model) == run.path and run.export.path == model.parent
    with pytest.raises(EdgetlError, match="not a run folder"):
        check_run_folder(run.path)
    run.config.write_text("seed: 1\n")
    assert check_run_folder(run.path) == run == RunFolder(str(run.path))  # a str path is a path
    assert RunFolder(str(run.path)).export.golden == run.path / "export" / "golden.npy"


# Every name under RUN/ and RUN/export/, each spelled once: in runs.py, or as the artifact contract's
# constant for the files beside a model (manifest.json, labels.txt, golden.npy: a device reads them too).
RUN_FILE_NAMES = {"model.keras", "audit.json", "config.yaml", "state.json", "history.json", "history.png",
                  "predictions.json", "metrics.json", "confusion_matrix.png", "reliability.png", "report.json",
                  "report.md", "report.html", "bench.json", "train.log", "demo.mp4", "demo_summary.json",
                  "manifest.json", "labels.txt", "golden.npy"}
OWNERS = {"runs.py": RUN_FILE_NAMES, "manifest.py": {"manifest.json"}, "labels.py": {"labels.txt"},
          "golden.py": {"golden.npy"}}


def test_no_run_folder_file_name_is_spelled_outside_its_owner():
    found = []
    for f in sorted((ROOT / "edgetl").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Constant) and node.value in RUN_FILE_NAMES - OWNERS.get(f.name, set()):
                found.append(f"{f.relative_to(ROOT)}:{node.lineno}: {node.value}")
    assert not found, found


# Run folders and exports under races and failures.

def test_concurrent_auto_named_runs_get_distinct_folders(tmp_path):
    from edgetl import runs

    made: list[Path] = []
    threads = [threading.Thread(target=lambda: made.append(runs.new_run(tmp_path, "exp"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in made}) == 8


def test_a_second_writer_of_one_run_gets_a_clear_error(tmp_path):
    from edgetl import runs
    from edgetl.errors import EdgetlError

    with runs.locked(tmp_path, "an export"):
        code = ("from edgetl import runs; from pathlib import Path\n"
                f"with runs.locked(Path({str(tmp_path)!r}), 'an export'): pass\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode != 0 and "another edgetl process is writing an export" in proc.stderr
        with pytest.raises(EdgetlError):
            with runs.locked(tmp_path, "an export"):  # a second open file description, same process
                pass
    assert not (tmp_path / runs.LOCK).exists()  # released: no lock file left behind
    moving = tmp_path / ".run.incomplete"
    with runs.locked(moving, "this training run"):
        moving.rename(tmp_path / "run")  # a run folder is renamed into place while locked
    assert not (tmp_path / "run" / runs.LOCK).exists()
    with runs.locked(tmp_path / "run", "an export"):  # and can be locked again afterwards
        assert (tmp_path / "run" / runs.LOCK).exists()


def test_swap_in_never_leaves_a_moment_without_a_complete_folder(tmp_path):
    from edgetl import runs

    final = tmp_path / "export"
    final.mkdir()
    (final / "v").write_text("1")
    stop, seen_missing = threading.Event(), []

    def watch() -> None:
        while not stop.is_set():
            if not (final / "v").exists():
                seen_missing.append(True)

    watcher = threading.Thread(target=watch)
    watcher.start()
    for i in range(2, 40):
        work = runs.work_folder(tmp_path, "export")
        (work / "v").write_text(str(i))
        runs.swap_in(work, final)
    stop.set()
    watcher.join()
    assert (final / "v").read_text() == "39" and not seen_missing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


@pytest.mark.slow
def test_failed_start_leaves_nothing_and_can_be_run_again(tmp_path):
    data = make_shapes(tmp_path / "data", per_class=6)
    args = ("train", data, "--project", tmp_path / "runs", "--epochs", "1", "--fine-tune-epochs", "0", "--size", "32",
            "--weights", "imagenet", "--alpha", "0.35")
    env = {"KERAS_HOME": str(tmp_path / "keras")}  # an empty Keras cache: the download fails offline
    for _ in range(2):
        line = one_error(run_cli(*args, env=env))
        assert "ImageNet weights" in line and "FileExistsError" not in line
        # (the weights are now checked before anything is made: not even the project folder)
        assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == [], "a folder was left"
    line = one_error(run_cli("train", data, "--project", tmp_path / "runs", "--weights", tmp_path / "none.h5"))
    assert "no such weights file" in line and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_corrupt_resume_files_name_the_file(tmp_path):
    work = tmp_path / "runs" / ".exp.incomplete"
    work.mkdir(parents=True)
    data = make_shapes(tmp_path / "data", per_class=6)
    from edgetl.data.audit import audit
    from edgetl.training.config import TrainConfig

    TrainConfig(data=str(data), weights="none", size=32, alpha=0.35).save(work / "config.yaml")
    audit(data).save(work / "audit.json")
    (work / "state.json").write_text("{truncated")
    (work / "last.weights.npz").write_bytes(b"not a zip")
    line = one_error(run_cli("train", "--resume", tmp_path / "runs" / "exp"))
    assert "state.json" in line and "damaged" in line
    (work / "state.json").write_text(json.dumps({"epoch": 0, "stage": 1}))
    line = one_error(run_cli("train", "--resume", tmp_path / "runs" / "exp"))
    assert "last.weights.npz" in line and "cannot be read" in line
    line = one_error(run_cli("train", "--resume", tmp_path / "runs" / "exp", "--size", "64"))
    assert "cannot change size" in line


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
