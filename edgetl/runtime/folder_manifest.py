"""What a folder's ``manifest.json`` holds, typed: a run folder's (:class:`RunManifest`: the run's
classes, input contract and confidence, its model.keras as the one artifact) and an export
folder's (:class:`ExportManifest`: every artifact with its hash and verdict, the golden set). Both
are read field by field, so a damaged or crafted file is one error naming it and the field.
TensorFlow-free: a device reads the export manifest beside its models.

Where these files are is :mod:`edgetl.runs`'s business; this module only reads and writes them."""
from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from edgetl.atomic import write_atomic
from edgetl.errors import EdgetlError
from edgetl.runtime.confidence import Confidence
from edgetl.runtime.labels import check_label_list
from edgetl.runtime.manifest import MANIFEST, ModelManifest, check_thresholds
from edgetl.runtime.task import Task
from edgetl.runtime.spec import PixelSpec


def _bad(source: Path, name: str, why: str, fix: str) -> EdgetlError:
    return EdgetlError(f"manifest field '{name}' {why}", path=source, fix=fix)


def _optional(d: dict, name: str, kind: type, source: Path, fix: str):
    value = d.get(name)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        raise _bad(source, name, f"is {value!r}, not a {kind.__name__}", fix)
    return value


def _inside(name: object, source: Path, fix: str) -> str:
    """An artifact's file name, relative and inside its folder (a crafted ``../x`` is refused)."""
    parts = PurePosixPath(name).parts if isinstance(name, str) else ()
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise _bad(source, "file", f"is {name!r}, not a file inside the folder", fix)
    return name


@dataclass
class ArtifactEntry:
    """One model file in a folder's manifest: where it is (relative to the folder), whether
    export verified it, the oldest runtimes it needs, and its :class:`ModelManifest` with the hash."""

    file: str
    manifest: ModelManifest
    size_bytes: int | None = None
    verified: bool | None = None
    needs: dict | None = None

    def to_dict(self) -> dict:
        """JSON-ready form: the entry's own fields, then the model's manifest."""
        own = {"file": self.file, "size_bytes": self.size_bytes, "verified": self.verified, "needs": self.needs}
        return {k: v for k, v in own.items() if v is not None} | self.manifest.to_dict()

    @classmethod
    def from_dict(cls, d: object, source: Path, fix: str) -> "ArtifactEntry":
        """Read what :meth:`to_dict` wrote, every field checked."""
        if not isinstance(d, dict):
            raise _bad(source, "artifacts", "holds an entry that is not a JSON object", fix)
        return cls(_inside(d.get("file"), source, fix), ModelManifest.from_dict(d, source),
                   _optional(d, "size_bytes", int, source, fix), _optional(d, "verified", bool, source, fix),
                   _optional(d, "needs", dict, source, fix))


@dataclass
class GoldenAnswers:
    """What one artifact answered on the golden images at export, and how far it may move."""

    probabilities: list[list[float]]
    tolerance: float


@dataclass
class GoldenEntry:
    """The golden set: the file of images beside the artifacts, their names, each kept artifact's answers."""

    file: str
    images: list[str]
    expected: dict[str, GoldenAnswers]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"file": self.file, "images": self.images,
                "expected": {k: {"probabilities": v.probabilities, "tolerance": v.tolerance}
                             for k, v in self.expected.items()}}

    @classmethod
    def from_dict(cls, d: object, source: Path, fix: str) -> "GoldenEntry":
        """Read what :meth:`to_dict` wrote, every field checked."""
        if not isinstance(d, dict):
            raise _bad(source, "golden", "is not a JSON object", fix)
        images, expected = d.get("images"), d.get("expected")
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise _bad(source, "golden.images", "is not a list of names", fix)
        if not isinstance(expected, dict):
            raise _bad(source, "golden.expected", "is not a mapping", fix)
        answers = {}
        for name, e in expected.items():
            probs, tol = (e.get("probabilities"), e.get("tolerance")) if isinstance(e, dict) else (None, None)
            if not isinstance(probs, list) or isinstance(tol, bool) or not isinstance(tol, (int, float)):
                raise _bad(source, f"golden.expected.{name}", "lacks its probabilities or tolerance", fix)
            answers[name] = GoldenAnswers(probs, float(tol))
        return cls(_inside(d.get("file"), source, fix), images, answers)


def _read_object(file: Path, what: str, fix: str) -> dict:
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EdgetlError(f"{what} cannot be read ({type(e).__name__}: {e})", path=file, fix=fix) from None
    if not isinstance(doc, dict):
        raise EdgetlError(f"{what} is not a JSON object", path=file, fix=fix)
    return doc


def _shared_fields(d: dict, file: Path, fix: str) -> dict:
    """The fields both folder manifests open with, checked: classes, input contract, backbone,
    split and tool versions."""
    if "labels" not in d:
        raise _bad(file, "labels", "is missing", fix)
    return {"labels": check_label_list(d["labels"], file, "labels"), "input": PixelSpec.from_dict(d.get("input"), file),
            "backbone": _optional(d, "backbone", str, file, fix), "split": _optional(d, "split", dict, file, fix),
            "versions": {str(k): str(v) for k, v in (_optional(d, "versions", dict, file, fix) or {}).items()}}


