"""Security at the device edge: nothing a file name or a host name carries reaches a device's shell,
and every device run ends, and cleans up, with the connection (Ctrl-C, timeouts)."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.cli import run_cli
from helpers.fake_device import fake_device_python
from helpers.cli import one_error


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
import edgetl.remote.zipapp as zipapp
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


@pytest.mark.parametrize("damage", [
    lambda d: d.pop("machine"),
    lambda d: d.update(runtimes={"onnxruntime": {"loads": "yes"}}),
    lambda d: d.update(conflicts="numpy 1.x"),
    lambda d: d["versions"].update(numpy=2),
])
def test_a_doctor_answer_with_a_missing_or_mistyped_field_is_one_error_naming_the_host(damage):
    """What a device's doctor sends is read field by field at the SSH boundary: an old or altered
    runner's answer is one error naming the host, not a KeyError in the report."""
    from edgetl.doctor import DeviceDiagnosis, device_diagnosis
    from edgetl.errors import EdgetlError

    sent = device_diagnosis().to_dict()
    assert DeviceDiagnosis.from_dict(json.loads(json.dumps(sent)), "mypi") == device_diagnosis()
    damage(sent)
    with pytest.raises(EdgetlError, match=r"^mypi: the doctor's answer has no valid"):
        DeviceDiagnosis.from_dict(sent, "mypi")
