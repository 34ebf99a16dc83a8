"""The command line itself: the order of its commands, and what a wrong kind of path is called."""
from __future__ import annotations

from helpers.cli import run_cli
from helpers.images import write_rgb
from helpers.models import colour_images


def test_help_lists_commands_in_workflow_order_without_type_noise():
    proc = run_cli("--help")
    order = [ln.split()[0] for ln in proc.stdout.split("Commands:")[1].splitlines() if ln.startswith("  ")
             and not ln.startswith("   ")]
    assert order == ["data", "train", "tune", "export", "verify", "calibrate", "predict", "eval", "bench", "live", "deploy", "harvest", "label", "compare", "report",
                     "doctor", "demo"]
    assert "<bool>" not in proc.stdout


def test_missing_run_folder_and_folder_as_model_say_what_they_are(tmp_path):
    proc = run_cli("export", tmp_path / "runs" / "exp")
    assert "no such run folder" in proc.stderr and proc.returncode == 2
    image = write_rgb(tmp_path / "x.png", colour_images()[0][0])
    proc = run_cli("predict", tmp_path, image)
    assert "this is a folder, not a model file" in proc.stderr and proc.returncode == 2


def test_a_thread_count_under_one_is_refused_before_anything_runs(tmp_path):
    for command in ("eval", "predict"):
        proc = run_cli(command, tmp_path / "m.onnx", tmp_path, "--threads", "-3")
        assert proc.returncode == 2 and "--threads" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
