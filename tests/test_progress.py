"""Training's progress bar (edgetl.training.progress) on a real terminal."""
from __future__ import annotations

import pytest



@pytest.mark.slow
def test_training_shows_a_bar_within_each_epoch_on_a_terminal(tmp_path):
    """A first epoch of minutes printed nothing until it ended; under a terminal (a real pty, through
    util-linux's `script`) a bar with the step, images/s and time left is drawn within it."""
    import shlex
    import shutil
    import subprocess
    import sys

    from helpers.images import make_shapes

    if not shutil.which("script"):
        pytest.skip("util-linux's `script` is not installed")
    root = make_shapes(tmp_path / "d", classes=("a", "b"), per_class=40, size=40)
    command = shlex.join([sys.executable, "-m", "edgetl", "train", str(root), "--weights", "none", "--alpha", "0.35",
                          "--size", "32", "--epochs", "1", "--fine-tune-epochs", "0", "--no-augment", "--batch-size",
                          "4", "--out", str(tmp_path / "run")])
    proc = subprocess.run(["script", "-q", "-e", "-c", command, str(tmp_path / "typescript")], capture_output=True,
                          text=True, timeout=600, env=dict(__import__("os").environ, COLUMNS="120"))
    assert proc.returncode == 0, proc.stdout[-2000:]
    screen = (tmp_path / "typescript").read_text(errors="replace")
    assert "epoch 1" in screen and "images/s" in screen and "/16" in screen, screen[-2000:]
