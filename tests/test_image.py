"""Why a file is not an image (edgetl.image), worded one way in every checker."""
from __future__ import annotations

import json

import numpy as np

from helpers.cli import run_cli
from helpers.images import write_rgb


def test_a_bad_file_has_one_reason_in_every_checker(colour, tmp_path):
    """HEIC named .jpg, a corrupt JPEG and a real .heic: `data check` and `predict` give the same reason."""
    model = colour["plain"]
    photos = tmp_path / "photos" / "red"
    photos.mkdir(parents=True)
    write_rgb(photos / "ok.png", np.full((40, 40, 3), (200, 10, 10), np.uint8))
    (photos / "phone.jpg").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 500)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x13" * 900 + b"\xff\xd9")
    (photos / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 200)
    audit = json.loads(run_cli("data", "check", tmp_path / "photos", "--json").stdout)
    reasons = {p["path"].rsplit("/", 1)[-1]: p["reason"] for p in audit["problems"]}
    for name in ("phone.jpg", "broken.jpg", "photo.heic"):
        proc = run_cli("predict", model, photos / name)
        assert proc.returncode == 2 and f"cannot read image: {reasons[name]}" in proc.stderr, (name, reasons, proc.stderr)
    assert reasons["phone.jpg"].startswith("unsupported format heic/avif")
    assert reasons["photo.heic"].startswith("not an image extension (.heic)")
