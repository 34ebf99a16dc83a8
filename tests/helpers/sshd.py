"""A real OpenSSH server on 127.0.0.1 for the tests: its own host key, a user key, a free port."""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SshServer:
    """A running sshd and an ssh_config with aliases that reach it."""

    port: int
    config: Path
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return path


def start(root: Path) -> SshServer:
    """Start sshd (foreground, logging to a file) and write an ssh_config with the aliases
    `mypi` (good key), `badkey` (a key the server does not know) and `nohost` (a closed port)."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    host_key = keygen(root / "host_key")
    user_key = keygen(root / "user_key")
    other_key = keygen(root / "other_key")
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    os.chmod(root / "authorized_keys", 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    port = free_port()
    (root / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
StrictModes no
UsePAM no
AcceptEnv XDG_CONFIG_HOME
""")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stdout=subprocess.DEVNULL,
                            stderr=open(root / "sshd.log", "w"))
    user = getpass.getuser()
    common = "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  IdentitiesOnly yes\n"
    config = root / "ssh_config"
    config.write_text(
        f"Host mypi\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {user_key}\n{common}"
        f"Host badkey\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {other_key}\n{common}"
        f"Host nohost\n  HostName 127.0.0.1\n  Port {free_port()}\n  User {user}\n  IdentityFile {user_key}\n{common}")
    end = time.time() + 20
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return SshServer(port, config, proc)
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(root / 'sshd.log').read_text()}")
        time.sleep(0.1)
    raise RuntimeError("sshd did not start listening")
