"""tune.json: everything a search measured, typed, written after each step (so ``--resume`` skips
what was done, and a stopped search still says what it found)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path

from edgetl.atomic import write_atomic
from edgetl.errors import EdgetlError
from edgetl.tuning.grid import Architecture, Candidate, Quant

FILE = "tune.json"
CHART = "tune.png"
PAGE = "tune.html"
RUNS = "runs"


class Status(StrEnum):
    """Where a candidate ended up."""

    NO_WEIGHTS = "no weights"
    """Its backbone has no starting weights here: listed, never benched or trained."""
    NOT_MEASURED = "not measured"
    """The search stopped (``--max-hours``) before it was benched."""
    OVER_BUDGET = "over budget"
    """Slower than the budget on the device: dropped before any training."""
    RANKED = "ranked"
    """Within budget and estimated, but not among the finalists trained."""
    TRAINED = "trained"
    """A finalist: trained, exported and verified; its artifact benched again on the device."""
    FAILED = "failed"
    """A finalist whose artifact was not kept by export's gates, or is over budget once trained."""
    CHOSEN = "chosen"


@dataclass
class Row:
    """One candidate's line of the table and point of the chart."""

    backbone: str
    alpha: float
    size: int
    quant: str
    status: str
    latency_ms: float | None = None
    """The untrained artifact's latency on the device (the statistic the budget reads)."""
    estimate: float | None = None
    """The linear-probe accuracy of its architecture (shared by its artifact kinds)."""
    accuracy: float | None = None
    """A finalist's artifact's verified accuracy on the held-out images (export's check)."""
    device_ms: float | None = None
    """A finalist's own artifact's latency on the device."""
    run: str | None = None
    artifact: str | None = None
    """The file export kept for this kind (a fallback's when the kind missed its gate)."""
    note: str = ""

    @property
    def candidate(self) -> Candidate:
        return Candidate(Architecture(self.backbone, self.alpha, self.size), Quant(self.quant))

    @classmethod
    def of(cls, candidate: Candidate, status: Status, **values) -> "Row":
        a = candidate.arch
        return cls(a.backbone, a.alpha, a.size, str(candidate.quant), str(status), **values)


@dataclass
class TuneRecord:
    """The search: its settings, every candidate, the pick."""

    data: str
    budget_ms: float
    statistic: str
    device: str
    """The cache's name for the device (its CPU, host or serial, and the thread count)."""
    where: str
    """The device in words (``mypi``, ``this machine``)."""
    weights: str
    finalists: int
    rows: list[Row] = field(default_factory=list)
    chosen: str | None = None
    """The chosen candidate's key."""
    recommendation: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    """Time spent per phase (latency, estimate, train:<arch>, ...), summed over resumed sessions."""
    stopped: str = ""
    """Why the search ended before it was complete (``--max-hours``), or empty."""

    def row(self, candidate: Candidate) -> Row | None:
        return next((r for r in self.rows if r.candidate == candidate), None)

    def set(self, candidate: Candidate, status: Status, **values) -> Row:
        """Replace or add a candidate's row."""
        row = self.row(candidate)
        if row is None:
            row = Row.of(candidate, status)
            self.rows.append(row)
        row.status = str(status)
        for k, v in values.items():
            setattr(row, k, v)
        return row

    def add_time(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + seconds, 2)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, folder: Path) -> None:
        """Write tune.json in ``folder`` (made on the first save: a search refused before it
        measured anything leaves no folder behind)."""
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / FILE, json.dumps(self.to_dict(), indent=1), leftover_ok=True)

    @classmethod
    def read(cls, folder: Path) -> "TuneRecord":
        """The record of an earlier search in ``folder`` (one error naming the file when damaged)."""
        path = folder / FILE
        if not path.is_file():
            raise EdgetlError("no search to resume here (no tune.json)", path=folder,
                              fix="give the --out of an earlier `edgetl tune`, or start one without --resume")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            known = {f.name for f in fields(cls)}
            record = cls(**{k: v for k, v in raw.items() if k in known})
            record.rows = [Row(**r) for r in raw.get("rows", [])]
            for r in record.rows:
                r.candidate  # a row must name a known kind
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise EdgetlError(f"cannot read this search's record ({type(e).__name__})", path=path,
                              fix="start the search again in a new --out folder") from None
        return record
