"""What a run folder says about itself, gathered for the report: settings, data, training history,
held-out predictions, export checks, benchmark results and tool versions. Every file is optional
(a run that was never exported has no export section); a damaged file is reported, not fatal."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgetl.runs import RunFolder
from edgetl.training.results import Epoch
from edgetl.yamlfile import load_yaml


@dataclass
class RunFacts:
    """Everything the report shows about one run."""

    path: Path
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    history: list[Epoch] = field(default_factory=list)
    audit: dict = field(default_factory=dict)
    predictions: dict = field(default_factory=dict)
    export: dict = field(default_factory=dict)
    """export/report.json: keras_accuracy, checks, int8_fallback, warnings."""
    export_manifest: dict = field(default_factory=dict)
    run_manifest: dict = field(default_factory=dict)
    bench: list[dict] = field(default_factory=list)
    comparison: dict = field(default_factory=dict)
    """comparison.json: the newest `edgetl compare` of this run against an older one."""
    unreadable: list[str] = field(default_factory=list)
    """Files that exist but could not be read (named on the page)."""

    @property
    def name(self) -> str:
        """The run's folder name."""
        return self.path.name

    @property
    def classes(self) -> list[str]:
        """Class names in label order."""
        return list(self.audit.get("class_names") or self.run_manifest.get("labels") or [])

    @property
    def artifacts(self) -> list[dict]:
        """Every verified or rejected artifact, the fallback attempts included, once each."""
        seen: dict[str, dict] = {}
        for c in self.export.get("checks", []) + self.export.get("int8_fallback", []):
            seen.setdefault(c["file"], c)
        return list(seen.values())


def _read(path: Path, facts: RunFacts, kind: str = "json"):
    """A run file's data, or None (noted as unreadable) when it cannot be read."""
    if not path.is_file():
        return None
    try:
        return load_yaml(path) if kind == "yaml" else json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        facts.unreadable.append(str(path))
        return None


def _epochs(data, facts: RunFacts, file: Path) -> list[Epoch]:
    """history.json's epochs, or none (the file noted as unreadable) when one is malformed."""
    try:
        # (a page is a view: an epoch without its duration is still drawn)
        return [Epoch.from_dict({"seconds": 0.0} | e) for e in data if isinstance(e, dict)] if isinstance(data, list) else []
    except (KeyError, TypeError):
        facts.unreadable.append(str(file))
        return []


def gather(run: str | Path) -> RunFacts:
    """The facts of one run folder (``RUN``, as `edgetl train` wrote it)."""
    path = Path(run)
    facts = RunFacts(path)
    # Read as plain JSON, not through the typed manifests: a page shows what is there even when
    # one file is damaged (and names it), where export and verify must refuse.
    run = RunFolder(path)
    facts.config = _read(run.config, facts, "yaml") or {}
    facts.metrics = _read(run.metrics, facts) or {}
    facts.history = _epochs(_read(run.history, facts) or [], facts, run.history)
    facts.audit = _read(run.audit, facts) or {}
    facts.predictions = _read(run.predictions, facts) or {}
    facts.run_manifest = _read(run.manifest, facts) or {}
    facts.export = _read(run.export.report_json, facts) or {}
    facts.export_manifest = _read(run.export.manifest, facts) or {}
    facts.bench = _read(run.export.bench, facts) or []
    facts.comparison = _read(run.comparison, facts) or {}
    return facts


# Which artifact to ship for which kind of device: among the formats that device runs.
TARGETS = {"TFLite (Raspberry Pi, Android, MediaPipe)": "tflite", "ONNX Runtime": "onnx"}


def _number(v) -> bool:
    """A figure from a file is used only when it is one."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Latency:
    """An artifact's latency and where the figure comes from."""

    ms: float
    source: str
    """"edgetl bench" (local, one thread, p50 of its timed runs) or "export's check" (a quick
    figure taken while verifying, at the runtime's default threads)."""

    def __str__(self) -> str:
        return f"{self.ms:.2f} ms, {self.source}"


BENCHED, CHECKED = "edgetl bench, 1 thread, p50", "export's check, default threads"


def benched_ms(facts: RunFacts, file: str) -> float | None:
    """The local one-thread p50 of ``file`` from the run's benchmarks, or None."""
    measured = [r["p50_ms"] for r in facts.bench if isinstance(r, dict) and r.get("model") == file
                and _number(r.get("p50_ms")) and r.get("threads") == 1
                and (r.get("device") if isinstance(r.get("device"), dict) else {}).get("target", "local") == "local"]
    return min(measured) if measured else None


def latencies(facts: RunFacts, checks: list[dict]) -> dict[str, Latency]:
    """Like-for-like latencies of ``checks`` by file: the benchmark's when every one of them was
    benched locally at one thread, else export's own figures for all (never a mix of the two)."""
    benched = {c.get("file"): benched_ms(facts, str(c.get("file"))) for c in checks}
    if checks and all(v is not None for v in benched.values()):
        return {f: Latency(v, BENCHED) for f, v in benched.items()}
    return {c.get("file"): Latency(c["latency_ms"] if _number(c.get("latency_ms")) else 0.0, CHECKED) for c in checks}


def ship_this(facts: RunFacts) -> dict[str, tuple[dict, Latency]]:
    """Per kind of device, the artifact to ship and its latency: the passing one with the lowest
    like-for-like latency (then the smallest)."""
    out = {}
    for target, fmt in TARGETS.items():
        passed = [c for c in facts.artifacts if c.get("kept", c.get("passed")) and c.get("format") == fmt]
        if passed:
            times = latencies(facts, passed)
            best = min(passed, key=lambda c: (times[c.get("file")].ms, c.get("size_bytes")
                                              if isinstance(c.get("size_bytes"), int) else 0))
            out[target] = (best, times[best.get("file")])
    return out
