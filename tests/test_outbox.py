"""The field loop: `live --capture` keeps the frames the model doubted in a bounded outbox, and
`edgetl harvest` brings them home over a real OpenSSH server on 127.0.0.1."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import run_cli
from helpers.images import write_rgb
from helpers.models import colour_frame


def _grey(rng) -> np.ndarray:
    """A frame of none of the colours: the colour model's scores come out nearly even."""
    return np.clip(rng.normal(128, 10, (96, 128, 3)), 0, 255).astype(np.uint8)


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """Six red frames, then six grey ones."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "frames"
    for i in range(12):
        write_rgb(folder / f"{i:02d}.png", colour_frame(0, rng) if i < 6 else _grey(rng))
    return folder


def _summary(proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_capture_keeps_the_doubtful_frames_within_its_caps(colour_model, mixed_folder, tmp_path):
    box = tmp_path / "outbox"
    s = _summary(run_cli("live", colour_model, "--source", mixed_folder, "--capture", box, "--capture-every", "0",
                         "--threshold", "0.6", "--json"))
    notes = [json.loads(p.read_text()) for p in sorted(box.glob("*.json"))]
    assert s["outbox"]["kept"] == 6 and len(notes) == 6 and len(list(box.glob("*.jpg"))) == 6
    assert all(n["reason"] == "unknown" and n["answer"] == "unknown" and n["unknown"] for n in notes)
    assert sorted(n["frame"] for n in notes) == list(range(6, 12))  # the grey ones, never a sure red one
    assert not list(box.glob(".*"))  # nothing half-written
    # the caps: four frames at most, the oldest dropped; a second run adds to what is there
    capped = tmp_path / "capped"
    for _ in range(2):
        s = _summary(run_cli("live", colour_model, "--source", mixed_folder, "--capture", capped, "--capture-every", "0",
                             "--capture-max-files", "4", "--threshold", "0.6", "--json"))
    kept = sorted(capped.glob("*.json"))
    assert s["outbox"]["files"] == 4 and len(kept) == 4 and len(list(capped.glob("*.jpg"))) == 4
    assert [json.loads(p.read_text())["frame"] for p in kept] == [8, 9, 10, 11]  # the newest of the second run
    # the rate limit: one frame per second at most over a run of well under a second
    limited = tmp_path / "limited"
    s = _summary(run_cli("live", colour_model, "--source", mixed_folder, "--capture", limited, "--threshold", "0.6",
                         "--json"))
    assert 1 <= s["outbox"]["kept"] <= s["seconds"] + 1


def _outbox_pair(box: Path, stem: str, image: bytes, note: dict) -> None:
    box.mkdir(parents=True, exist_ok=True)
    (box / f"{stem}.jpg").write_bytes(image)
    (box / f"{stem}.json").write_text(json.dumps(note))


def _stem(i: int) -> str:
    return f"{1796000000000000000 + i:019d}_{i}"


@pytest.mark.ssh
def test_harvest_brings_complete_frames_home_and_follows_nothing(ssh_server, tmp_path):
    box, dest = tmp_path / "device" / "outbox", tmp_path / "home"
    secret = tmp_path / "device" / "secret.txt"
    secret.parent.mkdir(parents=True)
    secret.write_text("not for harvesting")
    hostile = "=cmd|' /C calc'!A0 <b>bees</b>\x1b[31m"
    for i in range(3):
        _outbox_pair(box, _stem(i), f"image {i}".encode() * 100,
                     {"answer": "unknown", "reason": "unknown", "top": [{"label": hostile, "score": 0.41}],
                      "model": "m.tflite", "captured": "2026-12-01T10:00:00"})
    os.symlink(secret, box / f"{_stem(7)}.jpg")  # a frame name pointing outside the outbox
    (box / f"{_stem(7)}.json").write_text("{}")
    (box / f"{_stem(8)}.jpg").write_bytes(b"no note yet: still being written")
    (box / "notes.txt").write_text("not an outbox file")
    proc = run_cli("harvest", "mypi", "--ssh-config", ssh_server.config, "--outbox", box, "--to", dest, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert sorted(result["images"]) == [f"{_stem(i)}.jpg" for i in range(3)] and result["removed"] == 3
    assert sorted(p.name for p in (dest / "unsorted").iterdir()) == result["images"]
    assert (dest / "unsorted" / f"{_stem(1)}.jpg").read_bytes() == b"image 1" * 100
    # on the device: the harvested pairs gone; the symlinked, the incomplete and the foreign file left alone
    assert sorted(p.name for p in box.iterdir()) == sorted([f"{_stem(7)}.jpg", f"{_stem(7)}.json", f"{_stem(8)}.jpg",
                                                            "notes.txt"])
    assert secret.read_text() == "not for harvesting" and not (dest / "unsorted" / f"{_stem(7)}.jpg").exists()
    rows = list(csv.DictReader((dest / "guesses.csv").open(encoding="utf-8")))
    assert [r["file"] for r in rows] == result["images"]
    assert all(r["guess"].startswith("'=") and "\x1b" not in r["guess"] and r["score"] == "0.4100" for r in rows)
    # a second harvest appends to the CSV and takes nothing twice
    _outbox_pair(box, _stem(4), b"four", {"answer": "bees", "reason": "low margin", "top": []})
    again = json.loads(run_cli("harvest", "mypi", "--ssh-config", ssh_server.config, "--outbox", box, "--to", dest,
                               "--json").stdout)
    assert again["images"] == [f"{_stem(4)}.jpg"]
    assert [r["file"] for r in csv.DictReader((dest / "guesses.csv").open())] == result["images"] + again["images"]
    # an outbox that is itself a symlink is not followed
    os.symlink(box, tmp_path / "linked")
    proc = run_cli("harvest", "mypi", "--ssh-config", ssh_server.config, "--outbox", tmp_path / "linked", "--to", dest)
    assert proc.returncode == 2 and "cannot open the outbox" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.ssh
def test_a_killed_harvest_leaves_nothing_half_copied_on_either_side(ssh_server, tmp_path):
    """Whenever the transfer is killed, every image here under its final name is whole, and every
    frame gone from the device is here whole; the next harvest finishes the job."""
    box, dest = tmp_path / "outbox", tmp_path / "home"
    rng = np.random.default_rng(0)
    originals = {}
    for i in range(40):
        data = rng.integers(0, 256, 2_000_000, dtype=np.uint8).tobytes()
        _outbox_pair(box, _stem(i), data, {"answer": "unknown", "top": []})
        originals[f"{_stem(i)}.jpg"] = hashlib.sha256(data).hexdigest()
    cmd = [sys.executable, "-m", "edgetl", "harvest", "mypi", "--ssh-config", str(ssh_server.config),
           "--outbox", str(box), "--to", str(dest)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if (dest / "unsorted").is_dir() and any((dest / "unsorted").iterdir()):
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    here = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (dest / "unsorted").glob("*.jpg")}
    assert all(originals[name] == digest for name, digest in here.items())
    gone = set(originals) - {p.name for p in box.glob("*.jpg")}
    print(f"killed with {len(here)} of {len(originals)} images here, {len(gone)} gone from the device")
    assert gone <= set(here)
    finished = run_cli("harvest", "mypi", "--ssh-config", ssh_server.config, "--outbox", box, "--to", dest, "--json")
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (dest / "unsorted").iterdir()} == originals
    assert not list(box.iterdir())
    rows = [r["file"] for r in csv.DictReader((dest / "guesses.csv").open(encoding="utf-8"))]
    assert sorted(rows) == sorted(originals)  # a frame taken twice keeps one row


@pytest.mark.ssh
def test_frames_captured_by_live_come_home_with_their_guesses(colour_model, mixed_folder, ssh_server, tmp_path):
    """The loop end to end: `live --capture` on the "device", `harvest` over SSH, and the frames
    here are the ones live doubted, readable images, with live's answers in guesses.csv."""
    import cv2

    box, dest = tmp_path / "device-outbox", tmp_path / "home"
    _summary(run_cli("live", colour_model, "--source", mixed_folder, "--capture", box, "--capture-every", "0",
                     "--threshold", "0.6", "--json"))
    notes = {p.stem: json.loads(p.read_text()) for p in box.glob("*.json")}
    proc = run_cli("harvest", "mypi", "--ssh-config", ssh_server.config, "--outbox", box, "--to", dest, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert len(got["images"]) == len(notes) == 6 and got["removed"] == 6 and not list(box.iterdir())
    for row in csv.DictReader((dest / "guesses.csv").open(encoding="utf-8")):
        note = notes[Path(row["file"]).stem]
        assert row["answer"] == "unknown" and row["reason"] == "unknown" and row["guess"] == note["top"][0]["label"]
        image = cv2.imread(str(dest / "unsorted" / row["file"]))
        assert image is not None and image.shape == (96, 128, 3)


@pytest.mark.parametrize("how", ["everyone may write", "another user's"])
def test_a_capture_folder_others_can_write_to_is_refused(colour_model, mixed_folder, tmp_path, how):
    """Whoever can write to the capture folder can plant links among the frames: refused."""
    shared = tmp_path / "shared"
    shared.mkdir()
    if how == "everyone may write":
        shared.chmod(0o777)
    else:
        if os.getuid() != 0:
            pytest.skip("only root can give a folder to another user here")
        os.chown(shared, 65534, 65534)
    proc = run_cli("live", colour_model, "--source", mixed_folder, "--json", "--capture", shared)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert ("everyone may write" if how == "everyone may write" else "belongs to another user") in proc.stderr
    assert not list(shared.iterdir())
