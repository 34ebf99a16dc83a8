"""A device Python for SSH tests: this machine's Python with edgetl hidden, as on a board where
only the copied runner (the zipapp) provides it."""
from __future__ import annotations

import stat
import sys
from pathlib import Path

HIDE_EDGETL = '''import sys
# An editable install finds edgetl modules outside any copied runner: drop it, as on a real device.
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
class HideEdgetl:
    """Make this Python look like a device without edgetl (only the copied runner has it)."""
    def find_spec(self, name, path=None, target=None):
        if name == "edgetl" and not sys.path[0].endswith(".pyz"):
            raise ImportError("edgetl is not installed here")
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, HideEdgetl())
'''


def fake_device_python(root: Path, blocked: tuple[str, ...] = ()) -> Path:
    """This test's Python, with edgetl hidden (and ``blocked`` packages missing), as a device's python3."""
    site = root / "site"
    site.mkdir(parents=True)
    (site / "sitecustomize.py").write_text(f"BLOCKED = {blocked!r}\n" + HIDE_EDGETL)
    wrapper = root / "python3"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper
