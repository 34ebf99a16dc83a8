"""The device edge, attacked: every case of the hardening issue built here and run through the CLI
as a user (or an attacker) would. Each asserts the exit code, one error line, no traceback, and
that nothing ran that should not have."""
from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import make_shapes, run_cli, write_rgb
from fake_device import fake_device_python
from models import colour_images, keras_mean_colour, to_tflite
from edgetl.exporting.metadata import embed_tflite
from edgetl.runtime.manifest import ModelManifest
from edgetl.runtime.spec import PixelSpec


def one_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """The single `error:` line of a failed command (asserting exit code and no traceback)."""
    assert proc.returncode == code, (proc.returncode, proc.stdout[-500:], proc.stderr[-1500:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


_PEAK_WRAPPER = """
import atexit, os, sys
def _peak():
    with open("/proc/self/status") as f:
        hwm = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(os.environ["EDGETL_TEST_PEAK_FILE"], "w") as out:
        out.write(hwm)
atexit.register(_peak)
sys.argv = ["edgetl"] + sys.argv[1:]
from edgetl.cli import main
main()
"""


def peak_rss_mb(*args: str, env: dict | None = None, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run `edgetl ARGS`; return the result, its wall time and its peak RSS in MB. The figure is the
    process's own high-water mark after exec (VmHWM): ru_maxrss of a child forked from this large
    pytest process would include the pages it inherited before exec."""
    peak_file = Path(tempfile.mkstemp(prefix="edgetl-peak-")[1])
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ) | (env or {}) | {"EDGETL_TEST_PEAK_FILE": str(peak_file)})
    seconds = time.perf_counter() - t0
    peak_kb = float(peak_file.read_text() or "nan")
    peak_file.unlink()
    return proc, seconds, peak_kb / 1024


# ---------------------------------------------------------------------------------------------
# Models used below: a tiny real TFLite classifier with edgetl metadata, and ways to damage it.

@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    """A real TFLite colour classifier (red/green/blue) with edgetl's embedded metadata, and a red image."""
    d = tmp_path_factory.mktemp("colour")
    raw = to_tflite(keras_mean_colour(), d / "raw.tflite").read_bytes()
    pixels = PixelSpec(16, 16, mean=0.0, std=1.0)
    model = d / "model.tflite"
    model.write_bytes(embed_tflite(raw, "colour", ModelManifest(["red", "green", "blue"], pixels, "tflite", "fp32")))
    plain = d / "plain.tflite"
    plain.write_bytes(raw)
    image = write_rgb(d / "red.png", colour_images()[0][0])
    return {"model": model, "plain": plain, "image": image, "dir": d}


def with_files(model: bytes, files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """The model with its associated-files zip replaced by ``files`` (what a crafted file would carry)."""
    start = model.find(b"PK\x03\x04")
    body = model[:start] if start > 0 else model
    out = io.BytesIO(body)
    with zipfile.ZipFile(out, "a", compression=compression) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# High: nothing a file name carries reaches a device's shell.

HOSTILE_MARKER = f"edgetl-injected-{secrets.token_hex(4)}"
# File names cannot hold "/", so the payload spells it in octal: touch /tmp/<marker> if ever run.
HOSTILE_NAME = f"a$(touch $(printf '\\057tmp\\057{HOSTILE_MARKER}')).tflite"


@pytest.mark.ssh
def test_bench_over_ssh_with_hostile_and_spaced_model_names(ssh_server, colour, tmp_path):
    device_python = fake_device_python(tmp_path / "dev")
    spaced, hostile = tmp_path / "my model.tflite", tmp_path / HOSTILE_NAME
    shutil.copy(colour["plain"], spaced)
    shutil.copy(colour["plain"], hostile)
    proc = run_cli("bench", spaced, hostile, "--device", "rpi", "--host", "mypi", "--ssh-config", ssh_server.config,
                   "--remote-python", device_python, "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert [r["model"] for r in results] == ["my model.tflite", HOSTILE_NAME]  # local names label the results
    assert all(r["p50_ms"] > 0 for r in results)
    assert not Path("/tmp", HOSTILE_MARKER).exists(), "a file name ran as a command on the device"


@pytest.mark.ssh
@pytest.mark.parametrize("host", ["-oProxyCommand=touch /tmp/{m}", "-F/tmp/{m}", "my pi", "pi\nhost", ""])
def test_hosts_that_would_be_read_as_options_are_refused(ssh_server, colour, host):
    marker = f"edgetl-proxy-{secrets.token_hex(4)}"
    proc = run_cli("bench", colour["plain"], "--device", "rpi", "--host", host.format(m=marker),
                   "--ssh-config", ssh_server.config, "--runs", "5", "--min-seconds", "0")
    assert "is not a host name" in one_error(proc)
    assert not Path("/tmp", marker).exists()


def _runner_processes(tag: str) -> list[int]:
    """pids whose command line mentions ``tag`` (the remote runner on the loopback "device")."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if tag.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _wait_until(predicate, seconds: float) -> bool:
    end = time.time() + seconds
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.mark.ssh
def test_ssh_bench_timeout_stops_the_remote_runner_and_cleans_up(ssh_server, colour, tmp_path):
    device_python = fake_device_python(tmp_path / "dev")
    before = set(Path("/tmp").glob("tmp.*"))
    t0 = time.time()
    proc = run_cli("bench", colour["plain"], "--device", "rpi", "--host", "mypi", "--ssh-config", ssh_server.config,
                   "--remote-python", device_python, "--min-seconds", "120", "--timeout", "4")
    line = one_error(proc)
    assert "longer than 4 s" in line and "mypi" in line
    assert time.time() - t0 < 60
    assert _wait_until(lambda: not _runner_processes("runner.pyz"), 10), "the remote runner kept running"
    assert set(Path("/tmp").glob("tmp.*")) - before == set(), "the remote folder was left behind"


@pytest.mark.ssh
def test_ctrl_c_during_ssh_bench_stops_the_remote_runner_and_cleans_up(ssh_server, colour, tmp_path):
    device_python = fake_device_python(tmp_path / "dev")
    before = set(Path("/tmp").glob("tmp.*"))
    # Only this bench's runner counts: a runner another test left behind must not make the test
    # send Ctrl-C before this one has started (or look like this one kept running).
    others = set(_runner_processes("runner.pyz"))

    def runners() -> set[int]:
        return set(_runner_processes("runner.pyz")) - others

    proc = subprocess.Popen([sys.executable, "-m", "edgetl", "bench", str(colour["plain"]), "--device", "rpi",
                             "--host", "mypi", "--ssh-config", str(ssh_server.config), "--remote-python",
                             str(device_python), "--min-seconds", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    # bench waits up to 60 s for each host's clean-up after Ctrl-C; give it that and a margin
    err = _ctrl_c(proc, lambda: any(_is_running_runner(pid) for pid in runners()), 90)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert _wait_until(lambda: not runners(), 15), "the remote runner kept running"
    assert _wait_until(lambda: not set(Path("/tmp").glob("tmp.*")) - before, 15), "the remote folder was left behind"


SLOW_STEP = """
import os, time
from pathlib import Path
import edgetl.benchmark.zipapp as zipapp
build = zipapp.build
def slow_build(*args, **kwargs):
    Path(os.environ["BETWEEN_STEPS"]).touch()  # the test sends Ctrl-C now, between two steps on the device
    time.sleep(3)
    return build(*args, **kwargs)
zipapp.build = slow_build
from edgetl.__main__ import main
main()
"""


@pytest.mark.ssh
def test_ctrl_c_between_two_device_steps_starts_nothing_more(ssh_server, colour, tmp_path):
    """Ctrl-C while a host's thread is between steps (here: making the runner, slowed down): that
    thread must not go on to start the runner after the live connections were ended, or the exit
    waits for that runner (this hung CI's Ctrl-C test for over 90 s)."""
    device_python = fake_device_python(tmp_path / "dev")
    before = set(Path("/tmp").glob("tmp.*"))
    others = set(_runner_processes("runner.pyz"))
    marker = tmp_path / "between-steps"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_STEP, "bench", str(colour["plain"]), "--device", "rpi",
                             "--host", "mypi", "--ssh-config", str(ssh_server.config), "--remote-python",
                             str(device_python), "--min-seconds", "120"], env=os.environ | {"BETWEEN_STEPS": str(marker)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    err = _ctrl_c(proc, marker.exists, 30)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert not any(_is_running_runner(pid) for pid in set(_runner_processes("runner.pyz")) - others)
    assert _wait_until(lambda: not set(Path("/tmp").glob("tmp.*")) - before, 15), "the remote folder was left behind"


def _ctrl_c(proc: subprocess.Popen, ready, seconds: float) -> str:
    """Once ``ready()``, Ctrl-C as a terminal sends it (to the whole process group); bench's stderr,
    or a failure quoting it when bench has not exited within ``seconds``."""
    try:
        assert _wait_until(ready, 60), "bench never reached the step where the test presses Ctrl-C"
        os.killpg(proc.pid, signal.SIGINT)
        try:
            return proc.communicate(timeout=seconds)[1]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"bench did not exit within {seconds} s of Ctrl-C; its stderr ends: {proc.communicate()[1][-2000:]!r}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _is_running_runner(pid: int) -> bool:
    """The runner itself (``python .../runner.pyz``), not the ssh or shell command lines that copy
    it there: those name runner.pyz too, and Ctrl-C during the copy is another case."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return len(argv) > 1 and Path(argv[0].decode()).name.startswith("python") and argv[1].endswith(b"/runner.pyz")


def test_adb_commands_carry_no_file_name_and_clean_up(colour, tmp_path):
    """No phone exists here: a stand-in `adb` on PATH logs its arguments and answers like a phone
    (getprop values, recorded benchmark_model output). What is tested is what edgetl sends."""
    log = tmp_path / "adb.log"
    fake = tmp_path / "bin" / "adb"
    fake.parent.mkdir()
    recorded = Path(__file__).parent / "data" / "benchmark_model_v3.txt"
    fake.write_text(f"""#!{sys.executable}
import json, shlex, sys
args = sys.argv[1:]
open({str(log)!r}, "a").write(json.dumps(args) + "\\n")
if args[0] == "shell":
    words = shlex.split(args[1])  # the phone's sh -c sees exactly this string
    if words[0] == "getprop":
        print("stand-in")
    elif words[0].endswith("benchmark_model"):
        print(open({str(recorded)!r}).read())
""")
    fake.chmod(0o755)
    hostile = tmp_path / "m;reboot;$(id).tflite"
    shutil.copy(colour["plain"], hostile)
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}"}
    proc = run_cli("bench", hostile, "--device", "android", "--runs", "5", "--min-seconds", "0", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["model"] == hostile.name
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    shells = [c[1] for c in calls if c[0] == "shell"]
    assert shells and not any(ch in s for s in shells for ch in (";", "$", "`", "|", "&")), shells
    assert not any("reboot" in " ".join(c) for c in calls if c[0] == "shell")
    pushed = [c for c in calls if c[0] == "push"]
    assert pushed[0][1] == str(hostile.resolve()) and pushed[0][2].endswith("/0.tflite")
    assert shells[-1].startswith("rm -rf /data/local/tmp/edgetl/run-"), "the phone's run folder was not removed"
    proc = run_cli("bench", hostile, "--device", "android", "--serial", "-x", env=env)
    assert "is not an adb serial" in one_error(proc)


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


# ---------------------------------------------------------------------------------------------
# Decompression bombs and hostile files.

def _bomb_png(path: Path, side: int = 30000) -> Path:
    """A valid grayscale PNG of side x side pixels, all black: under 1 MB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return _bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


def test_decompression_bomb_is_flagged_fast_in_bounded_memory(bomb, tmp_path):
    data = make_shapes(tmp_path / "data", per_class=4)
    shutil.copy(bomb, data / "circle" / "huge.png")
    proc, seconds, peak = peak_rss_mb("data", "check", data)
    assert proc.returncode == 1 and "huge.png" in proc.stdout and "pixel cap" in proc.stdout, proc.stdout
    assert "30000x30000" in proc.stdout
    assert seconds < 2.0 + 3.0, seconds  # interpreter start-up (~2 s here) plus under 2 s of work
    assert 20 < peak < 300, f"peak RSS {peak:.0f} MB"  # above 20: the figure is a real measurement
    proc = run_cli("data", "check", data, "--max-pixels", str(2 * 10**9))  # the cap is the user's to raise
    assert "pixel cap" not in proc.stdout


def test_decompression_bomb_given_to_predict(colour, bomb):
    proc, _, peak = peak_rss_mb("predict", colour["model"], bomb)
    assert "pixel cap" in one_error(proc) and peak < 400, peak


def test_zip_bomb_in_model_metadata_is_refused(colour, tmp_path):
    crafted = tmp_path / "bomb.tflite"
    crafted.write_bytes(with_files(colour["model"].read_bytes(), {"labels.txt": b"red\ngreen\nblue\n",
                                                                  "edgetl.json": b"\x00" * (64 << 20)},
                                   zipfile.ZIP_DEFLATED))
    assert crafted.stat().st_size < 4 << 20
    proc, _, peak = peak_rss_mb("predict", crafted, colour["image"])
    line = one_error(proc)
    assert "bomb.tflite" in line and "edgetl.json" in line and "MiB" in line and peak < 400, (line, peak)


@pytest.mark.parametrize("files,field", [
    ({"labels.txt": b"red\n\xffgreen\nblue\n"}, "labels.txt"),
    ({"labels.txt": b"red\ngreen\nblue\n", "edgetl.json": b"{not json"}, "edgetl.json"),
    ({"labels.txt": b"red\ngreen\nblue\n", "edgetl.json": b"[1, 2]"}, "edgetl.json"),
    ({"labels.txt": b"red\ngreen\nblue\n", "edgetl.json": b'{"height": 16, "width": 16, "std": 0}'}, "'std'"),
    ({"labels.txt": b"red\ngreen\nblue\n", "edgetl.json": b'{"height": 16, "width": 16, "mean": "x"}'}, "'mean'"),
    ({"labels.txt": b"red\ngreen\nblue\n", "edgetl.json": b'{"height": 16, "width": 16, "resize": "rm -rf"}'}, "'resize'"),
])
def test_crafted_tflite_metadata_is_one_line_naming_the_field(colour, tmp_path, files, field):
    crafted = tmp_path / "crafted.tflite"
    crafted.write_bytes(with_files(colour["model"].read_bytes(), files))
    line = one_error(run_cli("predict", crafted, colour["image"]))
    assert "crafted.tflite" in line and field in line, line


def test_encrypted_or_oddly_compressed_entries_are_refused(colour, tmp_path):
    body = with_files(colour["model"].read_bytes(), {"labels.txt": b"red\ngreen\nblue\n"})
    start = body.find(b"PK\x03\x04")
    for flag_offset, value, what in ((6, 1, "encrypted"), (8, 12, "compression")):
        data = bytearray(body)
        central = data.find(b"PK\x01\x02", start)
        data[central + flag_offset + 2] = value  # central directory: flags at +8, method at +10
        crafted = tmp_path / f"{what}.tflite"
        crafted.write_bytes(bytes(data))
        assert what in one_error(run_cli("predict", crafted, colour["image"]))


def _onnx_classifier(path: Path, props: dict[str, str] | None = None, external: str | None = None) -> Path:
    """A tiny real ONNX classifier (NHWC 8x8 input, channel means, softmax) with metadata ``props``."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(3, dtype=np.float32) * 0.05, "w")
    if external is not None:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        entry = w.external_data.add()
        entry.key, entry.value = "location", external
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probability"])],
        "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 8, 8, 3])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [1, 3])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, props or {})
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("props,field", [
    ({"labels": '"abc"'}, "labels"),
    ({"labels": "[not json"}, "labels"),
    ({"labels": '["a", 2, "c"]'}, "labels"),
    ({"edgetl": '{"height": 8, "width": 8, "std": 0}'}, "'std'"),
    ({"edgetl": '{"height": 8, "width": 8, "resize": "sideways"}'}, "'resize'"),
])
def test_crafted_onnx_metadata_is_one_line_naming_the_field(colour, tmp_path, props, field):
    model = _onnx_classifier(tmp_path / "crafted.onnx", props)
    line = one_error(run_cli("predict", model, colour["image"]))
    assert "crafted.onnx" in line and field in line, line


def test_onnx_external_data_outside_the_folder_is_refused(colour, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.eye(3, dtype=np.float32).tobytes())
    inside = tmp_path / "models"
    inside.mkdir()
    for location in ("../secret.bin", str(secret)):
        model = _onnx_classifier(inside / "leak.onnx", external=location)
        line = one_error(run_cli("predict", model, colour["image"]))
        assert "outside its folder" in line and "leak.onnx" in line


def test_onnx_external_data_guard_fails_closed(colour, tmp_path):
    """An unknown protobuf group before the graph (valid wire format, which ONNX Runtime's parser
    skips) once made the guard give up and let the model load: it is read through now; and bytes
    the guard cannot follow at all refuse the model rather than wave it through."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.eye(3, dtype=np.float32).tobytes())
    model = _onnx_classifier(tmp_path / "leak.onnx", external=str(secret))
    group = bytes([0xA3, 0x06, 0x08, 0x01, 0xA4, 0x06])  # field 100: start group, a varint, end group
    model.write_bytes(group + model.read_bytes())
    line = one_error(run_cli("predict", model, colour["image"]))
    assert "outside its folder" in line and "leak.onnx" in line, line
    model.write_bytes(bytes([0x0F]) + model.read_bytes())  # wire type 7 does not exist
    line = one_error(run_cli("predict", model, colour["image"]))
    assert "its protobuf cannot be read" in line, line


def test_non_utf8_labels_file(colour, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"red\ngr\xe9en\nblue\n")
    line = one_error(run_cli("predict", colour["plain"], colour["image"], "--labels", labels))
    assert "labels.txt" in line and "UTF-8" in line


def test_audit_never_hangs_or_reads_devices_and_reports_each_skip(tmp_path):
    data = make_shapes(tmp_path / "data", per_class=4)
    os.mkfifo(data / "circle" / "x.png")
    os.symlink("/dev/zero", data / "square" / "zero.jpg")
    os.symlink("/nonexistent/folder", data / "square" / "gone.png")
    elsewhere = make_shapes(tmp_path / "elsewhere", classes=("triangle",), per_class=3)
    os.symlink(elsewhere / "triangle", data / "triangle" / "linked")
    os.symlink(data / "triangle", data / "triangle" / "loop")
    proc = run_cli("data", "check", data, "--json", timeout=60)
    doc = json.loads(proc.stdout)
    reasons = {Path(p["path"]).name: p["reason"] for p in doc["problems"]}
    assert "FIFO" in reasons["x.png"] and "device" in reasons["zero.jpg"] and "cannot read" in reasons["gone.png"]
    assert doc["classes"]["triangle"]["train"] + doc["classes"]["triangle"]["val"] == 4 + 3  # linked folder read once
    assert "loop" in reasons


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder: permission errors cannot be made here as root")
def test_unreadable_folder_is_reported(tmp_path):
    data = make_shapes(tmp_path / "data", per_class=4)
    (data / "circle" / "private").mkdir()
    (data / "circle" / "private").chmod(0)
    try:
        proc = run_cli("data", "check", data)
    finally:
        (data / "circle" / "private").chmod(0o755)
    assert "private" in proc.stdout and "cannot be read" in proc.stdout


def test_non_utf8_file_names_with_a_strict_utf8_stdout(colour, tmp_path):
    data = make_shapes(tmp_path / "data", per_class=4)
    odd = os.fsencode(data / "circle") + b"/caf\xe9.txt"
    with open(odd, "wb") as f:
        f.write(b"x")
    image = os.fsencode(tmp_path) + b"/r\xe9d.png"
    shutil.copy(colour["image"], os.fsdecode(image))
    env = {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    proc = run_cli("data", "check", data, env=env)
    assert proc.returncode == 1 and "caf\\xe9.txt" in proc.stdout and "Traceback" not in proc.stderr, proc.stderr
    proc = run_cli("predict", colour["model"], os.fsdecode(image), env=env)
    assert proc.returncode == 0 and "r\\xe9d.png" in proc.stdout, proc.stderr


def test_disk_cache_is_keyed_on_content_and_validated(tmp_path, monkeypatch):
    from edgetl.data import cache

    monkeypatch.setenv("EDGETL_CACHE", str(tmp_path / "cache"))
    a = write_rgb(tmp_path / "a.png", np.full((20, 20, 3), 10, np.uint8))
    first = cache.load_images([str(a)], 8, 8)
    st = a.stat()
    write_rgb(a, np.full((20, 20, 3), 200, np.uint8))  # same size on disk (PNG of a flat colour)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))  # what cp -p, rsync -t and tar x do
    assert a.stat().st_size == st.st_size and a.stat().st_mtime_ns == st.st_mtime_ns
    second = cache.load_images([str(a)], 8, 8)
    assert first[0, 0, 0, 0] == 10 and second[0, 0, 0, 0] == 200
    for f in (tmp_path / "cache" / "images").glob("*.npy"):
        np.save(f, np.zeros((3, 5), np.float64))  # a valid .npy of the wrong shape and dtype
    again = cache.load_images([str(a)], 8, 8)
    assert again.shape == (1, 8, 8, 3) and again.dtype == np.uint8 and again[0, 0, 0, 0] == 200


# ---------------------------------------------------------------------------------------------
# Run folders and exports under races and failures.

def test_concurrent_auto_named_runs_get_distinct_folders(tmp_path):
    from edgetl import runs

    made: list[Path] = []
    threads = [threading.Thread(target=lambda: made.append(runs.new_run(tmp_path, "exp"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in made}) == 8


def test_a_second_writer_of_one_run_gets_a_clear_error(tmp_path):
    from edgetl import runs
    from edgetl.errors import EdgetlError

    with runs.locked(tmp_path, "an export"):
        code = ("from edgetl import runs; from pathlib import Path\n"
                f"with runs.locked(Path({str(tmp_path)!r}), 'an export'): pass\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode != 0 and "another edgetl process is writing an export" in proc.stderr
        with pytest.raises(EdgetlError):
            with runs.locked(tmp_path, "an export"):  # a second open file description, same process
                pass
    assert not (tmp_path / runs.LOCK).exists()  # released: no lock file left behind
    moving = tmp_path / ".run.incomplete"
    with runs.locked(moving, "this training run"):
        moving.rename(tmp_path / "run")  # a run folder is renamed into place while locked
    assert not (tmp_path / "run" / runs.LOCK).exists()
    with runs.locked(tmp_path / "run", "an export"):  # and can be locked again afterwards
        assert (tmp_path / "run" / runs.LOCK).exists()


def test_swap_in_never_leaves_a_moment_without_a_complete_folder(tmp_path):
    from edgetl import runs

    final = tmp_path / "export"
    final.mkdir()
    (final / "v").write_text("1")
    stop, seen_missing = threading.Event(), []

    def watch() -> None:
        while not stop.is_set():
            if not (final / "v").exists():
                seen_missing.append(True)

    watcher = threading.Thread(target=watch)
    watcher.start()
    for i in range(2, 40):
        work = runs.work_folder(tmp_path, "export")
        (work / "v").write_text(str(i))
        runs.swap_in(work, final)
    stop.set()
    watcher.join()
    assert (final / "v").read_text() == "39" and not seen_missing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


@pytest.mark.slow
def test_failed_start_leaves_nothing_and_can_be_run_again(tmp_path):
    data = make_shapes(tmp_path / "data", per_class=6)
    args = ("train", data, "--project", tmp_path / "runs", "--epochs", "1", "--fine-tune-epochs", "0", "--size", "32",
            "--weights", "imagenet", "--alpha", "0.35")
    env = {"KERAS_HOME": str(tmp_path / "keras")}  # an empty Keras cache: the download fails offline
    for _ in range(2):
        line = one_error(run_cli(*args, env=env))
        assert "ImageNet weights" in line and "FileExistsError" not in line
        # (the weights are now checked before anything is made: not even the project folder)
        assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == [], "a folder was left"
    line = one_error(run_cli("train", data, "--project", tmp_path / "runs", "--weights", tmp_path / "none.h5"))
    assert "no such weights file" in line and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_corrupt_resume_files_name_the_file(tmp_path):
    work = tmp_path / "runs" / ".exp.incomplete"
    work.mkdir(parents=True)
    data = make_shapes(tmp_path / "data", per_class=6)
    from edgetl.data.audit import audit
    from edgetl.training.config import TrainConfig

    TrainConfig(data=str(data), weights="none", size=32, alpha=0.35).save(work / "config.yaml")
    audit(data).save(work / "audit.json")
    (work / "state.json").write_text("{truncated")
    (work / "last.weights.npz").write_bytes(b"not a zip")
    line = one_error(run_cli("train", "--resume", tmp_path / "runs" / "exp"))
    assert "state.json" in line and "damaged" in line
    (work / "state.json").write_text(json.dumps({"epoch": 0, "stage": 1}))
    line = one_error(run_cli("train", "--resume", tmp_path / "runs" / "exp"))
    assert "last.weights.npz" in line and "cannot be read" in line
    line = one_error(run_cli("train", "--resume", tmp_path / "runs" / "exp", "--size", "64"))
    assert "cannot change size" in line


def test_plots_draw_class_names_as_plain_text(tmp_path):
    from edgetl.metrics import plot_confusion, report

    rep = report(np.array([0, 1, 1]), np.array([0, 1, 0]), ["$\\foo$", "a_b^c {x}"])
    plot_confusion(rep, str(tmp_path / "cm.png"))
    assert (tmp_path / "cm.png").stat().st_size > 1000 and not list(tmp_path.glob(".*"))


# ---------------------------------------------------------------------------------------------
# Models that are not classifiers, and models that must not be trusted.

def test_models_that_are_not_classifiers(colour, tmp_path):
    import keras

    inp = keras.Input((16, 16, 3))
    pose = keras.layers.Reshape((1, 17, 3))(keras.layers.Dense(51)(keras.layers.Flatten()(inp)))
    to_tflite(keras.Model(inp, pose), tmp_path / "pose.tflite")
    seg = keras.layers.Conv2D(4, 1)(inp)
    to_tflite(keras.Model(inp, seg), tmp_path / "seg.tflite")
    for name in ("pose", "seg"):
        line = one_error(run_cli("predict", tmp_path / f"{name}.tflite", colour["image"]))
        assert "is not a vector of class scores" in line, line
    features = keras.layers.ReLU()(keras.layers.Dense(1024)(keras.layers.GlobalAveragePooling2D()(inp)))
    (tmp_path / "features").mkdir()  # a folder of its own: no labels.txt beside it
    to_tflite(keras.Model(inp, features), tmp_path / "features" / "f.tflite")
    proc = run_cli("predict", tmp_path / "features" / "f.tflite", colour["image"])
    assert proc.returncode == 0 and "feature extractor" in proc.stderr, proc.stderr


def test_keras_files_load_in_safe_mode(tmp_path, colour):
    import keras

    marker = tmp_path / "lambda-ran"
    target = str(marker)
    inp = keras.Input((16, 16, 3))
    out = keras.layers.Lambda(lambda x: (open(target, "w").close(), x)[1])(inp)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(out))
    keras.Model(inp, out).save(tmp_path / "lambda.keras")
    marker.unlink(missing_ok=True)  # building the model above called the lambda once
    line = one_error(run_cli("predict", tmp_path / "lambda.keras", colour["image"]))
    assert "lambda.keras" in line and "not a loadable Keras model" in line
    assert not marker.exists(), "code inside a .keras file ran"


def test_eval_reports_skipped_files(colour, tmp_path):
    images, labels = colour_images()
    names = ["red", "green", "blue"]
    for i, (img, y) in enumerate(zip(images, labels)):
        write_rgb(tmp_path / "data" / "val" / names[y] / f"{i}.png", img)
        write_rgb(tmp_path / "data" / "train" / names[y] / f"{i}.png", img)
    (tmp_path / "data" / "val" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    proc = run_cli("eval", colour["model"], tmp_path / "data", "--json")
    doc = json.loads(proc.stdout)
    assert [Path(s["path"]).name for s in doc["skipped"]] == ["broken.png"] and doc["count"] == 12
    proc = run_cli("eval", colour["model"], tmp_path / "data")
    assert "1 file(s) skipped" in proc.stdout and "broken.png" in proc.stdout
