"""What a hostile or broken device can send to `harvest`, `bench` and `deploy --status`, over the
real OpenSSH server on 127.0.0.1: the workstation writes a bounded amount, only under the harvest
folder, gives up in bounded time, and shows device text as text.

The device here is this machine's Python behind a wrapper (`--remote-python`): a scenario script
that answers edgetl's device-side programs with what a hostile device would send, or the real
programs on a real outbox folder holding what a hostile device could leave there."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from helpers.cli import run_cli
from helpers.fake_device import fake_device_python
from helpers.cli import one_error

pytestmark = pytest.mark.ssh

SCENARIOS = r'''
import hashlib, json, os, sys, time
program = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "-c" else ""
out = sys.stdout.buffer

def frame(i, image, note=b'{"top": []}'):
    stem = "%019d_%d" % (1796000000000000000 + i, i)
    head = {"stem": stem, "image": len(image), "note": len(note),
            "image_sha256": hashlib.sha256(image).hexdigest(), "note_sha256": hashlib.sha256(note).hexdigest()}
    out.write(json.dumps(head).encode() + b"\n" + image + note)
    out.flush()

if "frames_left" not in program:      # the removal step, or anything else: nothing to do
    print(0); sys.exit(0)
scenario = os.environ.get("HOSTILE", open(os.path.join(os.path.dirname(__file__), "scenario")).read().strip())
if scenario == "flood":               # valid 1 MB frames for ever
    i = 0
    while True:
        frame(i, os.urandom(1_000_000)); i += 1
elif scenario == "silent":            # a header, then nothing
    out.write(json.dumps({"stem": "%019d_0" % 1796000000000000000, "image": 10, "note": 2,
                          "image_sha256": "0" * 64, "note_sha256": "0" * 64}).encode() + b"\n"); out.flush()
    time.sleep(90)                    # far past the harvest's --timeout 8; bounded, so no test leaves it behind
elif scenario == "stderr":            # more on stderr than a pipe holds, then two good frames
    sys.stderr.write("x" * 400_000); sys.stderr.flush()
    frame(0, b"zero" * 100); frame(1, b"one" * 100)
elif scenario == "twice":             # the same name twice, different content
    frame(0, b"first" * 100); frame(0, b"second" * 100)
'''


def hostile_device(root: Path, scenario: str) -> Path:
    """A device Python that plays ``scenario`` for harvest's sender (see SCENARIOS)."""
    root.mkdir(parents=True)
    (root / "device.py").write_text(SCENARIOS)
    (root / "scenario").write_text(scenario)
    wrapper = root / "python3"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {root / 'device.py'} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper


def harvest(ssh_server, device: Path, dest: Path, *extra: str, outbox: str = "~/edgetl-outbox", cwd=None):
    return run_cli("harvest", "mypi", "--ssh-config", ssh_server.config, "--remote-python", device, "--outbox", outbox,
                   "--to", dest, *extra, timeout=300, cwd=cwd)


def test_a_device_that_streams_for_ever_stops_at_the_harvest_caps(ssh_server, tmp_path):
    device = hostile_device(tmp_path / "dev", "flood")
    proc = harvest(ssh_server, device, tmp_path / "home", "--max-frames", "5", "--json")
    assert proc.returncode == 0, proc.stderr[-1500:]
    result = json.loads(proc.stdout)
    assert len(result["images"]) == 5 and result["capped"] == "5 frames"
    assert len(list((tmp_path / "home" / "unsorted").iterdir())) == 5
    proc = harvest(ssh_server, device, tmp_path / "home2", "--max-mb", "3")
    assert proc.returncode == 0 and "stopped at the cap of 3 MB" in proc.stdout, proc.stdout + proc.stderr[-1500:]
    written = sum(p.stat().st_size for p in (tmp_path / "home2").rglob("*") if p.is_file())
    assert written <= 3_000_000 + 100_000  # the images and their notes, and guesses.csv


def test_a_silent_device_ends_the_harvest_at_its_timeout(ssh_server, tmp_path):
    proc = harvest(ssh_server, hostile_device(tmp_path / "dev", "silent"), tmp_path / "home", "--timeout", "8")
    line = one_error(proc)
    assert "sent nothing" in line or "did not finish within" in line
    assert not list((tmp_path / "home" / "unsorted").iterdir())


def test_a_device_that_fills_stderr_first_is_still_harvested(ssh_server, tmp_path):
    proc = harvest(ssh_server, hostile_device(tmp_path / "dev", "stderr"), tmp_path / "home", "--json", "--timeout", "60")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert len(json.loads(proc.stdout)["images"]) == 2


def test_a_frame_name_sent_twice_keeps_the_first_and_one_row(ssh_server, tmp_path):
    proc = harvest(ssh_server, hostile_device(tmp_path / "dev", "twice"), tmp_path / "home", "--json")
    assert proc.returncode == 0, proc.stderr[-1500:]
    result = json.loads(proc.stdout)
    assert len(result["images"]) == 1 and any("sent twice" in r for r in result["refused"])
    [image] = (tmp_path / "home" / "unsorted").iterdir()
    assert image.read_bytes() == b"first" * 100
    assert len(list(csv.DictReader((tmp_path / "home" / "guesses.csv").open()))) == 1


def test_a_fifo_and_a_deeply_nested_note_in_a_real_outbox(ssh_server, tmp_path):
    """The real sender on a real outbox: a FIFO named like a frame note made it block in open()
    for ever; a note nested 32,000 deep made every harvest fail with a RecursionError."""
    box = tmp_path / "outbox"
    box.mkdir()
    stems = [f"{1796000000000000000 + i:019d}_{i}" for i in range(3)]
    (box / f"{stems[0]}.jpg").write_bytes(b"good" * 100)
    (box / f"{stems[0]}.json").write_text('{"top": [{"label": "bees", "score": 0.5}]}')
    os.mkfifo(box / f"{stems[1]}.json")
    (box / f"{stems[1]}.jpg").write_bytes(b"fifo's image")
    (box / f"{stems[2]}.jpg").write_bytes(b"deep" * 100)
    (box / f"{stems[2]}.json").write_text("[" * 32_000 + "]" * 32_000)
    proc = harvest(ssh_server, fake_device_python(tmp_path / "dev"), tmp_path / "home", "--json", "--timeout", "60",
                   outbox=str(box))
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert sorted(json.loads(proc.stdout)["images"]) == [f"{stems[0]}.jpg", f"{stems[2]}.jpg"]
    rows = {r["file"]: r for r in csv.DictReader((tmp_path / "home" / "guesses.csv").open())}
    assert rows[f"{stems[0]}.jpg"]["guess"] == "bees" and rows[f"{stems[2]}.jpg"]["guess"] == ""
    assert sorted(p.name for p in box.iterdir()) == [f"{stems[1]}.jpg", f"{stems[1]}.json"]  # the FIFO stays


def test_a_host_named_dot_dot_never_writes_into_the_working_directory(ssh_server, tmp_path):
    from edgetl.devices.harvest import default_folder

    assert default_folder("..") == Path("harvest/_..") and default_folder(".") == Path("harvest/_.")
    assert default_folder("pi@mypi") == Path("harvest/pi_mypi")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".notes.tmp").write_text("mine")
    proc = run_cli("harvest", "..", "--ssh-config", ssh_server.config, "--timeout", "20", cwd=work, timeout=120)
    one_error(proc)
    assert sorted(p.name for p in work.iterdir()) == [".notes.tmp", "harvest"]
    assert (work / ".notes.tmp").read_text() == "mine" and not (work / "unsorted").exists()


BENCH_ANSWER = [{"model": "m", "runtime": "rt \x1b]0;pwned\x07", "format": "[link=https://evil.example]tflite[/link]",
                 "precision": '=HYPERLINK("https://evil.example")', "threads": None, "size_bytes": 10, "mean_ms": 1.5,
                 "p50_ms": 1.4, "device": {"cpu": "\x1b[2Jcleared", "arch": "aarch64", "cores": 4,
                                           "versions": {"\x1b[31mlitert": "1.0"}}}]


def bench_device(root: Path, answer: object) -> Path:
    """A device whose bench runner answers ``answer`` (edgetl 'installed' there, so nothing is copied but the model)."""
    root.mkdir(parents=True)
    (root / "answer.json").write_text(json.dumps(answer))
    wrapper = root / "python3"
    wrapper.write_text("#!/bin/sh\ncase \"$*\" in\n  *'import edgetl.benchmark.runner'*) exit 0;;\n"
                       f"  *edgetl.benchmark.runner*) cat {root / 'answer.json'}; echo; exit 0;;\nesac\n"
                       f"exec {sys.executable} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper


def test_device_text_in_a_bench_result_is_shown_as_text(ssh_server, colour, tmp_path):
    device = bench_device(tmp_path / "dev", BENCH_ANSWER)
    proc = run_cli("bench", colour["plain"], "--device", "rpi", "--host", "mypi", "--ssh-config", ssh_server.config,
                   "--remote-python", device, "--csv", tmp_path / "b.csv", timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    shown = proc.stdout + proc.stderr
    assert "\x1b" not in shown and "\x07" not in shown and "]8;" not in shown
    assert "[link=" in shown  # the tag shown as text (the table wraps the rest): as markup it would vanish
    [row] = list(csv.DictReader((tmp_path / "b.csv").open()))
    assert row["format"] == "[link=https://evil.example]tflite[/link]"
    assert row["precision"].startswith("'=") and "\x1b" not in row["runtime"]
    for broken in ([dict(BENCH_ANSWER[0], threads="2")], [dict(BENCH_ANSWER[0], device=[1])],
                   [dict(BENCH_ANSWER[0], mean_ms=10 ** 400)]):
        device = bench_device(tmp_path / f"dev{hashlib.sha256(repr(broken).encode()).hexdigest()[:8]}", broken)
        proc = run_cli("bench", colour["plain"], "--device", "rpi", "--host", "mypi", "--ssh-config", ssh_server.config,
                       "--remote-python", device, "--json", timeout=300)
        assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr, proc.stderr[-1500:]
        if proc.returncode == 2:
            one_error(proc)


def test_deploy_status_reads_a_hostile_deployment_as_text(ssh_server, tmp_path):
    """A device manifest of `[1]` crashed `deploy --status` (AttributeError), an outbox size of
    `² 7` too ("²".isdigit() is True): both now report, as unknown."""
    folder = tmp_path / "deployed"
    folder.mkdir()
    (folder / "manifest.json").write_text("[1]")
    (folder / "model.tflite").write_bytes(b"x")
    device = tmp_path / "dev"
    device.mkdir()
    wrapper = device / "python3"
    wrapper.write_text("#!/bin/sh\nprintf '\\302\\262 7\\n'\n")  # what sizes the outbox answers "² 7"
    wrapper.chmod(0o755)
    proc = run_cli("deploy", "--host", "mypi", "--status", "--remote-dir", folder, "--ssh-config", ssh_server.config,
                   "--remote-python", wrapper, "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr[-1500:]
    status = json.loads(proc.stdout)
    assert status["labels"] is None and status["outbox"]["frames"] is None and status["model"] == "model.tflite"
