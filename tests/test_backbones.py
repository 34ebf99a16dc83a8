"""The backbone registry's limits (sizes, widths, which weights fit which backbone), checked before a dataset is read."""
from __future__ import annotations

import pytest

from helpers.cli import run_cli
from helpers.images import make_shapes
from helpers.shared import needs_weights, WEIGHTS


@pytest.mark.parametrize("args, said", [
    (["--alpha", "0.6"], "--alpha 0.6 is not available for mobilenet_v2 — choose one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4"),
    (["--size", "20"], "--size 20 is below the mobilenet_v2 minimum of 32"),
    (["--backbone", "mobilenet_v3_small", "--alpha", "0.5"], "--alpha 0.5 is not available for mobilenet_v3_small"),
])
def test_options_are_checked_before_anything_is_read(tmp_path, args, said):
    """A backbone's sizes and widths are checked first: one line, exit 2, no dataset read and no run folder."""
    data = make_shapes(tmp_path / "data", per_class=4, size=32)
    proc = run_cli("train", data, "--weights", "none", *args, "--out", tmp_path / "run")
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {said}") and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


@needs_weights
@pytest.mark.slow
def test_weights_of_another_backbone_are_one_line_naming_the_one_they_fit(tmp_path):
    """EfficientNetB0 given MobileNetV2's weights: no Keras warning per layer, one line saying which
    backbone the file fits, before the dataset is read."""
    data = make_shapes(tmp_path / "data", per_class=4, size=32)
    proc = run_cli("train", data, "--backbone", "efficientnet_b0", "--weights", WEIGHTS, "--size", "32",
                   "--out", tmp_path / "run")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr == (f"error: {WEIGHTS}: these weights do not fit efficientnet_b0; they fit --backbone mobilenet_v2 "
                           "--alpha 1.0 — train with --backbone mobilenet_v2 --alpha 1.0\n")
    assert not (tmp_path / "run").exists()
