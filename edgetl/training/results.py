"""What a training run returns: its folder and metrics.json as one typed object."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class Epoch:
    """One epoch's figures, as history.json and state.json keep them (``epoch`` counted from 0,
    as Keras does, across both stages)."""

    stage: int
    epoch: int
    seconds: float
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    val_auc: float | None = None
    """Keras's fit logs it; the multi-worker loop does not."""

    FIGURES = ("loss", "accuracy", "val_loss", "val_accuracy", "val_auc")

    def figure(self, name: str) -> float | None:
        """One of :attr:`FIGURES` by name (the plots draw ``loss`` beside ``val_loss``)."""
        if name not in self.FIGURES:
            raise KeyError(name)
        return getattr(self, name)

    def to_dict(self) -> dict:
        """history.json's form (no val_auc when there is none)."""
        return {k: v for k, v in asdict(self).items() if v is not None or k != "val_auc"}

    @classmethod
    def from_dict(cls, d: dict) -> "Epoch":
        """From history.json or state.json; KeyError or TypeError when a figure is missing or not a number."""
        values = {f.name: d[f.name] for f in fields(cls) if f.name != "val_auc"} | {"val_auc": d.get("val_auc")}
        for name, v in values.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise TypeError(f"{name} is not a number")
        return cls(**values)


@dataclass
class BestEpoch:
    """The epoch whose weights model.keras holds (counted from 1, as in the log)."""

    epoch: int
    stage: int
    val_loss: float
    val_accuracy: float


@dataclass
class ClassFigures:
    """One class on the held-out images."""

    precision: float
    recall: float
    support: int


@dataclass
class RunMetrics:
    """metrics.json: what a finished run measured. ``to_dict`` is the file (and ``train --json``)."""

    val_accuracy: float
    best: BestEpoch
    final_epoch: dict[str, float]
    """The last epoch run: its number (from 1), loss, accuracy, val_loss, val_accuracy."""
    per_class: dict[str, ClassFigures]
    confusion: list[list[int]]
    test_accuracy: float | None
    epochs: dict[str, int]
    """Epochs run in each stage ("stage1", "stage2")."""
    seconds: dict[str, float]
    images_per_s: dict[str, float | None]
    stage1_path: str
    """How stage 1 ran, in words (cached features, through the frozen base, ...)."""
    images: dict[str, int]
    """Images in each split."""
    skipped_files: int
    confidence: dict = field(default_factory=dict)
    """The confidence calibration: temperature, the "unknown" threshold and their figures."""
    multi_label: dict | None = None
    """Multi-label: per split mAP, per-label AP/precision/recall/F1, micro and macro F1, exact
    match (``val_accuracy`` is the exact-match ratio), and the labels' thresholds."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """A finished run: its folder and what it measured (``metrics``, None on a worker that is not
    the chief: the chief writes the run, and ``worker`` is this one's index)."""

    path: Path
    metrics: RunMetrics | None = None
    worker: int | None = None

    def to_dict(self) -> dict:
        """What ``train --json`` prints."""
        return {"run": str(self.path), **(self.metrics.to_dict() if self.metrics else {"worker": self.worker})}
