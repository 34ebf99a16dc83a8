"""The golden test: one real photo through every artifact of a fixed model, its top-2 labels and
scores compared with tests/data/golden_hymenoptera.csv within 0.01.

The model is deterministic without training: the shared ImageNet MobileNetV2 backbone and a head
whose weights come from a fixed seed. So the expected scores hold on any machine with the pinned
tool versions, and a change anywhere on the path (decode, resize, normalisation, conversion,
quantization, metadata, output decoding) shows as a changed score. After a deliberate change,
rewrite the CSV with ``EDGETL_WRITE_GOLDEN=1 pytest tests/test_golden_csv.py`` and review its diff."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers.shared import HYMENOPTERA, WEIGHTS

GOLDEN = Path(__file__).parent / "data" / "golden_hymenoptera.csv"
PHOTO = "val/bees/1032546534_06907fe3b3.jpg"
TOLERANCE = 0.01
"""Float artifacts: the same numbers on any x86 CPU, to rounding."""
QUANTIZED_TOLERANCE = 0.05
"""Quantized artifacts: their calibration and bias correction run through TensorFlow's float
kernels, which differ across CPUs (oneDNN on AVX-512 VNNI or not), so the int8 scales and the
scores move by a few output steps from one CPU to another; a wrong model moves far more."""


@pytest.fixture(scope="module")
def golden_export(tmp_path_factory) -> Path:
    """A run folder made by hand around the fixed model, exported to every format."""
    if not (WEIGHTS.exists() and HYMENOPTERA.exists()):
        pytest.skip(f"needs {WEIGHTS} and {HYMENOPTERA} (set EDGETL_SHARED)")
    from edgetl import ExportOptions, Gates, export
    from edgetl.data.audit import audit
    from edgetl.exporting.formats import ALL
    from edgetl.models.backbones import BACKBONES, build_base, build_classifier
    from edgetl.runtime.spec import PixelSpec

    run = tmp_path_factory.mktemp("golden") / "run"
    run.mkdir()
    spec = BACKBONES["mobilenet_v2"]
    model, _ = build_classifier(spec, build_base(spec, 224, 1.0, str(WEIGHTS)), 224, 2, 0.2)
    head = model.get_layer("predictions")
    rng = np.random.default_rng(2026)
    kernel = (rng.standard_normal(head.kernel.shape) * 0.05).astype(np.float32)
    head.set_weights([kernel, np.zeros(2, np.float32)])
    model.save(run / "model.keras")
    result = audit(HYMENOPTERA)
    result.save(run / "audit.json")
    (run / "manifest.json").write_text(json.dumps({"labels": result.classes, "backbone": "mobilenet_v2",
                                                   "input": PixelSpec(224, 224, 0.0, 1.0).to_dict()}))
    # Gates open: the fixed head is no classifier worth gating; what is tested is the numbers.
    export(run, ExportOptions(formats=list(ALL), gates=Gates(max_drop=100.0, min_agreement=0.0)))
    return run


def _rows(run: Path) -> list[dict]:
    """artifact, rank, label, score for the photo's top-2 through every artifact (and Keras)."""
    from edgetl.runtime import load

    photo = HYMENOPTERA / PHOTO
    models = [run / "model.keras"] + sorted((run / "export").glob("model*.*"))
    rows = []
    for path in models:
        for rank, category in enumerate(load(path).classify_file(photo, top_k=2), 1):
            rows.append({"artifact": path.name, "rank": rank, "label": category.label, "score": round(category.score, 4)})
    return rows


@pytest.mark.slow
@pytest.mark.shared
def test_one_photo_through_every_artifact_matches_the_golden_csv(golden_export):
    rows = _rows(golden_export)
    if os.environ.get("EDGETL_WRITE_GOLDEN") == "1":
        with GOLDEN.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["artifact", "rank", "label", "score"])
            writer.writeheader()
            writer.writerows(rows)
        pytest.skip(f"rewrote {GOLDEN}: review its diff")
    with GOLDEN.open(newline="") as f:
        expected = list(csv.DictReader(f))
    assert [(r["artifact"], int(r["rank"])) for r in expected] == [(r["artifact"], r["rank"]) for r in rows]
    for want, got in zip(expected, rows):
        where = f"{got['artifact']} rank {got['rank']}"
        assert got["label"] == want["label"], f"{where}: {got['label']} where the golden CSV has {want['label']}"
        quantized = "int8" in got["artifact"] or "dynamic" in got["artifact"]
        assert abs(got["score"] - float(want["score"])) <= (QUANTIZED_TOLERANCE if quantized else TOLERANCE), (
            f"{where}: score {got['score']:.4f} where the golden CSV has {want['score']}")
    # The fixed head must say something: not a coin toss on every artifact.
    assert max(r["score"] for r in rows if r["rank"] == 1) > 0.6
