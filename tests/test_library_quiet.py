"""The library logs and never prints (issue 41): a program that calls the API decides what is shown.

Two facts: no library module writes to the terminal by itself (found by reading every module's
syntax tree, so a new ``print`` or console import fails here), and a script that trains and
exports through ``edgetl.train``/``edgetl.export`` gets nothing on stdout or stderr unless it
configures logging, while the same script with ``logging.basicConfig`` sees the export's lines."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgetl"

# Modules whose job is the terminal (the CLI, its console) and programs that run in a process of
# their own and answer their parent on stdout (the device runner, the export's background child).
TERMINAL = {"cli.py", "console.py"}
PROGRAMS = {"benchmark/runner.py", "exporting/background.py", "remote/zipapp.py"}
# Where a module writes to a stream on purpose: native_logs flushes around the descriptors it
# silences.
STREAM_FLUSH_ONLY = {"native_logs.py"}


DRAWING = {"rich", "rich.console", "rich.progress", "rich.live", "rich.table"}
"""rich's parts that draw (rich.markup's escape only formats text)."""


def _library_modules() -> list[Path]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("_vendor/") or rel.startswith("cli/") or rel in TERMINAL | PROGRAMS:
            continue
        out.append(path)
    return out


def _writes(tree: ast.AST) -> list[str]:
    """print(...) calls, sys.stdout/sys.stderr .write calls and imports of the CLI console or of rich's drawing."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "print":
                found.append(f"print() at line {node.lineno}")
            if (isinstance(f, ast.Attribute) and f.attr == "write" and isinstance(f.value, ast.Attribute)
                    and f.value.attr in ("stdout", "stderr")):
                found.append(f"sys.{f.value.attr}.write at line {node.lineno}")
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module == "edgetl.console" or node.module in DRAWING):
            found.append(f"import from {node.module} at line {node.lineno}")
        if isinstance(node, ast.Import) and any(a.name in DRAWING or a.name == "edgetl.console"
                                                for a in node.names):
            found.append(f"import at line {node.lineno}")
    return found


def test_no_library_module_prints():
    modules = _library_modules()
    assert len(modules) > 60  # the scan sees the package, not an empty folder
    offenders = {p.relative_to(PACKAGE).as_posix(): w for p in modules
                 if (w := _writes(ast.parse(p.read_text(encoding="utf-8"))))}
    assert not offenders, offenders


def test_scan_finds_a_print():
    """The scan itself: a module that prints, or imports the console, is found."""
    assert _writes(ast.parse("print('x')")) == ["print() at line 1"]
    assert _writes(ast.parse("import sys\nsys.stderr.write('x')")) == ["sys.stderr.write at line 2"]
    assert _writes(ast.parse("from edgetl.console import err"))
    assert _writes(ast.parse("from rich.console import Console"))
    assert not _writes(ast.parse("from rich.markup import escape"))
    assert not _writes(ast.parse("import logging\nlogging.getLogger(__name__).info('x')"))


SCRIPT = textwrap.dedent("""
    import logging, sys
    import edgetl
    if sys.argv[2] == "logging":
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    result = edgetl.export(sys.argv[1], edgetl.ExportOptions(formats=["fp32"]))
    assert result.checks[0].file == "model_fp32.tflite"
""")


@pytest.mark.slow
def test_api_export_is_silent_unless_logging_is_configured(shapes_run, tmp_path):
    """edgetl.export() from a script: nothing on either stream; with logging configured, the
    export's own lines (the Keras reference, the artifact's verdict) under edgetl's loggers."""
    import shutil

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run = tmp_path / "run"
    shutil.copytree(shapes_run.path, run)
    quiet = subprocess.run([sys.executable, "-c", SCRIPT, str(run), "quiet"], capture_output=True, text=True,
                           env=env, timeout=600)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert quiet.stdout == "" and quiet.stderr == "", (quiet.stdout[-1000:], quiet.stderr[-1000:])
    told = subprocess.run([sys.executable, "-c", SCRIPT, str(run), "logging"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert told.returncode == 0, told.stderr[-2000:]
    assert "edgetl.exporting.pipeline: Keras reference: accuracy" in told.stderr
    assert "model_fp32.tflite: accuracy" in told.stderr
    assert "[yellow]" not in told.stderr and "\x1b[" not in told.stderr  # plain text, no markup
