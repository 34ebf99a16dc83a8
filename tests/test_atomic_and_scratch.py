"""The write-then-rename helper never follows a planted link, and a killed process's scratch
folder is swept by the next one (edgetl.atomic, edgetl.scratch)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edgetl.atomic import replacing, temporary_name, write_atomic
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


def test_in_an_owned_folder_a_killed_writers_leftover_is_replaced_and_a_link_is_not_followed(tmp_path):
    """leftover_ok (a run folder under its lock): the temporary name's leftover is removed, a link
    there is removed itself (its target untouched), and the write completes."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "state.json"
    os.symlink(victim, temporary_name(target))
    write_atomic(target, "{}", leftover_ok=True)
    assert target.read_text() == "{}" and victim.read_text() == "keep me" and not temporary_name(target).exists()


def test_replacing_renames_on_success_and_leaves_the_old_file_on_failure(tmp_path):
    """The helper for writers that take a name (Keras, matplotlib, numpy): same suffix, renamed
    into place at the end; a failing writer leaves the previous file whole and no temporary."""
    target = tmp_path / "model.keras"
    target.write_text("old")
    with replacing(target) as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the writer failed")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_no_module_renames_by_hand():
    """One write-then-rename: os.replace appears only in the helper, the run-folder swaps (whole
    folders), the image cache (a locked, preallocated file), a move aside and the zipapp; found
    by reading every module."""
    import ast

    root = Path(__file__).resolve().parents[1] / "edgetl"
    # (pipeline moves a refused artifact aside; the zipapp is built in a cache shared by processes,
    # under a unique temporary name)
    allowed = {"atomic.py", "runs.py", "data/cache.py", "exporting/pipeline.py", "remote/zipapp.py"}
    found = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).as_posix()
        if rel.startswith("_vendor/") or rel in allowed:
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("replace", "rename")
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"):
                found.append(f"{rel}:{node.lineno}")
    assert not found, found


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
