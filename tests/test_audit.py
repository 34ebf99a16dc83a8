"""The dataset audit on generated folders with every bad case, and on real hymenoptera."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers.cli import run_cli
from helpers.images import make_shapes, write_rgb
from helpers.shared import HYMENOPTERA, needs_hymenoptera
from edgetl.data.audit import AuditOptions, audit
from edgetl.runtime.spec import PixelSpec


def reasons(result) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in result.problems:
        name = p.path.rsplit("/", 1)[-1]
        out[name] = out[name] + " | " + p.reason if name in out else p.reason
    return out


@pytest.fixture
def messy(tmp_path):
    """Three classes plus one of every bad file the audit must explain."""
    root = make_shapes(tmp_path / "messy", per_class=12)
    good = cv2.imread(str(root / "circle" / "circle_000.jpg"))
    (root / "circle" / "empty.jpg").write_bytes(b"")
    (root / "circle" / "notes.jpg").write_text("this is not a picture\n")
    data = (root / "circle" / "circle_001.jpg").read_bytes()
    (root / "circle" / "cut.jpg").write_bytes(data[: len(data) // 2])
    (root / "square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200 + b"IEND\xaeB`\x82")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "square" / "scan.tif")
    (root / "square" / "scan.jpg").write_bytes((root / "square" / "scan.tif").read_bytes())
    write_rgb(root / "square" / "tiny.png", np.full((12, 20, 3), 90, np.uint8))
    cv2.imwrite(str(root / "triangle" / "blank.png"), np.full((64, 64, 3), 255, np.uint8))
    (root / "triangle" / "readme.txt").write_text("hi")
    (root / ".hidden").mkdir()
    (root / "triangle" / ".DS_Store").write_bytes(b"junk")
    (root / "empty_class").mkdir()
    cv2.imwrite(str(root / "triangle" / "copy.JPG"), good)
    shutil.copy(root / "circle" / "circle_002.jpg", root / "circle" / "circle_002_copy.jpg")
    return root


def test_every_bad_file_is_explained(messy):
    result = audit(messy)
    r = reasons(result)
    assert r["empty.jpg"] == "empty file (0 bytes)"
    assert "content is text" in r["notes.jpg"]
    assert "truncated JPEG" in r["cut.jpg"]
    assert "corrupt PNG" in r["broken.png"]
    assert "unsupported format tiff" in r["scan.jpg"]
    assert "not an image extension (.tif)" in r["scan.tif"]
    assert "tiny image 20x12" in r["tiny.png"]
    assert "flat colour" in r["blank.png"]
    assert "not an image extension (.txt)" in r["readme.txt"]
    assert "no usable images" in r["empty_class"]
    assert "duplicate of" in r["circle_002_copy.jpg"]
    assert ".DS_Store" not in r and ".hidden" not in result.classes
    assert result.classes == ["circle", "empty_class", "square", "triangle"]
    skipped = {p.path.rsplit("/", 1)[-1] for p in result.skipped}
    # A non-image (readme.txt, scan.tif) is skipped like a broken image: it never becomes a training record.
    assert skipped == {"empty.jpg", "notes.jpg", "cut.jpg", "broken.png", "scan.jpg", "readme.txt", "scan.tif"}
    accepted = {r.path.rsplit("/", 1)[-1] for r in result.records}
    assert not skipped & accepted and "copy.JPG" in accepted
    assert all(r.width > 0 and r.height > 0 for r in result.records)
    assert not result.clean and result.errors


def test_cli_lists_each_bad_file_exits_1_without_traceback(messy):
    proc = run_cli("data", "check", messy)
    assert proc.returncode == 1, proc.stderr
    for name in ("empty.jpg", "notes.jpg", "cut.jpg", "broken.png", "scan.jpg", "tiny.png", "empty_class"):
        assert name in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_json_output_has_classes_and_problems(messy):
    proc = run_cli("data", "check", messy, "--json")
    doc = json.loads(proc.stdout)
    assert set(doc["classes"]) == {"circle", "empty_class", "square", "triangle"}
    assert doc["classes"]["circle"]["train"] + doc["classes"]["circle"]["val"] == 13
    assert all({"path", "reason", "severity"} <= set(p) for p in doc["problems"])


def test_clean_folder_exits_0_and_split_is_stratified_and_seeded(tmp_path):
    root = make_shapes(tmp_path / "d", per_class=10)
    result = audit(root, AuditOptions(val_split=0.2, seed=3))
    assert result.clean
    assert result.counts() == {c: {"train": 8, "val": 2} for c in ("circle", "square", "triangle")}
    again = audit(root, AuditOptions(val_split=0.2, seed=3))
    other = audit(root, AuditOptions(val_split=0.2, seed=4))
    assert [r.path for r in result.split("val")] == [r.path for r in again.split("val")]
    assert [r.path for r in result.split("val")] != [r.path for r in other.split("val")]
    assert run_cli("data", "check", root).returncode == 0


def test_decodes_every_format_and_flavour(tmp_path):
    root = tmp_path / "formats"
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = (200, 30, 30)
    d = root / "a"
    d.mkdir(parents=True)
    Image.fromarray(rgb).save(d / "x.GIF")
    Image.fromarray(rgb).save(d / "x.webp")
    Image.fromarray(rgb).save(d / "x.bmp")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(rgb).convert("P").save(d / "palette.png")
    Image.fromarray(np.dstack([rgb, np.full((48, 64), 100, np.uint8)])).save(d / "alpha.png")
    cv2.imwrite(str(d / "gray16.png"), (np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16))
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90°
    im.save(d / "rotated.jpeg", exif=exif)
    make_shapes(root, classes=("b",), per_class=3)
    result = audit(root)
    assert len(result.skipped) == 0, result.problems
    dims = {r.path.rsplit("/", 1)[-1]: (r.width, r.height) for r in result.records}
    assert dims["rotated.jpeg"] == (48, 64)
    assert len([r for r in result.records if r.label == 0]) == 8


def test_class_level_errors(tmp_path):
    single = make_shapes(tmp_path / "single", classes=("only",), per_class=5)
    assert "only one class" in audit(single).errors[0].reason
    few = make_shapes(tmp_path / "few", classes=("a", "b"), per_class=4)
    for f in list((few / "b").iterdir())[1:]:
        f.unlink()
    assert "has 1 usable image(s)" in audit(few).errors[0].reason
    splits = make_shapes(tmp_path / "splits", classes=("a", "b"), per_class=6, splits=("train", "val"))
    shutil.rmtree(splits / "val" / "b")
    err = audit(splits).errors[0]
    assert "no usable images in val/" in err.reason and err.path.endswith("val/b")


def test_imbalance_and_cross_split_duplicates(tmp_path):
    root = make_shapes(tmp_path / "imb", classes=("a",), per_class=40, splits=("train", "val"))
    make_shapes(root, classes=("b",), per_class=6, seed=1, splits=("train", "val"))
    shutil.copy(root / "train" / "a" / "a_000.jpg", root / "val" / "a" / "leak.jpg")
    result = audit(root)
    text = " ".join(p.reason for p in result.problems)
    assert "imbalanced classes: 'a' has 20 training images, 'b' 3 (6.7x)" in text
    assert "in train" in reasons(result)["leak.jpg"]


def test_not_a_dataset_is_exit_2_one_line(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    for target in (tmp_path / "missing", tmp_path / "file.txt", tmp_path):
        proc = run_cli("data", "check", target)
        assert proc.returncode == 2
        assert proc.stderr.strip().count("\n") == 0 and str(target) in proc.stderr
        assert "Traceback" not in proc.stderr


@needs_hymenoptera
def test_hymenoptera_counts_and_only_real_problems():
    result = audit(HYMENOPTERA)
    assert result.classes == ["ants", "bees"]
    assert result.counts() == {"ants": {"train": 124, "val": 70}, "bees": {"train": 121, "val": 83}}
    flagged = {p.path.rsplit("/", 1)[-1] for p in result.problems if p.severity != "info"}
    assert flagged == {"imageNotFound.gif"}  # a "we're sorry, this image could not be found" placeholder


def test_recorded_paths_are_absolute_so_later_stages_run_from_anywhere(tmp_path, monkeypatch):
    make_shapes(tmp_path / "d", per_class=3)
    monkeypatch.chdir(tmp_path)
    result = audit("d")
    assert result.records and all(r.path.startswith(str(tmp_path)) for r in result.records)


def test_a_non_image_in_a_class_folder_is_skipped_and_decode_errors_name_the_file(tmp_path):
    from edgetl.data.audit import audit
    from edgetl.data.cache import decode_all
    from edgetl.errors import EdgetlError

    data = make_shapes(tmp_path / "data", per_class=5)
    (data / "circle" / "notes.txt").write_text("my notes")
    result = audit(data)
    assert not any(r.path.endswith("notes.txt") for r in result.records)
    assert [Path(p.path).name for p in result.skipped] == ["notes.txt"]
    proc = run_cli("data", "check", data)
    assert "15 of 16 files usable, 3 classes" in proc.stdout and "width 0" not in proc.stdout, proc.stdout
    with pytest.raises(EdgetlError, match="notes.txt"):
        decode_all([str(data / "circle" / "notes.txt")], PixelSpec(8, 8))


def test_thin_strokes_on_black_are_not_blank_but_a_blank_page_still_is(tmp_path):
    """MNIST's thin 1s are 93-95 % black background: the near-blank check must not fire on them
    (it did, for 308 of MNIST's 70,000), while a page of one colour with faint noise still warns."""
    root = tmp_path / "digits"
    rng = np.random.default_rng(0)
    for digit in ("one", "seven"):
        (root / digit).mkdir(parents=True)
        for i in range(12):
            img = np.zeros((28, 28, 3), np.uint8)
            x = 12 + i % 4
            cv2.line(img, (x, 4 + i % 3), (x + (0 if digit == "one" else -3), 23), (255, 255, 255), 1 + i % 2)
            if digit == "seven":
                cv2.line(img, (x - 6, 4), (x, 4 + i % 3), (255, 255, 255), 1)
            write_rgb(root / digit / f"{digit}_{i}.png", img)
    background = np.full((64, 64, 3), 235, np.int16)
    faint = background + rng.integers(-20, 21, (64, 64, 1)) * (rng.random((64, 64, 1)) < 0.05)
    write_rgb(root / "one" / "blank_page.png", np.clip(faint, 0, 255).astype(np.uint8))
    write_rgb(root / "seven" / "white.png", np.full((40, 40, 3), 255, np.uint8))
    flagged = {Path(p.path).name for p in audit(root).problems if p.kind == "near-blank image"}
    assert flagged == {"blank_page.png", "white.png"}, flagged


def test_a_class_name_that_labels_txt_would_split_is_refused(tmp_path):
    """A label holding U+2028 was read back from labels.txt as two labels, shifting every class
    after it: the audit refuses such names, and labels are split on newlines only."""
    from edgetl.runtime.labels import parse_labels

    make_shapes(tmp_path / "imgs", classes=("a", "b", "c"), per_class=6)
    names = {"a": "background", "b": "cat\u2028dog", "c": "person"}
    rows = ["path,label"] + [f"{p.relative_to(tmp_path)},{names[p.parent.name]}"
                             for p in sorted((tmp_path / "imgs").rglob("*.jpg"))]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = audit(tmp_path / "data.csv")
    refused = [p for p in result.errors if "cat" in p.reason]
    assert refused and "line separator" in refused[0].reason and "\u2028" not in refused[0].reason
    proc = run_cli("train", tmp_path / "data.csv", "--weights", "none", "--epochs", "1", "--out", tmp_path / "runs")
    assert proc.returncode == 2 and "cat\\u2028dog" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert parse_labels("background\ncat\u2028dog\r\nperson\n".encode(), "labels.txt") == ["background", "cat\u2028dog", "person"]
