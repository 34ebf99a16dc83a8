"""Facts about the machine a benchmark ran on, so a throttled Pi shows in its results."""
from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
from edgetl.versions import package_versions


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _cpu_model() -> str:
    info = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in info.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _os_name() -> str:
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return f"{platform.system()} {platform.release()}"


def _temperatures() -> dict[str, float]:
    temps = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        raw, kind = _read(f"{zone}/temp"), _read(f"{zone}/type") or os.path.basename(zone)
        if raw and raw.lstrip("-").isdigit():
            temps[kind] = int(raw) / 1000
    return temps


def _throttled() -> str | None:
    """`vcgencmd get_throttled` on a Raspberry Pi (0x0 means never throttled)."""
    if not shutil.which("vcgencmd"):
        return None
    try:
        out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().split("=")[-1] or None


DEVICE_PACKAGES = ("numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "opencv-python-headless", "opencv-python")
"""The packages a device's facts list."""


def device_facts() -> dict:
    """CPU, cores, architecture, OS, Python, runtime versions, governor, frequency, temperature,
    throttling (each where readable)."""
    freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    return {
        "hostname": platform.node(), "cpu": _cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(),
        "os": _os_name(), "python": platform.python_version(),
        "versions": {k: v for k, v in package_versions(DEVICE_PACKAGES).items() if k != "python"},
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "freq_mhz": int(freq) / 1000 if freq and freq.isdigit() else None,
        "temperature_c": _temperatures() or None, "throttled": _throttled(),
    }
