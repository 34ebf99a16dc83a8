"""What the figure tools share: their sections of BENCHMARKS.md, and the CPU they measured on."""
from __future__ import annotations

import platform
from pathlib import Path


def replace_section(path: Path | None, title: str, text: str) -> None:
    """Replace the section ``## title...`` of ``path`` with ``text`` (or append it); None writes nothing."""
    if path is None:
        return
    old = path.read_text() if path.exists() else "# edgetl benchmarks\n"
    parts = old.split("\n## ")
    kept = [parts[0]] + [p for p in parts[1:] if not p.startswith(title)]
    path.write_text("\n## ".join(kept).rstrip("\n") + "\n\n" + text)


def cpu() -> str:
    """``AMD EPYC, x86_64``: the CPU model and the architecture."""
    from edgetl.benchmark.device import cpu_model

    return f"{cpu_model()}, {platform.machine()}"
