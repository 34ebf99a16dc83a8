"""Running edgetl's CLI as a user would, and reading what it says."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path


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


BLOCK_TF = textwrap.dedent("""
    import sys
    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError(f"{name} is blocked: the device side must not import it")
    sys.meta_path.insert(0, NoTensorFlow())
    from edgetl.cli import main
    main(sys.argv[1:])
""")


def run_without_tensorflow(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI in a Python where importing tensorflow or keras raises."""
    return subprocess.run([sys.executable, "-c", BLOCK_TF, *map(str, args)], capture_output=True, text=True, timeout=300)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run `python -m edgetl ...` in a subprocess, as a user would: without the log level the test
    process set for its own TensorFlow (helpers/models.py), which a user's shell does not have."""
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | (env or {})
    return subprocess.run([sys.executable, "-m", "edgetl", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout)
