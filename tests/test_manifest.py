"""The artifact contract (edgetl.runtime.manifest): round trip, crafted and damaged manifests, and
what load and bench read from it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgetl.errors import EdgetlError
from edgetl.runtime.manifest import SCHEMA_VERSION, ModelManifest, entry_for, split_embedded
from edgetl.runtime.spec import PixelSpec


def _manifest(**changes) -> ModelManifest:
    base = ModelManifest(["red", "green", "blue"], PixelSpec(16, 16, 0.0, 1.0), "tflite", "int8", backbone="mobilenet_v2",
                         io={"input": {"dtype": "uint8", "scale": 1.0, "zero_point": 0}}, versions={"keras": "3"})
    return ModelManifest(**(vars(base) | changes))


def test_round_trip_and_the_embedded_form():
    m = _manifest(sha256="ab" * 32)
    assert ModelManifest.from_dict(json.loads(json.dumps(m.to_dict())), "m") == m
    assert "sha256" not in m.embedded() and m.embedded()["schema_version"] == 1  # single-label: what older edgetl reads
    pixels, whole = split_embedded(m.embedded())
    assert pixels == m.input.to_dict() and whole == m.embedded()
    legacy = PixelSpec(16, 16, 0.0, 1.0).to_dict()  # what exports before manifests embedded
    assert split_embedded(legacy) == (legacy, None)
    side = {"artifacts": [{"file": "a.tflite"} | m.to_dict(), {"file": "b.onnx"}]}
    assert entry_for(side, "a.tflite")["precision"] == "int8" and entry_for(side, "b.onnx") is None


@pytest.mark.parametrize("change, message", [
    ({"schema_version": SCHEMA_VERSION + 1}, "upgrade edgetl"),
    ({"schema_version": "1"}, "'schema_version'"),
    ({"format": 3}, "'format'"),
    ({"precision": None}, "'precision'"),
    ({"labels": "red,green"}, "labels"),
    ({"io": []}, "'io'"),
    ({"input": {"height": 16, "width": 16, "std": 0}}, "'std'"),
])
def test_crafted_manifests_are_one_error_naming_the_field(change, message):
    d = _manifest().to_dict() | change
    with pytest.raises(EdgetlError, match=message) as e:
        ModelManifest.from_dict(d, "model.tflite")
    assert "model.tflite" in str(e.value.path)


def test_load_and_bench_read_format_and_precision_from_the_manifest(tmp_path):
    """A model whose file name says nothing: bench and load take its precision from the manifest,
    and a model from elsewhere gets what its tensors tell."""
    from helpers.models import colour_images, keras_mean_colour, to_tflite

    from edgetl.benchmark.harness import BenchOptions
    from edgetl.benchmark import bench
    from edgetl.benchmark.report import rows
    from edgetl.exporting.metadata import embed_tflite
    from edgetl.runtime import load

    images, _ = colour_images()
    plain = to_tflite(keras_mean_colour(), tmp_path / "plain.tflite", "uint8", images)
    named = tmp_path / "named.tflite"
    named.write_bytes(embed_tflite(plain.read_bytes(), "colour", _manifest(precision="int8+float", io={})))
    clf = load(named)
    assert clf.manifest.precision == "int8+float" and clf.manifest.io["input"]["dtype"] == "uint8"
    assert load(plain).manifest is None
    results = bench([named, plain], threads=[1], options=BenchOptions(runs=3, warmup=1, min_seconds=0))
    assert [(r["format"], r["precision"]) for r in rows(results)] == [("tflite", "int8+float"), ("tflite", "int8")]
    fp = to_tflite(keras_mean_colour(), tmp_path / "fp.tflite")
    assert rows(bench([fp], threads=[1], options=BenchOptions(runs=3, warmup=1, min_seconds=0)))[0]["precision"] == "float"
    assert np.isfinite(results[0].p50_ms)
