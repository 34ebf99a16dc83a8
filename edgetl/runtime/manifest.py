"""The artifact contract: one :class:`ModelManifest` per model file, written by train and export,
read by load, verify and bench. TensorFlow-free.

It travels twice: embedded in the file (TFLite: the associated file ``edgetl.json``; ONNX: the
``edgetl`` entry of ``metadata_props``) and beside it (its entry in the folder's ``manifest.json``,
which adds the file's sha256, which the file cannot hold about itself)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.text import shown
from edgetl.runtime.confidence import Confidence
from edgetl.runtime.labels import check_label_list
from edgetl.runtime.spec import PixelSpec
from edgetl.runtime.task import Task

MANIFEST = "manifest.json"
"""The manifest beside the models of a run folder or an export folder (:mod:`edgetl.runtime.folder_manifest`)."""


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's content, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


SCHEMA_VERSION = 2
"""The newest manifest this edgetl reads. A single-label model's manifest is still written as
version 1 (what earlier edgetl reads); a multi-label one as 2, so an edgetl that knows no task
refuses it ("upgrade edgetl") instead of reading its independent scores as one distribution."""


def check_thresholds(value: object, n: int, source: str | Path) -> list[float] | None:
    """A multi-label manifest's per-label thresholds: ``n`` numbers in (0, 1), or None."""
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != n
            or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t < 1 for t in value)):
        raise EdgetlError(f"manifest field 'thresholds' is {shown(value)}, not {n} scores between 0 and 1", path=source,
                          fix="re-export the model with edgetl")
    return [float(t) for t in value]


@dataclass
class ModelManifest:
    """What one model file is: classes, input contract, provenance. Modelled on timm's
    ``PretrainedCfg``: everything a consumer needs to use the file right, and nothing it must guess."""

    labels: list[str]
    input: PixelSpec
    format: str
    """"keras", "tflite" or "onnx"."""
    precision: str
    """"fp32", "fp16", "dynamic", "int8" or "int8+float" (int8 with its worst layers in float)."""
    backbone: str | None = None
    io: dict[str, dict] = field(default_factory=dict)
    """Quantization of the model's ``input`` and ``output`` tensors: dtype, scale, zero_point."""
    int8_target: str | None = None
    """For int8 ONNX: the CPU its signedness was chosen for ("x86" U8S8, "arm64" S8S8)."""
    split: dict | None = None
    """How the run split its data (``val_split``, ``seed``): eval re-makes the same held-out set."""
    versions: dict[str, str] = field(default_factory=dict)
    """The tools that made the file (Python packages and their versions)."""
    sha256: str | None = None
    """Of the file, in the copy beside it (the embedded copy cannot hold its own file's hash)."""
    confidence: Confidence | None = None
    """The calibrated temperature (folded into the file's scores) and the "unknown" threshold."""
    task: Task = Task.SINGLE_LABEL
    """Single-label (one distribution, the top class) or multi-label (independent scores, every
    label at or above :data:`edgetl.runtime.task.DECISION`)."""
    thresholds: list[float] | None = None
    """Multi-label: each label's threshold on its own sigmoid score, chosen on the validation split
    and folded into the model, so that the file's scores cross 0.5 exactly there (kept here as a
    record of what was chosen; a consumer compares the scores with 0.5)."""
    schema_version: int | None = None
    """Written as 1 for a single-label model and 2 for a multi-label one (see :data:`SCHEMA_VERSION`)."""

    def __post_init__(self) -> None:
        self.task = Task(self.task)
        if self.schema_version is None:
            self.schema_version = 1 if self.task == Task.SINGLE_LABEL else 2

    @property
    def multi_label(self) -> bool:
        """Several labels per image (independent scores)."""
        return self.task == Task.MULTI_LABEL

    def to_dict(self) -> dict:
        """JSON-ready form (what is embedded and written beside the file)."""
        out = ({k: v for k, v in vars(self).items() if k not in ("input", "confidence", "task")}
               | {"input": self.input.to_dict(), "confidence": self.confidence.to_dict() if self.confidence else None}
               | ({"task": str(self.task)} if self.multi_label else {}))
        return {k: v for k, v in out.items() if v is not None}

    def embedded(self) -> dict:
        """The form embedded in the model file itself: without the file's own hash."""
        return {k: v for k, v in self.to_dict().items() if k != "sha256"}

    @classmethod
    def from_dict(cls, d: object, source: str | Path) -> "ModelManifest":
        """Read what :meth:`to_dict` wrote, every field checked: a crafted or damaged manifest is
        one error naming ``source`` and the field (unknown keys are ignored)."""
        def bad(name: str, why: str) -> EdgetlError:
            return EdgetlError(f"manifest field '{name}' {why}", path=source, fix="re-export the model with edgetl")

        if not isinstance(d, dict):
            raise bad("manifest", "is not a JSON object")
        version = d.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise bad("schema_version", f"is {shown(version)}, not a version number")
        if version > SCHEMA_VERSION:
            raise EdgetlError(f"the manifest has schema version {version}; this edgetl reads up to {SCHEMA_VERSION}",
                              path=source, fix="upgrade edgetl: pip install -U edgetl")
        for name in ("format", "precision"):
            if not isinstance(d.get(name), str):
                raise bad(name, f"is {shown(d.get(name))}, not a string")
        for name in ("backbone", "int8_target", "sha256"):
            if d.get(name) is not None and not isinstance(d[name], str):
                raise bad(name, f"is {shown(d[name])}, not a string")
        for name in ("io", "versions", "split"):
            if d.get(name) is not None and not isinstance(d[name], dict):
                raise bad(name, "is not a mapping")
        if "labels" not in d:
            raise bad("labels", "is missing")
        task = d.get("task", Task.SINGLE_LABEL)
        if task not in set(Task):
            raise bad("task", f"is {shown(task)}, not one of {', '.join(Task)}")
        labels = check_label_list(d["labels"], source, "manifest 'labels'")
        return cls(labels=labels, task=Task(task), thresholds=check_thresholds(d.get("thresholds"), len(labels), source),
                   input=PixelSpec.from_dict(d.get("input"), source), format=d["format"], precision=d["precision"],
                   backbone=d.get("backbone"), io=d.get("io") or {}, int8_target=d.get("int8_target"),
                   split=d.get("split"), versions={str(k): str(v) for k, v in (d.get("versions") or {}).items()},
                   sha256=d.get("sha256"), schema_version=version,
                   confidence=Confidence.from_dict(d["confidence"], source) if d.get("confidence") is not None else None)


def split_embedded(doc: dict) -> tuple[dict, dict | None]:
    """An embedded edgetl entry -> (its pixel-contract fields, the whole manifest or None).
    Models exported before manifests were embedded carry the pixel contract alone."""
    if "schema_version" in doc:
        pixels = doc.get("input")
        return (pixels if isinstance(pixels, dict) else {}), doc
    return doc, None


def entry_for(side: dict, file_name: str) -> dict | None:
    """The manifest entry for ``file_name`` in a folder's manifest.json (export lists one per
    artifact; a run folder's manifest describes its model.keras itself)."""
    for entry in side.get("artifacts") or []:
        if isinstance(entry, dict) and entry.get("file") == file_name and "schema_version" in entry:
            return entry
    return None
