"""Facts about the machine a benchmark ran on, so a throttled Pi shows in its results."""
from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field, fields

from edgetl.text import clean, finite_number
from edgetl.versions import package_versions


@dataclass
class DeviceFacts:
    """The machine a result was measured on, each fact where it could be read (None where not).
    Every text here comes from the device: shown escaped, never as markup."""

    target: str = "local"
    """"local", "ssh:HOST" or "adb:SERIAL"."""
    hostname: str | None = None
    cpu: str | None = None
    cores: int | None = None
    arch: str | None = None
    os: str | None = None
    python: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    governor: str | None = None
    freq_mhz: float | None = None
    temperature_c: dict[str, float] | None = None
    throttled: str | None = None
    """`vcgencmd get_throttled` on a Raspberry Pi (0x0: never throttled)."""
    model: str | None = None
    """A phone's model name (Android)."""
    delegate: str | None = None
    """What ran the model on a phone: cpu, gpu or nnapi."""

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: object) -> "DeviceFacts":
        """Facts as a device sent them: keys of a newer runner are ignored, and a fact of the wrong
        type is dropped rather than trusted (these are for display and the thread-count warning)."""
        if not isinstance(d, dict):
            return cls()
        kinds = {"cores": int, "freq_mhz": (int, float), "versions": dict, "temperature_c": dict}
        kept = {}
        for f in fields(cls):
            value = d.get(f.name)
            kind = kinds.get(f.name, str)
            if value is not None and isinstance(value, kind) and not isinstance(value, bool):
                kept[f.name] = _cleaned(value)
        return cls(**kept)


def _cleaned(value: object) -> object:
    """A fact as shown to the user: text without control characters, at most 200 characters; a
    mapping (versions, temperatures) at most 50 entries of such text and finite numbers."""
    if isinstance(value, str):
        return clean(value)[:200]
    if isinstance(value, dict):
        items = list(value.items())[:50]
        return {clean(k)[:60]: (clean(v)[:60] if isinstance(v, str) else finite_number(v)) for k, v in items
                if isinstance(v, str) or finite_number(v) is not None}
    return finite_number(value) if isinstance(value, float) else value


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cpu_model() -> str:
    """This machine's CPU in words (/proc/cpuinfo's model name, or what platform says)."""
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


def device_facts() -> DeviceFacts:
    """CPU, cores, architecture, OS, Python, runtime versions, governor, frequency, temperature,
    throttling of this machine (each where readable)."""
    freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    return DeviceFacts(
        hostname=platform.node(), cpu=cpu_model(), cores=os.cpu_count(), arch=platform.machine(),
        os=_os_name(), python=platform.python_version(),
        versions={k: v for k, v in package_versions(DEVICE_PACKAGES).items() if k != "python"},
        governor=_read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        freq_mhz=int(freq) / 1000 if freq and freq.isdigit() else None,
        temperature_c=_temperatures() or None, throttled=_throttled())
