"""The run folder's names (edgetl.runs) and the typed manifests a run and an export folder hold
(edgetl.runtime.folder_manifest): read field by field, and one owner for every file name."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from conftest import ROOT
from edgetl.errors import EdgetlError
from edgetl.runs import RunFolder, check_run_folder, run_of
from edgetl.runtime.confidence import Confidence
from edgetl.runtime.folder_manifest import (ArtifactEntry, ExportManifest, GoldenAnswers, GoldenEntry, RunManifest,
                                            recorded_sha256)
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
    assert recorded_sha256(tmp_path / "model_int8.tflite") == "ab" * 32
    assert recorded_sha256(tmp_path / "other.tflite") is None
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
    assert check_run_folder(run.path) == run


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
