"""`edgetl doctor`: what is installed, which runtimes load, whether weights are cached, cameras, GPUs."""
from __future__ import annotations

import importlib
import platform
from dataclasses import asdict, dataclass

from edgetl.errors import EdgetlError
from edgetl.versions import package_versions

PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "onnxruntime-gpu",
            "ai-edge-litert", "tflite-runtime", "opencv-python-headless", "opencv-python", "opencv-contrib-python",
            "numpy", "protobuf", "flatbuffers", "mediapipe", "picamera2")


def _versions() -> dict[str, str | None]:
    return package_versions(PACKAGES, missing_as_none=True)


def _major(v: str | None) -> int:
    try:
        return int((v or "0").split(".")[0])
    except ValueError:
        return 0


def _conflicts(v: dict[str, str | None]) -> list[str]:
    """Known-incompatible pairs, each with what to do."""
    found = []
    if v["tensorflow"] and v["tensorflow-cpu"]:
        found.append("tensorflow and tensorflow-cpu are both installed and overwrite each other: "
                     "pip uninstall -y tensorflow tensorflow-cpu, then install edgetl[train] or edgetl[train-gpu]")
    wheels = _opencv_wheels(v)
    if len({v[p] for p in wheels}) > 1:  # same version: the files are the same build, which one wins is harmless
        found.append(f"{', '.join(f'{p} {v[p]}' for p in wheels)} all provide cv2 and overwrite each other: keep one "
                     "(opencv-python-headless on devices, opencv-python for a live window)")
    if v["onnxruntime"] and v["onnxruntime-gpu"]:
        found.append("onnxruntime and onnxruntime-gpu are both installed: uninstall one")
    if v["tensorflow"] or v["tensorflow-cpu"]:
        if v["protobuf"] and _major(v["protobuf"]) < 4:
            found.append(f"protobuf {v['protobuf']} is too old for TensorFlow 2.21: pip install -U protobuf")
    if v["tflite-runtime"] and _major(v["numpy"]) >= 2 and not v["ai-edge-litert"]:
        found.append("tflite-runtime wheels are built for numpy 1.x and fail with numpy 2: install ai-edge-litert")
    return found


def _opencv_wheels(v: dict[str, str | None]) -> list[str]:
    return [p for p in ("opencv-python-headless", "opencv-python", "opencv-contrib-python") if v[p]]


def _notes(v: dict[str, str | None]) -> list[str]:
    """Things worth knowing that do not break anything now (doctor still exits 0)."""
    found = []
    wheels = _opencv_wheels(v)
    if len(wheels) > 1 and len({v[p] for p in wheels}) == 1:
        found.append(f"{' and '.join(wheels)} are both installed (mediapipe, in edgetl[dev], brings "
                     "opencv-contrib-python): at the same version they hold the same cv2 and work; uninstalling "
                     "one removes cv2 for both, so reinstall the one you keep with --force-reinstall")
    return found


@dataclass
class RuntimeCheck:
    """Whether a runtime imports here, what it offers, or why it does not load."""

    loads: bool
    delegates: list[str] | None = None
    """LiteRT's delegates."""
    providers: list[str] | None = None
    """ONNX Runtime's execution providers."""
    error: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _runtimes() -> dict[str, RuntimeCheck]:
    from edgetl.runtime.litert import INTERPRETERS

    out: dict[str, RuntimeCheck] = {}
    for module, package in INTERPRETERS[:2]:
        try:
            importlib.import_module(module)
            out[package] = RuntimeCheck(True, delegates=["XNNPACK (CPU, default)"])
        except (ImportError, SystemError, AttributeError) as e:  # tflite-runtime under numpy 2 fails oddly
            out[package] = RuntimeCheck(False, error=f"{type(e).__name__}: {e}")
    try:
        import onnxruntime as ort

        out["onnxruntime"] = RuntimeCheck(True, providers=ort.get_available_providers())
    except ImportError as e:
        out["onnxruntime"] = RuntimeCheck(False, error=str(e))
    return out


@dataclass
class TensorflowCheck:
    """Whether TensorFlow imports here, its version, the GPUs it sees and whether it was built with CUDA."""

    installed: bool
    version: str | None = None
    gpus: list[str] | None = None
    cuda_build: bool | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _tensorflow() -> TensorflowCheck:
    from edgetl.native_logs import quiet_import

    try:
        tf = quiet_import("tensorflow")
    except ImportError:
        return TensorflowCheck(False)
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return TensorflowCheck(True, tf.__version__, gpus, tf.test.is_built_with_cuda())


@dataclass
class WeightsCheck:
    """Where each backbone's ImageNet weights are cached (None: not cached, downloaded on first use)."""

    cached: dict[str, str | None]
    cache_dir: str

    def to_dict(self) -> dict:
        """A backbone's name to its file, and ``cache_dir`` beside them (the --json form)."""
        return self.cached | {"cache_dir": self.cache_dir}


