"""`edgetl export`: a trained run -> verified TFLite and ONNX artifacts in RUN/export/."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgetl.atomic import write_atomic
from edgetl import runs
from edgetl.cores import idle_cores
from edgetl.scratch import scratch_folder
from edgetl.data.audit import Audit
from edgetl.data.cache import ArrayStore, load_images
from edgetl.errors import EdgetlError
from edgetl.exporting import onnx as onnx_export, tflite
from edgetl.exporting.background import Background
from edgetl.exporting.formats import FORMATS, Build, Format, Int8Settings, needs_tflite_calibration, plan
from edgetl.exporting.gate import mark, no_better_than_chance
from edgetl.exporting.verify import Check, Gates, Reference, too_few_images, verify
from edgetl.runs import ExportFolder, RunFolder
from edgetl.runtime import golden, load
from edgetl.runtime.keras_backend import load_keras_model
from edgetl.runtime.folder_manifest import GoldenAnswers, GoldenEntry
from edgetl.runtime.labels import write_labels
from edgetl.runtime.manifest import ModelManifest
from edgetl.native_logs import quiet_stdout
from edgetl.versions import package_versions
from edgetl.exporting.calibration_images import stratified
from edgetl.exporting.context import EXPORT_TOOLS, ExportContext
from edgetl.exporting.records import write_records
from edgetl.exporting.run_input import held_out, held_out_reference, read_run


logger = logging.getLogger(__name__)


class StepFailed(EdgetlError):
    """A conversion step failed (exit 1); nothing of it was written."""

    exit_code = 1


@dataclass
class ExportOptions:
    """Which artifacts to make, how, and the bar they must pass."""

    formats: list[str] = field(default_factory=lambda: ["fp32"])
    """Names in :data:`FORMATS` (fp32 is always made)."""
    int8: Int8Settings = field(default_factory=Int8Settings)
    opset: int = onnx_export.DEFAULT_OPSET
    gates: Gates = field(default_factory=Gates)
    threads: int | None = None

    def check(self) -> None:
        """Every setting known and in range, before anything is loaded."""
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown:
            raise EdgetlError(f"unknown format(s) {', '.join(map(repr, unknown))}", fix=f"choose from {', '.join(FORMATS)}")
        if self.int8.io not in tflite.IO_TYPES:
            raise EdgetlError(f"--io {self.int8.io} is not one of {', '.join(tflite.IO_TYPES)}")
        if self.int8.target not in onnx_export.INT8_TARGETS:
            raise EdgetlError(f"--target {self.int8.target} is not one of {', '.join(onnx_export.INT8_TARGETS)}")


@dataclass
class ExportResult:
    """Where the artifacts are and how each one verified."""

    folder: Path
    checks: list[Check]
    attempts: list[Check]
    keras_accuracy: float
    seconds: dict[str, float]

    @property
    def ok(self) -> bool:
        """True when every requested artifact passed its gates."""
        return all(c.kept for c in self.checks)


def _write(path: Path, data: bytes) -> None:
    write_atomic(path, data, leftover_ok=True)


def export(run: str | Path | None = None, options: ExportOptions | None = None) -> ExportResult:
    """Convert ``run``'s model.keras (default: the latest run) to every requested format, embed
    labels and the manifest, verify each artifact against Keras and write RUN/export/.

    Plan (the formats, fp32 always) -> convert and verify each, trying a failed format's fallbacks
    -> publish (rejected files aside, golden set, manifest and reports, then the folder swapped in)."""
    opts = options or ExportOptions()
    opts.check()
    run_path, run_manifest = read_run(run)
    labels, pixels = run_manifest.labels, run_manifest.input
    result_audit = Audit.load_file(RunFolder(run_path).audit)
    names = plan(opts.formats)
    if opts.int8.calib_samples < 100 and any(FORMATS[f].needs_calibration for f in names):
        logger.warning(f"--calib-samples {opts.int8.calib_samples} is under 100: int8 ranges may be poor")

    with runs.locked(run_path, "an export"), scratch_folder("edgetl-export-") as scratch, \
            contextlib.ExitStack() as children:
        seconds: dict[str, float] = {}
        t = time.perf_counter()
        calib_records = stratified(result_audit.split("train"), opts.int8.calib_samples)
        calib = load_images([r.path for r in calib_records], pixels, hashes=[r.sha256 for r in calib_records])
        background = None
        products = background_products(names)
        if products and idle_cores() >= CORE_FOR_BACKGROUND:
            # Started before this process imports TensorFlow: the child's start-up and SavedModel
            # overlap the Keras reference below.
            background = children.enter_context(
                Background.start(RunFolder(run_path).model, calib, Path(scratch), products))
        model = load_keras_model(RunFolder(run_path).model)
        pixels_val, ref = held_out_reference(run_path, result_audit, pixels)
        seconds["load_and_reference"] = time.perf_counter() - t
        logger.info(f"Keras reference: accuracy {ref.accuracy:.4f} on {len(ref.labels)} held-out images; "
                  f"calibrating on {len(calib)} training images")
        small = too_few_images(len(ref.labels), opts.gates)
        if small:
            logger.warning(small)
        if run_manifest.multi_label:  # each image's set of labels is its answer: chance is the commonest set
            from edgetl.data.audit import set_codes

            sets = set_codes(ref.labels)[0]
            chance = no_better_than_chance(sets, int(round(ref.accuracy * len(sets))), int(sets.max()) + 1)
        else:
            chance = no_better_than_chance(ref.labels, int(round(ref.accuracy * len(ref.labels))), len(labels))
        if chance:
            logger.warning(chance)

        versions = package_versions(EXPORT_TOOLS)

        def contract(fmt: Format) -> ModelManifest:
            return ModelManifest(labels, pixels, fmt.kind, fmt.precision, backbone=run_manifest.backbone,
                                 int8_target=opts.int8.target if fmt.name == "onnx_int8" else None,
                                 split=run_manifest.split, versions=versions, confidence=run_manifest.confidence,
                                 task=run_manifest.task, thresholds=run_manifest.thresholds)

        build = Build(model, calib, opts.int8, opts.opset, contract, Path(scratch),
                      log=logger.info, background=background)
        ctx = ExportContext(run_path, run_manifest, labels, pixels, result_audit, ref, pixels_val, build,
                            replace(opts, formats=names), small, chance, seconds)
        runs.remove_stale_work(run_path, runs.EXPORT)
        work = runs.work_folder(run_path, runs.EXPORT)
        try:
            write_labels(ExportFolder(work).labels, labels)
            made: dict[str, Check] = {}

            def make(name: str) -> Check:
                if name not in made:
                    made[name] = _convert_and_verify(FORMATS[name], ctx, work)
                return made[name]

            checks: list[Check] = []
            attempts: list[Check] = []
            for name in names:
                checks.append(make(name))
                for fallback in FORMATS[name].fallbacks if not checks[-1].kept else ():
                    attempts.append(make(fallback))
                    if attempts[-1].kept:
                        logger.info(f"{name} missed its gate; {attempts[-1].file} passes and is the one to ship")
                        break
            _publish(work, ctx, checks, attempts)
            final = RunFolder(run_path).export.path
            runs.swap_in(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)  # a failed or interrupted export leaves nothing
            raise
    from edgetl.report import refresh

    refresh(run_path)
    return ExportResult(final, checks, attempts, ref.accuracy, seconds)


CORE_FOR_BACKGROUND = 1.5
"""Idle cores for the background conversions to run in a second process: this one sleeps while it
samples, so its own core counts as idle; with more than one and a half idle, the second process
has a core of its own, else it would only compete (with another test worker, a training)."""


def background_products(names: list[str]) -> tuple[str, ...]:
    """What a second process makes for these formats, in the order the export takes them: the
    fp16 model (taken just after fp32), then the calibrated one (taken last)."""
    return (("fp16",) if "fp16" in names else ()) + (("calibrated",) if needs_tflite_calibration(names) else ())


def _convert_and_verify(fmt: Format, ctx: ExportContext, work: Path) -> Check:
    """Build one artifact into ``work`` (under a temporary name, then renamed) and verify it."""
    t0 = time.perf_counter()
    try:
        with quiet_stdout():
            data = fmt.build(ctx.build, fmt)
    except EdgetlError:
        raise
    except Exception as e:
        raise StepFailed(f"{fmt.name} conversion failed: {type(e).__name__}: {str(e).strip().splitlines()[0][:300]}",
                         path=ctx.run_path, fix="run with --debug for details; other formats can still be exported "
                                            "by leaving this one out") from e
    _write(work / fmt.file, data)
    ctx.seconds[f"convert_{fmt.name}"] = time.perf_counter() - t0
    check = verify(work / fmt.file, ctx.ref, ctx.pixels_val, ctx.options.gates, fmt.kind, fmt.precision,
                   ctx.options.threads)
    logger.info(f"{mark(check.verdict, markup=False)} {fmt.file}: accuracy {check.accuracy:.4f} ({check.delta_points:+.2f} pts){_on(check, ctx)}, agreement "
              f"{check.agreement:.1%}, with \"unknown\" {check.decision_agreement:.1%} ({check.unknown} unknown, Keras "
              f"{check.unknown_reference}), max prob diff {check.max_prob_diff:.2g}, {check.size_bytes / 1e6:.2f} MB, "
              f"{check.latency_ms:.1f} ms" + (f" — {check.verdict}: {check.note}" if check.note else ""))
    return check


def _on(check: Check, ctx: ExportContext) -> str:
    """" on N of M images ..." when the class was compared on fewer than all (the rule refused the rest)."""
    n = len(ctx.ref.labels)
    return "" if check.classed in (None, n) else f" on {check.classed} of {n} images (Keras's rule refuses the rest)"


def _publish(work: Path, ctx: ExportContext, checks: list[Check], attempts: list[Check]) -> None:
    """Failed artifacts into rejected/, the golden set and the answers of what is kept, the
    manifest and the reports."""
    rejected = [c for c in checks + attempts if not c.kept]
    aside = ExportFolder(work).rejected
    if rejected:
        aside.mkdir()
        for c in rejected:
            if (work / c.file).exists():
                os.replace(work / c.file, aside / c.file)
    kept = sorted(f.name for f in work.iterdir() if f.suffix in (".tflite", ".onnx"))
    gold = _golden(work, ctx.pixels_val, ctx.ref, [r.path for r in held_out(ctx.audit)], kept)
    write_records(work, ctx, checks, attempts, gold)


def _golden(work: Path, pixels_val: ArrayStore, ref: Reference, names: list[str], kept: list[str]) -> GoldenEntry:
    """Write golden.npy (a few held-out images at the model's size) and return the manifest entry:
    the images' names and each kept artifact's answers on them, through the device runtime."""
    if ref.labels.ndim == 2:  # multi-label: the label sets take turns; images with every score clear of 0.5
        from edgetl.data.audit import set_codes

        chosen = golden.pick(set_codes(ref.labels)[0], clear=np.abs(ref.probs - 0.5).min(axis=1) >= 0.05)
    else:  # the gate of the "unknown" rule saturated: the scores of such an image sum to 1
        chosen = golden.pick(ref.labels, clear=ref.probs.sum(axis=1) >= 0.995)
    file = ExportFolder(work).golden
    np.save(file, pixels_val[chosen])
    expected = {f: GoldenAnswers(**golden.expected(load(work / f), pixels_val[chosen])) for f in kept}
    return GoldenEntry(file.name, [Path(names[i]).name for i in chosen], expected)
