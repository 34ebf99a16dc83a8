"""The write-then-rename helper never follows a planted link, and a killed process's scratch
folder is swept by the next one (edgetl.atomic, edgetl.scratch)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edgetl.atomic import temporary_name, write_atomic
from edgetl.scratch import scratch_folder, sweep_abandoned


def test_a_link_planted_at_the_temporary_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "frame.json"
    os.symlink(victim, temporary_name(target))
    with pytest.raises(FileExistsError):
        write_atomic(target, b"{}")
    assert victim.read_text() == "keep me" and not target.exists()
    os.unlink(temporary_name(target))
    write_atomic(target, "{}")
    assert target.read_text() == "{}" and not temporary_name(target).exists()


def test_a_killed_exports_scratch_folder_is_swept_by_the_next(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has ended: its number names no live process now (or one not ours)
    root = Path(tempfile.gettempdir())
    left = root / f"edgetl-export-{pid}-abc123"
    left.mkdir()
    (left / "calibration.npy").write_bytes(b"x" * 1000)
    alive = root / f"edgetl-export-{os.getppid()}-def456"  # our parent is alive: never swept
    alive.mkdir()
    try:
        with scratch_folder("edgetl-export-") as mine:
            assert mine.is_dir() and mine.name.startswith(f"edgetl-export-{os.getpid()}-")
            assert sweep_abandoned("edgetl-export-") == []  # our own is never swept
        assert not mine.exists()
        assert alive.is_dir()
        assert not left.exists() or _pid_alive(pid)
    finally:
        for d in (left, alive):
            if d.exists():
                import shutil
                shutil.rmtree(d)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
