"""Text a file or a folder supplies (labels, paths, class names) is shown as text: never markup,
never an escape code, never a silent label shift."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np

from helpers.cli import run_cli
from helpers.images import make_shapes
from helpers.cli import one_error


# ---------------------------------------------------------------------------------------------
# Medium: markup, escapes and label shifts.

def test_markup_and_escapes_in_labels_and_paths_are_shown_as_text(colour, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("[/]\n[link=https://example.invalid]circle[/link]\n\x1b]0;pwned\x07\x1b[2Jblue\n")
    proc = run_cli("predict", colour["plain"], colour["image"], "--labels", labels)
    assert proc.returncode == 0, proc.stderr
    assert "[/]" in proc.stdout and "[link=https://example.invalid]circle[/link]" in proc.stdout
    assert "\x1b" not in proc.stdout + proc.stderr and "\\x1b]0;pwned" in proc.stdout
    line = one_error(run_cli("predict", tmp_path / "no[/]such.tflite", colour["image"]))
    assert "no[/]such.tflite" in line and "no such model file" in line


def test_markup_in_file_and_folder_names_is_shown_as_text(tmp_path):
    data = make_shapes(tmp_path / "data2[val]", per_class=6)
    shutil.copy(next((data / "circle").iterdir()), data / "circle" / "r[bold]ed.png")
    (data / "circle" / "note[red].txt").write_text("x")
    proc = run_cli("data", "check", data)
    assert proc.returncode == 1 and "note[red].txt" in proc.stdout and "data2[val]" in proc.stdout, proc.stdout


def test_class_names_with_control_characters_are_refused(tmp_path):
    data = make_shapes(tmp_path / "data", per_class=6)
    os.rename(data / "square", data / "squ\nare")
    proc = run_cli("data", "check", data)
    assert proc.returncode == 1 and "control character" in proc.stdout and "squ\\x0aare" in proc.stdout
    line = one_error(run_cli("train", data, "--weights", "none", "--epochs", "1", "--project", tmp_path / "runs"))
    assert "control character" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_one_label_too_many_is_an_error_unless_it_is_background(colour, tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("red\ngreen\nblue\nextra\n")
    assert "4 labels for a model with 3 outputs" in one_error(run_cli("predict", colour["plain"], colour["image"],
                                                                      "--labels", extra))
    shifted = tmp_path / "shifted.txt"
    shifted.write_text("circle\nred\ngreen\nblue\n")  # what a stray first line used to do: shift every label
    assert "4 labels" in one_error(run_cli("predict", colour["plain"], colour["image"], "--labels", shifted))
    background = tmp_path / "background.txt"
    background.write_text("background\nred\ngreen\nblue\n")
    proc = run_cli("predict", colour["plain"], colour["image"], "--labels", background, "--top-k", "1", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["top"][0]["label"] == "red", proc.stderr


def test_plots_draw_class_names_as_plain_text(tmp_path):
    from edgetl.metrics import plot_confusion, report

    rep = report(np.array([0, 1, 1]), np.array([0, 1, 0]), ["$\\foo$", "a_b^c {x}"])
    plot_confusion(rep, str(tmp_path / "cm.png"))
    assert (tmp_path / "cm.png").stat().st_size > 1000 and not list(tmp_path.glob(".*"))
