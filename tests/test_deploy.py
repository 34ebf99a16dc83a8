"""`edgetl deploy` against a real OpenSSH server on 127.0.0.1: the device is this machine, its
deployment folder and systemd user-unit folder are the test's own (XDG_CONFIG_HOME is passed
through SSH), and systemd itself need not run: the unit file is checked with systemd-analyze."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from helpers.cli import run_cli
from helpers.fake_device import fake_device_python
from helpers.tflite_files import alter_weights

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


@pytest.fixture
def device(ssh_server, tmp_path):
    """An ssh_config whose `mypi` passes XDG_CONFIG_HOME, a deployment folder, a device Python without edgetl."""
    config_home = tmp_path / "device-config"
    config = tmp_path / "ssh_config"
    config.write_text(ssh_server.config.read_text().replace("Host mypi\n", f"Host mypi\n  SetEnv XDG_CONFIG_HOME={config_home}\n"))
    return {"config": config, "dir": tmp_path / "device" / "deploy", "units": config_home / "systemd" / "user",
            "python": fake_device_python(tmp_path / "dev")}


def deploy(device, *args, python=None):
    return run_cli("deploy", *args, "--host", "mypi", "--ssh-config", device["config"], "--remote-dir", device["dir"],
                   "--remote-python", python or device["python"], "--json")


def test_deploy_checks_golden_then_installs_idempotently(shapes_export, device, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(shapes_export.folder, export)
    proc = deploy(device, export / "model_int8.tflite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    done = json.loads(proc.stdout)
    assert done["golden"] == "8 of 8 images answer as at export" and done["service"] is None
    files = {p.name for p in device["dir"].iterdir()}
    assert {"model.tflite", "manifest.json", "golden.npy", "labels.txt", "runner.pyz"} <= files
    first = (device["dir"] / "model.tflite").read_bytes()
    assert first == (export / "model_int8.tflite").read_bytes()
    assert deploy(device, export / "model_int8.tflite").returncode == 0  # again: the same result
    assert sorted(p.name for p in device["dir"].parent.iterdir()) == ["deploy"]  # no .new/.old left
    status = json.loads(deploy(device, "--status").stdout)
    assert status["deployed"] and status["model"] == "model.tflite" and status["labels"]
    # the outbox a `--capture` service fills: complete frames and bytes, a symlink never followed
    box = tmp_path / "outbox"
    box.mkdir()
    for i in range(2):
        (box / f"{1796000000000000000 + i:019d}_{i}.jpg").write_bytes(b"x" * 10)
        (box / f"{1796000000000000000 + i:019d}_{i}.json").write_text("{}")
    (box / f"{1796000000000000009:019d}_9.json").symlink_to("/etc/passwd")
    status = json.loads(deploy(device, "--status", "--capture", box).stdout)
    assert status["outbox"] == {"folder": str(box), "frames": 2, "bytes": 24}

    # A model changed since export is refused before anything is copied (verify would call it modified) ...
    alter_weights(export / "model_int8.tflite")
    proc = deploy(device, export / "model_int8.tflite")
    assert proc.returncode == 2 and "differs from the one its export verified (sha256)" in proc.stderr, proc.stderr
    # ... and one whose manifest was made to match it fails the golden check on the device.
    manifest = json.loads((export / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["file"].endswith("model_int8.tflite"))
    entry["sha256"] = hashlib.sha256((export / "model_int8.tflite").read_bytes()).hexdigest()
    (export / "manifest.json").write_text(json.dumps(manifest))
    proc = deploy(device, export / "model_int8.tflite")
    assert proc.returncode == 2 and "golden check failed" in proc.stderr and "nothing was changed" in proc.stderr
    assert (device["dir"] / "model.tflite").read_bytes() == first
    assert sorted(p.name for p in device["dir"].parent.iterdir()) == ["deploy"]

    assert json.loads(deploy(device, "--remove").stdout)["removed"]
    assert not device["dir"].exists()
    assert deploy(device, "--remove").returncode == 0  # removing twice is fine


def test_service_unit_is_a_valid_user_unit(shapes_export, device, tmp_path):
    # Without edgetl on the device the model is deployed but the service cannot run: said so.
    proc = deploy(device, shapes_export.folder / "model_int8.tflite", "--service")
    assert proc.returncode == 2 and "edgetl (with OpenCV) is not installed there" in proc.stderr
    # With edgetl there (this Python has it), the unit is written; systemd need not run here.
    proc = deploy(device, shapes_export.folder / "model_int8.tflite", "--service", "--serve", "127.0.0.1:8099",
                  python=sys.executable)
    assert proc.returncode == 0, proc.stderr[-2000:]
    service = json.loads(proc.stdout)["service"]
    unit = device["units"] / "edgetl-live.service"
    text = unit.read_text()
    assert service["unit"] == str(unit) and "Restart=on-failure" in text and "WantedBy=default.target" in text
    assert f'"{device["dir"]}/model.tflite"' in text and '"--serve" "127.0.0.1:8099"' in text
    if shutil.which("systemd-analyze"):
        runtime_dir = tmp_path / "xdg-runtime"  # what a user session would have; systemd itself is not running
        runtime_dir.mkdir(mode=0o700)
        check = subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], capture_output=True, text=True,
                               env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime_dir)})
        assert check.returncode == 0, check.stderr
    assert json.loads(deploy(device, "--remove").stdout)["removed"] and not unit.exists()


def test_deploy_never_replaces_or_removes_a_folder_edgetl_did_not_make(shapes_export, device, tmp_path):
    """Deploying into an existing ~/models with the user's files, or `--remove --remote-dir Documents`,
    once deleted them: such a folder is refused and left as it was; a killed deploy's work folder
    (marked as edgetl's) is swept, anything else beside it is kept."""
    mine = device["dir"]
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    model = shapes_export.folder / "model_int8.tflite"
    for args in ((model,), ("--remove",)):
        proc = deploy(device, *args)
        assert proc.returncode == 2 and "edgetl did not make it" in proc.stderr, proc.stderr
        assert (mine / "notes.txt").read_text() == "mine" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    (mine / "notes.txt").unlink()
    left = mine.parent / f"{mine.name}.new.dead"  # what a killed deploy leaves
    left.mkdir()
    (left / ".edgetl-deploy").write_text("")
    (left / "model.tflite").write_bytes(b"x" * 1000)
    other = mine.parent / f"{mine.name}.new.user"  # a folder of that shape edgetl did not make
    other.mkdir()
    assert deploy(device, model).returncode == 0  # an empty folder is fine
    assert (mine / ".edgetl-deploy").exists() and not left.exists() and other.exists()
    assert deploy(device, "--remove").returncode == 0 and not mine.exists() and other.exists()


def test_remote_words_expand_a_leading_tilde_on_the_device_only(ssh_server):
    """The README's --remote-python ~/edgetl-venv/bin/python: quoting kept ~ from expanding."""
    from edgetl.remote.ssh import SshTarget, remote_command, ssh

    assert remote_command("~/venv/bin/python", "a~/b", "~user") == '"$HOME"/venv/bin/python \'a~/b\' \'~user\''
    target = SshTarget("mypi", ssh_config=str(ssh_server.config))
    proc = ssh(target, remote_command("sh", "-c", 'printf %s "$1"', "sh", "~/x $(id) y"))
    home = ssh(target, remote_command("sh", "-c", 'printf %s "$HOME"')).stdout.decode()
    assert proc.returncode == 0 and proc.stdout.decode() == f"{home}/x $(id) y"


def test_unit_words_with_control_characters_are_refused_and_percent_is_escaped(tmp_path):
    """A --source or address with a newline once made a unit systemd refused while deploy said done."""
    from edgetl.devices.deploy import DeployOptions, unit_text
    from edgetl.errors import EdgetlError

    with pytest.raises(EdgetlError, match="control character"):
        unit_text("/usr/bin/python3", "/m/model.tflite", DeployOptions(source="0\nExecStartPre=/bin/rm -rf ~"))
    text = unit_text("/usr/bin/python3", "/m/100%/model.tflite", DeployOptions(serve="127.0.0.1:80%i", source="rtsp://x/%h"))
    assert "Description=edgetl live classifier on 127.0.0.1:80%%i\n" in text
    assert '"/m/100%%/model.tflite"' in text and '"rtsp://x/%%h"' in text and text.count("\n[") == 2
    assert '"--capture" "/home/pi/edgetl-outbox"' in unit_text("/usr/bin/python3", "/m/model.tflite",
                                                                DeployOptions(capture="/home/pi/edgetl-outbox"))
    if shutil.which("systemd-analyze"):
        unit = tmp_path / "edgetl-live.service"
        unit.write_text(text.replace("/usr/bin/python3", sys.executable))
        runtime_dir = tmp_path / "xdg-runtime"
        runtime_dir.mkdir(mode=0o700)
        check = subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], capture_output=True, text=True,
                               env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime_dir)})
        assert "edgetl-live.service" not in check.stdout + check.stderr, check.stderr
