"""`edgetl tune`: which backbone, width, input size and artifact kind gives the best accuracy within
a latency budget on the user's own device.

Latency first (:mod:`.latency`: untrained artifacts benched on the device, over-budget ones dropped
before any training), accuracy cheaply (:mod:`.estimate`: a linear probe on the frozen backbones'
features), then the best few trained with the normal recipe, exported, verified and benched again
on the device; the most accurate one within budget is chosen. Everything is kept in tune.json
(:mod:`.record`) after each step."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.runs import RunFolder
from edgetl.training.config import TrainConfig
from edgetl.tuning.grid import Architecture, Candidate, Grid, Quant, trainable
from edgetl.tuning.latency import LatencyCache, Statistic, Target, measure
from edgetl.tuning.record import PAGE, RUNS, Row, Status, TuneRecord

logger = logging.getLogger(__name__)


class Metric(StrEnum):
    """What the finalists are ranked by (the search's estimate ranks by the same)."""

    ACCURACY = "accuracy"
    """Top-1 accuracy of the shipped artifact on the held-out images, as export verified it."""


@dataclass
class TuneOptions:
    """A search: the budget, the device, the grid and how far to go."""

    budget_ms: float
    target: Target = field(default_factory=Target)
    grid: Grid = field(default_factory=Grid)
    statistic: Statistic = Statistic.P50
    metric: Metric = Metric.ACCURACY
    finalists: int = 2
    """Architectures trained fully (the best by the estimate)."""
    max_hours: float | None = None
    out: str | None = None
    """The search's folder (default runs/tune, runs/tune2, ...)."""
    resume: bool = False
    bench_seconds: float = 2.0
    """Seconds each candidate is benched for at least (after its warm-up)."""

    def check(self) -> None:
        """Every setting in range, before anything is built."""
        if not self.budget_ms > 0:
            raise EdgetlError("--budget-ms must be a positive number of milliseconds", fix="e.g. --budget-ms 33 for 30 fps")
        if self.finalists < 1:
            raise EdgetlError("--finalists must be at least 1")
        if self.max_hours is not None and not self.max_hours > 0:
            raise EdgetlError("--max-hours must be positive", fix="e.g. --max-hours 2")
        if self.statistic not in set(Statistic):
            raise EdgetlError(f"--statistic must be one of {', '.join(Statistic)}")
        if self.metric not in set(Metric):
            raise EdgetlError(f"--metric must be one of {', '.join(Metric)}")
        from edgetl.benchmark.targets import TARGETS

        if self.target.device not in TARGETS:
            raise EdgetlError(f"unknown --device {self.target.device}", fix=f"choose one of {', '.join(TARGETS)}")
        if self.bench_seconds <= 0:
            raise EdgetlError("--bench-seconds must be positive")
        if self.resume and not self.out:
            raise EdgetlError("--resume needs --out: the folder of the search to continue", fix="add --out runs/tune")
        self.grid.check()


@dataclass
class TuneResult:
    """What the search found: its folder and record, and the chosen run (None when it stopped
    before a finalist was trained)."""

    folder: Path
    record: TuneRecord

    @property
    def chosen(self) -> Row | None:
        return next((r for r in self.record.rows if r.status == Status.CHOSEN), None)

    @property
    def run(self) -> Path | None:
        row = self.chosen
        return Path(row.run) if row and row.run else None

    @property
    def page(self) -> Path:
        return self.folder / PAGE


class _Clock:
    """``--max-hours``: the time left, summed over resumed sessions."""

    def __init__(self, max_hours: float | None, spent: float):
        self.deadline = None if max_hours is None else time.monotonic() + max_hours * 3600 - spent

    def over(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def left(self) -> str:
        return "" if self.deadline is None else f"; {max(0.0, (self.deadline - time.monotonic()) / 3600):.2f} h left"


def _folder(options: TuneOptions) -> Path:
    if options.out:
        return Path(options.out)
    root = Path("runs")
    for n in range(1, 10_000):
        path = root / ("tune" if n == 1 else f"tune{n}")
        if not path.exists():
            return path
    raise EdgetlError("no free runs/tuneN folder", fix="give --out FOLDER")


def _start(config: TrainConfig, options: TuneOptions, folder: Path) -> TuneRecord:
    """A new record, or the one to resume (whose settings must be the ones given)."""
    if options.resume:
        record = TuneRecord.read(folder)
        if Path(record.data) != Path(config.data) or record.device != options.target.key:
            raise EdgetlError("--resume continues the same search: this one was on other data or another device",
                              path=folder, fix=f"resume with DATA {record.data} on the same device, or start a new --out")
        record.budget_ms, record.statistic = options.budget_ms, str(options.statistic)
        return record
    if (folder / "tune.json").exists():
        raise EdgetlError("this folder holds a search already", path=folder,
                          fix="continue it with --resume, or choose another --out")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise EdgetlError("the --out folder is not empty", path=folder, fix="choose a new folder")
    return TuneRecord(config.data, options.budget_ms, str(options.statistic), options.target.key,
                      options.target.describe(), config.weights, options.finalists)


def tune(config: TrainConfig, options: TuneOptions) -> TuneResult:
    """Search ``options.grid`` for the most accurate candidate within ``options.budget_ms`` on
    ``options.target``, training the finalists with ``config``'s recipe (its backbone, width and
    size are the candidates'). Returns the search's folder and record; the chosen run is a normal
    run folder under it, exported and verified."""
    from edgetl.data.audit import AuditOptions, audit
    from edgetl.models.backbones import check_weights

    config = replace(config).validate()
    options.check()
    if not config.data:
        raise EdgetlError("no dataset given", fix="edgetl tune DATA --budget-ms 33")
    check_weights(config.weights)
    options.target.check_reachable()
    folder = _folder(options)
    data = audit(config.data, AuditOptions(val_split=config.val_split, seed=config.seed, class_depth=config.class_depth))
    data.require_trainable()
    logger.info("%s", data.describe())
    record = _start(config, options, folder)
    clock = _Clock(options.max_hours, sum(record.seconds.values()))
    record.stopped = ""

    archs = options.grid.architectures()
    split = trainable(archs, config.weights)
    for s in split.skipped:
        for q in options.grid.quants:
            record.set(Candidate(s.arch, q), Status.NO_WEIGHTS, note=f"{s.reason}; {s.fix}")
    if not split.archs:  # refused before anything is written: the folder stays free for the next try
        s = split.skipped[0]
        raise EdgetlError(f"no candidate has weights to start from here ({s.arch.describe()}: {s.reason})",
                          fix=s.fix if "--weights none" in s.fix else f"{s.fix}; or --weights none to train from scratch")
    logger.info("tune: %d candidates (%d architectures x %s) on %s, budget %g ms (%s)%s",
                len(split.archs) * len(options.grid.quants), len(split.archs), ", ".join(options.grid.quants),
                options.target.describe(), options.budget_ms, options.statistic,
                f"; {len(split.skipped)} architectures without weights skipped" if split.skipped else "")

    _latencies(record, split.archs, options, len(data.classes), clock, folder)
    within = _within(record, options)
    if not within and not clock.over():
        _finish(record, folder, options)
        fastest = min((r for r in record.rows if r.latency_ms is not None), key=lambda r: r.latency_ms)
        raise EdgetlError(f"no candidate runs within {options.budget_ms:g} ms on {options.target.describe()}: the "
                          f"fastest is {fastest.candidate.describe()} at {fastest.latency_ms:.1f} ms ({options.statistic})",
                          path=folder / PAGE, fix=f"raise --budget-ms to {fastest.latency_ms * 1.1:.0f} or more, or "
                          "search smaller --sizes, narrower widths (--alphas) or int8")
    if not clock.over():
        if config.weights == "none":
            logger.warning("tune: --weights none: the quick estimate ranks backbones with random weights, which says "
                           "little of how they train; consider more --finalists")
        _estimates(record, sorted({c.arch for c in within}), data, config, folder)
    ranked = _ranked(record, within)
    found = 0
    for arch in ranked:
        # A finalist whose trained artifact misses the budget (a fallback export kept layers in
        # float; the "unknown" rule's ops) or its gate does not count: the next one by the
        # estimate is trained instead, until enough are within budget or none is left.
        if found >= options.finalists or clock.over():
            break
        quants = [c.quant for c in within if c.arch == arch]
        logger.info("finalist %d of %d: %s (%s)%s", found + 1, options.finalists, arch.describe(), ", ".join(quants),
                    clock.left())
        _finalist(record, arch, quants, config, options, folder)
        if any(record.row(Candidate(arch, q)).status in (Status.TRAINED, Status.CHOSEN) for q in quants):
            found += 1
        else:
            logger.info("%s: no artifact within budget once trained; the next candidate is trained instead",
                        arch.describe())
    if clock.over() and found < min(options.finalists, len(ranked)):
        record.stopped = f"--max-hours {options.max_hours:g} reached"
        logger.warning("tune: %s; the best so far is kept (continue with --resume --out %s)", record.stopped, folder)
    _choose(record, options)
    _finish(record, folder, options)
    return TuneResult(folder, record)


def _latencies(record: TuneRecord, archs: list[Architecture], options: TuneOptions, classes: int, clock: _Clock,
               folder: Path) -> None:
    """Every candidate's latency on the device (cached ones read, the others benched); over-budget
    ones marked."""
    t = time.perf_counter()
    cache = LatencyCache()
    candidates = options.grid.candidates(archs)
    found = measure(candidates, options.target, classes, cache, options.bench_seconds, stop=clock.over)
    for c in candidates:
        lat = found.get(c.key)
        if lat is None:
            record.set(c, Status.NOT_MEASURED, note="the search stopped before it was benched")
            continue
        ms = lat.value(options.statistic)
        over = ms > options.budget_ms
        row = record.row(c)
        keep = row is not None and row.status in (Status.TRAINED, Status.FAILED, Status.CHOSEN, Status.RANKED)
        status = Status.OVER_BUDGET if over else (Status(row.status) if keep else Status.RANKED)
        record.set(c, status, latency_ms=round(ms, 3))
    record.add_time("latency", time.perf_counter() - t)
    record.save(folder)


def _within(record: TuneRecord, options: TuneOptions) -> list[Candidate]:
    return [r.candidate for r in record.rows if r.latency_ms is not None and r.latency_ms <= options.budget_ms
            and r.status != Status.NO_WEIGHTS]


def _estimates(record: TuneRecord, archs: list[Architecture], data, config: TrainConfig, folder: Path) -> None:
    from edgetl.tuning.estimate import estimate

    todo = [a for a in archs if any(r.estimate is None for r in record.rows if r.candidate.arch == a)]
    if not todo:
        return
    t = time.perf_counter()
    found = estimate(todo, data, config.weights, config.resize, config.seed)
    for row in record.rows:
        if row.candidate.arch in found:
            row.estimate = round(found[row.candidate.arch].accuracy, 4)
    record.add_time("estimate", time.perf_counter() - t)
    record.save(folder)


def _ranked(record: TuneRecord, within: list[Candidate]) -> list[Architecture]:
    """Architectures within budget, best estimate first (then the fastest)."""
    best: dict[Architecture, tuple[float, float]] = {}
    for c in within:
        row = record.row(c)
        score = (-(row.estimate if row.estimate is not None else -1.0), row.latency_ms)
        best[c.arch] = min(best.get(c.arch, score), score)
    return sorted(best, key=lambda a: best[a])


def _finalist(record: TuneRecord, arch: Architecture, quants: list[Quant], config: TrainConfig, options: TuneOptions,
              folder: Path) -> None:
    """Train (or resume, or reuse) one finalist, export its kinds, bench what export kept."""
    from edgetl import runs
    from edgetl.exporting.formats import FORMATS
    from edgetl.exporting.pipeline import ExportOptions, export
    from edgetl.training.run import train

    rows = [record.row(Candidate(arch, q)) for q in quants]
    if all(r.status in (Status.TRAINED, Status.FAILED, Status.CHOSEN) for r in rows):
        return  # done in an earlier session
    run = folder / RUNS / arch.key
    t = time.perf_counter()
    if not RunFolder(run).is_finished_run():
        if runs.in_progress(run).is_dir():
            train(resume=runs.in_progress(run))
        else:
            train(replace(config, backbone=arch.backbone, alpha=arch.alpha, size=arch.size, out=str(run),
                          from_run=None))
    record.add_time(f"train {arch.key}", time.perf_counter() - t)
    t = time.perf_counter()
    result = export(run, ExportOptions(formats=[str(q) for q in quants]))
    record.add_time(f"export {arch.key}", time.perf_counter() - t)
    shipped = {}
    for q in quants:
        first = next(c for c in result.checks if Path(c.file).name == FORMATS[str(q)].file)
        kept = first if first.kept else next((a for a in result.attempts if a.kept and Path(a.file).name in
                                              {FORMATS[f].file for f in FORMATS[str(q)].fallbacks}), None)
        shipped[q] = kept
    files = sorted({Path(result.folder) / Path(c.file).name for c in shipped.values() if c is not None})
    t = time.perf_counter()
    measured = _bench_files(files, options)
    record.add_time(f"bench {arch.key}", time.perf_counter() - t)
    for q in quants:
        check = shipped[q]
        c = Candidate(arch, q)
        if check is None:
            record.set(c, Status.FAILED, run=str(run), note=f"export's gate did not keep {q} or a fallback")
            continue
        file = Path(result.folder) / Path(check.file).name
        ms = measured[file]
        ok = ms <= options.budget_ms
        note = "" if Path(check.file).name == FORMATS[str(q)].file else f"{q} missed its gate; {file.name} shipped"
        if not ok:
            note = (note + "; " if note else "") + f"trained artifact {ms:.1f} ms, over budget"
        record.set(c, Status.TRAINED if ok else Status.FAILED, accuracy=round(check.accuracy, 4),
                   device_ms=round(ms, 3), run=str(run), artifact=str(file), note=note)
    record.save(folder)


def _bench_files(files: list[Path], options: TuneOptions) -> dict[Path, float]:
    """The trained artifacts' latencies on the device (the figure the budget reads)."""
    from edgetl.tuning.latency import bench_on

    if not files:
        return {}
    return {f: lat.value(options.statistic) for f, lat in zip(files, bench_on(options.target, files,
                                                                              options.bench_seconds))}


def _choose(record: TuneRecord, options: TuneOptions) -> None:
    """The most accurate finalist within budget (the faster of equals); the recommendation line."""
    for r in record.rows:
        if r.status == Status.CHOSEN:
            r.status = str(Status.TRAINED)
    done = [r for r in record.rows if r.status == Status.TRAINED]
    if not done:
        record.chosen, record.recommendation = None, ""
        return
    pick = max(done, key=lambda r: (r.accuracy, -r.device_ms))
    pick.status = str(Status.CHOSEN)
    record.chosen = pick.candidate.key
    record.recommendation = (f"{pick.candidate.describe()}: {pick.accuracy:.3f} at {pick.device_ms:.1f} ms on "
                             f"{record.where} (budget {options.budget_ms:g} ms, {options.statistic})")


def _finish(record: TuneRecord, folder: Path, options: TuneOptions) -> None:
    """tune.json, the chart and the page."""
    from edgetl.report.tune_page import write_tune_page
    from edgetl.tuning.chart import plot_tune

    record.save(folder)
    plot_tune(record, folder / "tune.png")
    write_tune_page(record, folder)
