"""How many CPU cores this process may use, and how many have nothing to run right now."""
from __future__ import annotations

import os
import time
from pathlib import Path

_PROC_STAT = Path("/proc/stat")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset``
    narrow), else every core of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int] | None:
    """All CPUs' (idle, total) time in ticks since boot, from Linux's /proc/stat; None elsewhere."""
    try:
        fields = [int(v) for v in _PROC_STAT.read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and waiting for I/O
    return idle, sum(fields[:8])  # guest time is already counted in user time


def idle_cores(sample_s: float = 0.2) -> float:
    """Usable cores that had nothing to run over the next ``sample_s`` seconds: whether another
    process would run beside this one or only compete with work already running (another test
    worker, a training). Where the system does not say, every usable core counts as idle."""
    before = _cpu_times()
    if before is None:
        return float(usable_cores())
    time.sleep(sample_s)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return float(usable_cores())
    share = (after[0] - before[0]) / (after[1] - before[1])
    return min(float(usable_cores()), share * (os.cpu_count() or 1))
