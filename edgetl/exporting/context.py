"""What every step of one export reads, and the tools whose versions it records."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgetl.data.audit import Audit
from edgetl.data.cache import ArrayStore
from edgetl.exporting.formats import Build
from edgetl.exporting.verify import Reference
from edgetl.runtime.folder_manifest import RunManifest
from edgetl.runtime.spec import PixelSpec

if TYPE_CHECKING:  # (the pipeline imports this module)
    from edgetl.exporting.pipeline import ExportOptions


@dataclass
class ExportContext:
    """What every step of one export reads: the run, its contract, the held-out reference and
    the builds so far (the counterpart of training's context)."""

    run_path: Path
    run_manifest: RunManifest
    labels: list[str]
    pixels: PixelSpec
    audit: Audit
    ref: Reference
    pixels_val: ArrayStore
    build: Build
    options: ExportOptions
    small: str | None
    """Why the held-out set is too small to prove the gates, or None."""
    chance: str | None
    """Why the model itself is no better than chance, or None."""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def onnx_target(self) -> str | None:
        """The int8 ONNX preset, when an int8 ONNX model is made."""
        return self.options.int8.target if "onnx_int8" in self.options.formats else None


EXPORT_TOOLS = ("tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert")
"""The packages whose versions an export records in its manifest."""
