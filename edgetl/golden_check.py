"""`edgetl verify MODEL [--host HOST]`: replay a model's golden set here or on devices and compare
with what the model answered at export (see :mod:`edgetl.runtime.golden`). TensorFlow-free."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from edgetl.benchmark.device import DeviceFacts
from edgetl.errors import EdgetlError
from edgetl.runs import ExportFolder
from edgetl.runtime.golden import Golden, GoldenResult, probabilities
from edgetl.runtime.manifest import file_sha256


@dataclass
class GoldenReport:
    """The golden check of one model in one place."""

    where: str
    """"local", or "ssh:HOST"."""
    runtime: str
    results: list[GoldenResult]
    device: DeviceFacts = field(default_factory=DeviceFacts)
    hint: str = ""
    """What to do when it failed and edgetl can tell why."""

    @property
    def ok(self) -> bool:
        """Every golden image answered as at export."""
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"where": self.where, "runtime": self.runtime, "ok": self.ok, "device": self.device.to_dict(),
                "results": [r.to_dict() for r in self.results], "hint": self.hint}


# ONNX Runtime runs an int8 model made for one CPU family on another through other kernels: on an
# emulated Cortex-A72, an x86 (U8S8) model's probabilities moved 7 to 18 output steps, the arm64
# (S8S8) model's at most one.
_ONNX_TARGET_OF_ARCH = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86", "amd64": "x86"}


def _hint(model: Path, report: GoldenReport) -> str:
    """Why a device answers differently, when the model was made for another kind of CPU."""
    from edgetl.runtime import load

    if report.ok or model.suffix.lower() != ".onnx":
        return ""
    made_for = getattr(load(model).manifest, "int8_target", None)
    wanted = _ONNX_TARGET_OF_ARCH.get((report.device.arch or "").lower())
    if made_for and wanted and made_for != wanted:
        return (f"this int8 ONNX model was made for {made_for} CPUs and the device is {report.device.arch}: "
                f"export one for it with `edgetl export RUN --onnx --int8 --target {wanted}`")
    return ""


def golden_reports(path: Path, gold: Golden, threads: int | None = None, hosts: list[str] | None = None,
                   remote_python: str = "python3", ssh_config: str | None = None,
                   timeout: float = 900.0) -> list[GoldenReport]:
    """Run ``path``'s golden images (``gold``) locally (no hosts) or on each SSH host, and compare."""
    from edgetl.runtime import load

    if not hosts:
        clf = load(path, threads=threads)
        return [GoldenReport("local", clf.runtime, gold.compare(probabilities(clf, gold.pixels)))]
    from edgetl.remote.runner import golden_on_host
    from edgetl.remote.ssh import SshTarget

    reports = []
    for host in hosts:
        t = SshTarget(host, remote_python=remote_python, ssh_config=ssh_config, timeout=timeout)
        doc = golden_on_host(t, path, ExportFolder(path.parent).golden)
        report = GoldenReport(f"ssh:{host}", doc["runtime"], gold.compare(doc["probabilities"]),
                              replace(DeviceFacts.from_dict(doc.get("device")), target=f"ssh:{host}"))
        report.hint = _hint(path, report)
        reports.append(report)
    return reports


@dataclass
class ModelCheck:
    """`edgetl verify MODEL`: the golden check in each place, and whether the file is still the one
    its export verified."""

    model: Path
    modified_since_export: bool
    reports: list[GoldenReport]

    @property
    def ok(self) -> bool:
        """Unchanged since export, and every golden image answered as then, everywhere."""
        return all(r.ok for r in self.reports) and not self.modified_since_export

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"model": str(self.model), "ok": self.ok, "modified_since_export": self.modified_since_export,
                "checks": [r.to_dict() for r in self.reports]}


def verify_model(model: str | Path, threads: int | None = None, hosts: list[str] | None = None,
                 remote_python: str = "python3", ssh_config: str | None = None, timeout: float = 900.0) -> ModelCheck:
    """Replay ``model``'s golden set here (no hosts) or on each SSH host, and compare its sha256
    with the one its export recorded."""
    path = Path(model)
    if not path.is_file():
        raise EdgetlError("no such model file", path=path, fix="give a .tflite or .onnx file from RUN/export/")
    if path.suffix.lower() not in (".tflite", ".onnx"):
        raise EdgetlError(f"'{path.suffix or path.name}' is not an exported model", path=path,
                          fix="give a .tflite or .onnx file from RUN/export/")
    gold = Golden.beside(path)  # the export manifest, read once: the golden answers and the sha256
    modified = gold.sha256 is not None and file_sha256(path) != gold.sha256
    return ModelCheck(path, modified, golden_reports(path, gold, threads, hosts, remote_python, ssh_config, timeout))