class _Written(abc.ABC):
    """Written whole under a temporary name, then renamed: a reader never sees half a manifest."""

    @abc.abstractmethod
    def to_dict(self) -> dict:
        """JSON-ready form."""

    def write(self, file: Path) -> None:
        """Write it to ``file``."""
        write_atomic(file, json.dumps(self.to_dict(), indent=1), leftover_ok=True)


@dataclass
class RunManifest(_Written):
    """RUN/manifest.json: what export reads of a run (classes, input contract, how the data was
    split, the calibrated confidence), with model.keras's own manifest as the one artifact."""

    labels: list[str]
    input: PixelSpec
    backbone: str | None = None
    split: dict | None = None
    versions: dict[str, str] = field(default_factory=dict)
    confidence: Confidence | None = None
    alpha: float | None = None
    artifacts: list[ArtifactEntry] = field(default_factory=list)
    task: Task = Task.SINGLE_LABEL
    thresholds: list[float] | None = None
    """Multi-label: each label's threshold, folded into model.keras (see :class:`ModelManifest`)."""

    FIX = "train the run again"

    @property
    def multi_label(self) -> bool:
        return self.task == Task.MULTI_LABEL

    def to_dict(self) -> dict:
        """JSON-ready form."""
        out = {"labels": self.labels, "input": self.input.to_dict(), "backbone": self.backbone, "split": self.split,
               "versions": self.versions, "confidence": self.confidence.to_dict() if self.confidence else None,
               "task": str(self.task) if self.multi_label else None, "thresholds": self.thresholds}
        return ({k: v for k, v in out.items() if v is not None}
                | {"alpha": self.alpha, "artifacts": [a.to_dict() for a in self.artifacts]})

    @classmethod
    def read(cls, file: Path) -> "RunManifest":
        """Read and check RUN/manifest.json."""
        d = _read_object(file, "the run's manifest", cls.FIX)
        shared = _shared_fields(d, file, cls.FIX)
        alpha = d.get("alpha")
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))):
            raise _bad(file, "alpha", f"is {alpha!r}, not a number", cls.FIX)
        task = d.get("task", Task.SINGLE_LABEL)
        if task not in set(Task):
            raise _bad(file, "task", f"is {task!r}, not one of {', '.join(Task)}", cls.FIX)
        return cls(**shared, alpha=alpha, task=Task(task),
                   thresholds=check_thresholds(d.get("thresholds"), len(shared["labels"]), file),
                   confidence=Confidence.from_dict(d["confidence"], file) if d.get("confidence") is not None else None,
                   artifacts=[ArtifactEntry.from_dict(a, file, cls.FIX) for a in d.get("artifacts") or []])


@dataclass
class ExportManifest(_Written):
    """RUN/export/manifest.json: every artifact export made (kept and rejected) with its hash and
    verdict, the tools that made them, and the golden set."""

    labels: list[str]
    input: PixelSpec
    artifacts: list[ArtifactEntry]
    backbone: str | None = None
    split: dict | None = None
    run: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    onnx_int8_target: dict | None = None
    golden: GoldenEntry | None = None
    created: str | None = None

    FIX = "export the run again: edgetl export RUN"

    @property
    def verified(self) -> list[ArtifactEntry]:
        """The artifacts export verified (the ones to ship)."""
        return [a for a in self.artifacts if a.verified]

    def entry(self, file_name: str) -> ArtifactEntry | None:
        """The artifact whose file is named ``file_name`` (in the folder or rejected/)."""
        return next((a for a in self.artifacts if PurePosixPath(a.file).name == file_name), None)

    def sha256(self, file_name: str) -> str | None:
        """The sha256 export recorded for the artifact named ``file_name`` (None: it records none)."""
        entry = self.entry(file_name)
        return entry.manifest.sha256 if entry else None

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"labels": self.labels, "input": self.input.to_dict(), "backbone": self.backbone, "split": self.split,
                "run": self.run, "artifacts": [a.to_dict() for a in self.artifacts], "versions": self.versions,
                "onnx_int8_target": self.onnx_int8_target, "golden": self.golden.to_dict() if self.golden else None,
                "created": self.created}

    @classmethod
    def read(cls, file: Path) -> "ExportManifest":
        """Read and check an export folder's manifest.json (also its copy in a deploy folder)."""
        d = _read_object(file, "the manifest", cls.FIX)
        shared = _shared_fields(d, file, cls.FIX)
        if not isinstance(d.get("artifacts"), list):
            raise _bad(file, "artifacts", "is not a list", cls.FIX)
        return cls(**shared, artifacts=[ArtifactEntry.from_dict(a, file, cls.FIX) for a in d["artifacts"]],
                   run=_optional(d, "run", str, file, cls.FIX),
                   onnx_int8_target=_optional(d, "onnx_int8_target", dict, file, cls.FIX),
                   golden=GoldenEntry.from_dict(d["golden"], file, cls.FIX) if d.get("golden") else None,
                   created=_optional(d, "created", str, file, cls.FIX))

    @classmethod
    def beside(cls, model: Path) -> "ExportManifest":
        """The manifest in the folder that holds ``model``."""
        return cls.read(model.parent / MANIFEST)