def _weights() -> WeightsCheck:
    from edgetl.models.backbones import BACKBONES, imagenet_cached, keras_cache_dir

    cached = {}
    for name, spec in BACKBONES.items():
        found = imagenet_cached(spec, 1.0, spec.default_size)
        cached[name] = str(found) if found else None
    return WeightsCheck(cached, str(keras_cache_dir()))


@dataclass
class OpenCvCheck:
    """OpenCV's version, whether it can open a window (and why not) and the cameras it opens; or why
    it does not import (``version`` None)."""

    version: str | None
    window: bool = False
    why_not: str | None = None
    cameras: list[int] | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        if self.version is None:
            return {"version": None, "error": self.error}
        return {"version": self.version, "window": self.window, "why_not": self.why_not, "cameras": self.cameras}


def _opencv() -> OpenCvCheck:
    try:
        from edgetl.live.overlay import has_gui
        from edgetl.live.sources import available_cameras

        gui, why = has_gui()
        import cv2

        return OpenCvCheck(cv2.__version__, gui, why or None, available_cameras())
    except ImportError as e:
        return OpenCvCheck(None, error=str(e))


@dataclass
class Diagnosis:
    """Everything `edgetl doctor` checks on this machine; ``to_dict`` is its --json output."""

    versions: dict[str, str | None]
    runtimes: dict[str, RuntimeCheck]
    tensorflow: TensorflowCheck
    imagenet_weights: WeightsCheck
    opencv: OpenCvCheck
    conflicts: list[str]
    notes: list[str]

    def to_dict(self) -> dict:
        return {"versions": self.versions, "runtimes": {k: r.to_dict() for k, r in self.runtimes.items()},
                "tensorflow": self.tensorflow.to_dict(), "imagenet_weights": self.imagenet_weights.to_dict(),
                "opencv": self.opencv.to_dict(), "conflicts": self.conflicts, "notes": self.notes}


@dataclass
class DeviceDiagnosis:
    """What `edgetl doctor --host` learns from the device's own Python (numpy and the runtimes only:
    no rich, no OpenCV, no TensorFlow there). ``to_dict`` is what crosses the SSH link and the
    ``--json`` output; :meth:`from_dict` reads it back, field by field."""

    versions: dict[str, str | None]
    runtimes: dict[str, RuntimeCheck]
    conflicts: list[str]
    notes: list[str]
    machine: str
    python: str

    def to_dict(self) -> dict:
        return asdict(self) | {"runtimes": {k: r.to_dict() for k, r in self.runtimes.items()}}

    @classmethod
    def from_dict(cls, d: dict, source: str) -> "DeviceDiagnosis":
        """The answer a device sent, each field checked: a missing or mistyped field is one error
        naming ``source`` (the host) rather than a KeyError in the report."""
        def strings(value: object) -> bool:
            return isinstance(value, list) and all(isinstance(v, str) for v in value)

        versions, runtimes = d.get("versions"), d.get("runtimes")
        checks = {"versions": isinstance(versions, dict) and all(isinstance(k, str) and (v is None or isinstance(v, str))
                                                                 for k, v in versions.items()),
                  "runtimes": isinstance(runtimes, dict) and all(isinstance(r, dict) and isinstance(r.get("loads"), bool)
                                                                 for r in runtimes.values()),
                  "conflicts": strings(d.get("conflicts")), "notes": strings(d.get("notes")),
                  "machine": isinstance(d.get("machine"), str), "python": isinstance(d.get("python"), str)}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise EdgetlError(f"{source}: the doctor's answer has no valid {bad[0]!r}",
                              fix="update edgetl on the device (or let edgetl copy its runner: uninstall it there)")
        def listed(r: dict, key: str) -> list[str] | None:
            return r[key] if strings(r.get(key)) else None

        kept = {name: RuntimeCheck(r["loads"], listed(r, "delegates"), listed(r, "providers"),
                                   r["error"] if isinstance(r.get("error"), str) else None)
                for name, r in runtimes.items()}
        return cls(versions, kept, d["conflicts"], d["notes"], d["machine"], d["python"])


def device_diagnosis() -> DeviceDiagnosis:
    """What a device needs checked (what `edgetl doctor --host` runs there through the bench runner)."""
    v = _versions()
    return DeviceDiagnosis(v, _runtimes(), _conflicts(v), _notes(v), platform.machine(), platform.python_version())


def diagnose() -> Diagnosis:
    """Everything doctor checks on this machine."""
    v = _versions()
    return Diagnosis(v, _runtimes(), _tensorflow(), _weights(), _opencv(), _conflicts(v), _notes(v))
