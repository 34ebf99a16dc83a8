"""`edgetl export`: a trained run -> verified TFLite and ONNX artifacts in RUN/export/."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from edgetl import runs
from edgetl.cores import idle_cores
from edgetl.scratch import scratch_folder
from edgetl.data.audit import Audit
from edgetl.data.cache import ArrayStore, load_images, open_images
from edgetl.errors import EdgetlError
from edgetl.exporting import onnx as onnx_export, tflite
from edgetl.exporting.background import Background
from edgetl.exporting.formats import (FORMATS, LAYER_ERROR_IMAGES, Build, Format, Int8Settings, held_back,
                                     needs_tflite_calibration, plan)
from edgetl.exporting.gate import mark, no_better_than_chance
from edgetl.exporting.layer_error import most_added
from edgetl.exporting.verify import Check, Gates, Reference, reference, too_few_images, verify
from edgetl.runs import ExportFolder, RunFolder
from edgetl.runtime import golden, load
from edgetl.runtime.keras_backend import load_keras_model
from edgetl.runtime.folder_manifest import ArtifactEntry, ExportManifest, GoldenAnswers, GoldenEntry, RunManifest
from edgetl.runtime.labels import write_labels
from edgetl.runtime.manifest import ModelManifest, file_sha256
from edgetl.runtime.spec import PixelSpec
from edgetl.native_logs import quiet_stdout
from edgetl.versions import package_versions

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
        return all(c.passed for c in self.checks)


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


def _stratified(records: list, n: int, seed: int = 0) -> list:
    """Up to n records with every class in proportion."""
    if len(records) <= n:
        return records
    rng = np.random.default_rng(seed)
    by_class: dict[int, list] = {}
    for r in records:
        by_class.setdefault(r.label, []).append(r)
    picked = []
    for items in by_class.values():
        k = max(1, round(n * len(items) / len(records)))
        picked.extend(items[i] for i in sorted(rng.choice(len(items), min(k, len(items)), replace=False)))
    return picked[:n]


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export(run: str | Path | None = None, options: ExportOptions | None = None) -> ExportResult:
    """Convert ``run``'s model.keras (default: the latest run) to every requested format, embed
    labels and the manifest, verify each artifact against Keras and write RUN/export/.

    Plan (the formats, fp32 always) -> convert and verify each, trying a failed format's fallbacks
    -> publish (rejected files aside, golden set, manifest and reports, then the folder swapped in)."""
    opts = options or ExportOptions()
    opts.check()
    run_path, run_manifest = _read_run(run)
    labels, pixels = run_manifest.labels, run_manifest.input
    result_audit = Audit.load_file(RunFolder(run_path).audit)
    names = plan(opts.formats)
    if opts.int8.calib_samples < 100 and any(FORMATS[f].needs_calibration for f in names):
        logger.warning(f"--calib-samples {opts.int8.calib_samples} is under 100: int8 ranges may be poor")

    with runs.locked(run_path, "an export"), scratch_folder("edgetl-export-") as scratch, \
            contextlib.ExitStack() as children:
        seconds: dict[str, float] = {}
        t = time.perf_counter()
        calib_records = _stratified(result_audit.split("train"), opts.int8.calib_samples)
        calib = load_images([r.path for r in calib_records], pixels, hashes=[r.sha256 for r in calib_records])
        background = None
        products = background_products(names)
        if products and idle_cores() >= CORE_FOR_BACKGROUND:
            # Started before this process imports TensorFlow: the child's start-up and SavedModel
            # overlap the Keras reference below.
            background = children.enter_context(
                Background.start(RunFolder(run_path).model, calib, Path(scratch), products))
        model = load_keras_model(RunFolder(run_path).model)
        pixels_val, ref = _held_out_reference(run_path, result_audit, pixels)
        seconds["load_and_reference"] = time.perf_counter() - t
        logger.info(f"Keras reference: accuracy {ref.accuracy:.4f} on {len(ref.labels)} held-out images; "
                  f"calibrating on {len(calib)} training images")
        small = too_few_images(len(ref.labels), opts.gates)
        if small:
            logger.warning(small)
        chance = no_better_than_chance(ref.labels, int(round(ref.accuracy * len(ref.labels))), len(labels))
        if chance:
            logger.warning(chance)

        versions = package_versions(EXPORT_TOOLS)

        def contract(fmt: Format) -> ModelManifest:
            return ModelManifest(labels, pixels, fmt.kind, fmt.precision, backbone=run_manifest.backbone,
                                 int8_target=opts.int8.target if fmt.name == "onnx_int8" else None,
                                 split=run_manifest.split, versions=versions, confidence=run_manifest.confidence)

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
                for fallback in FORMATS[name].fallbacks if not checks[-1].passed else ():
                    attempts.append(make(fallback))
                    if attempts[-1].passed:
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


def _read_run(run: str | Path | None) -> tuple[Path, RunManifest]:
    """The run folder (default: the latest) and its manifest, checked to be a finished run."""
    run_path = Path(run) if run is not None else runs.latest_run()
    if not run_path.is_dir():
        why = runs.unfinished(runs.final_path(run_path))
        if why:
            raise EdgetlError(f"this run is {why.split(':')[0]}", path=run_path, fix=why.split(": ", 1)[1])
        raise EdgetlError("no such run folder", path=run_path,
                          fix="give a finished run folder from `edgetl train` (runs/expN)")
    if run is None:
        logger.info(f"exporting the latest finished run, {run_path}")
    folder = RunFolder(run_path)
    if not folder.model.is_file():
        raise EdgetlError(f"no {folder.model.name} in this folder: not a finished run", path=run_path,
                          fix="give a finished run folder from `edgetl train` (runs/expN)")
    return run_path, folder.read_manifest()


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
    rejected = [c for c in checks + attempts if not c.passed]
    aside = ExportFolder(work).rejected
    if rejected:
        aside.mkdir()
        for c in rejected:
            if (work / c.file).exists():
                os.replace(work / c.file, aside / c.file)
    kept = sorted(f.name for f in work.iterdir() if f.suffix in (".tflite", ".onnx"))
    gold = _golden(work, ctx.pixels_val, ctx.ref, [r.path for r in _held_out(ctx.audit)], kept)
    _write_reports(work, ctx, checks, attempts, gold)


# The first ONNX Runtime release that runs each ONNX opset (ONNX Runtime's compatibility table).
ORT_FOR_OPSET = {13: "1.7", 14: "1.10", 15: "1.11", 16: "1.11", 17: "1.13", 18: "1.14", 19: "1.15", 20: "1.17",
                 21: "1.18", 22: "1.20"}


def runtime_needs(path: Path) -> dict:
    """The oldest runtimes that can run an artifact: for TFLite the converter's min_runtime_version
    (from its op versions), for ONNX the opset, IR version and first ONNX Runtime with that opset."""
    if path.suffix == ".tflite":
        from edgetl.runtime.litert import min_runtime_version

        return {"tflite_runtime": min_runtime_version(path.read_bytes())}
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return {"onnx_opset": opset, "onnx_ir_version": proto.ir_version, "onnxruntime": ORT_FOR_OPSET.get(opset)}


def _held_out(result_audit: Audit) -> list:
    """The held-out records: test, else val."""
    return result_audit.split("test") or result_audit.split("val")


def _held_out_reference(run_path: Path, result_audit: Audit, pixels: PixelSpec) -> tuple[ArrayStore, Reference]:
    """The held-out images (test, else val) at the model's size, in the disk cache and read a batch
    at a time by every check, and the Keras model's answers on them."""
    held_out = _held_out(result_audit)
    images = open_images([r.path for r in held_out], pixels,
                         hashes=[r.sha256 for r in held_out])
    return images, reference(RunFolder(run_path).model, images, np.array([r.label for r in held_out]))


def _golden(work: Path, pixels_val: ArrayStore, ref: Reference, names: list[str], kept: list[str]) -> GoldenEntry:
    """Write golden.npy (a few held-out images at the model's size) and return the manifest entry:
    the images' names and each kept artifact's answers on them, through the device runtime."""
    # the gate of the "unknown" rule saturated: the scores of such an image sum to 1
    chosen = golden.pick(ref.labels, clear=ref.probs.sum(axis=1) >= 0.995)
    file = ExportFolder(work).golden
    np.save(file, pixels_val[chosen])
    expected = {f: GoldenAnswers(**golden.expected(load(work / f), pixels_val[chosen])) for f in kept}
    return GoldenEntry(file.name, [Path(names[i]).name for i in chosen], expected)


def _write_reports(work: Path, ctx: ExportContext, checks: list[Check], attempts: list[Check], gold: GoldenEntry) -> None:
    """manifest.json (each kept artifact's embedded manifest and hash), report.json and report.md."""
    ref, build = ctx.ref, ctx.build
    embedded = {FORMATS[name].file: m for name, m in build.manifests.items()}
    shown = checks + [a for a in attempts if a not in checks]
    folder = ExportFolder(work)
    artifacts = []
    for c in shown:
        path = work / c.file if (work / c.file).exists() else folder.rejected / c.file
        # Beside the file: the manifest embedded in it (verify has read it back through the runtime), plus its hash.
        contract = replace(embedded[c.file], sha256=file_sha256(path))
        artifacts.append(ArtifactEntry(path.relative_to(work).as_posix(), contract, c.size_bytes, c.passed,
                                       runtime_needs(path)))
    onnx_target = ctx.onnx_target
    ExportManifest(ctx.labels, ctx.pixels, artifacts, ctx.run_manifest.backbone, ctx.run_manifest.split,
                   str(ctx.run_path), package_versions(EXPORT_TOOLS),
                   onnx_target and {"target": onnx_target, **asdict(onnx_export.INT8_TARGETS[onnx_target])},
                   gold, time.strftime("%Y-%m-%dT%H:%M:%S%z")).write(folder.manifest)
    corrections = build.corrections
    layers = build.layers or []
    report = {"keras_accuracy": ref.accuracy, "images": len(ref.labels), "checks": [c.to_dict() for c in checks],
              "int8_fallback": [a.to_dict() for a in attempts], "seconds": ctx.seconds,
              "int8_calibration": build.calibration,
              "int8_bias_correction": corrections[0].to_dict() if corrections else None,
              "int8_layers": {"images": min(LAYER_ERROR_IMAGES, len(held_back(build.calib))),
                              "layers": [layer.to_dict() for layer in layers]} if layers else None,
              "held_out_warning": ctx.small, "chance_warning": ctx.chance}
    folder.report_json.write_text(json.dumps(report, indent=1))
    lines = [f"# Export report for {ctx.run_path}", "",
             f"Keras accuracy: {ref.accuracy:.4f} on {len(ref.labels)} held-out images.",
             *(["", f"**Warning:** {ctx.small}."] if ctx.small else []),
             *(["", f"**Warning:** {ctx.chance}."] if ctx.chance else []),
             "", "| ok | file | precision | size MB | accuracy | Δ pts vs Keras | agreement | lost/gained | max prob diff | ms "
                 "| gate |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in shown:
        sign = mark(c.verdict, markup=False)
        lines.append(f"| {sign} | {c.file} | {c.precision} | {c.size_bytes / 1e6:.2f} | {c.accuracy:.4f} | "
                     f"{c.delta_points:+.2f} | {c.agreement:.1%} | {c.lost}/{c.gained} | {c.max_prob_diff:.2g} | "
                     f"{c.latency_ms:.1f} | {c.verdict}{': ' + c.note if c.note else ''} |")
    for c in corrections:
        lines += ["", f"int8 bias correction ({c.layers} depthwise layers): mean output difference from the float model "
                      f"on held-back calibration images {c.error_before:.4f} -> {c.error_after:.4f}, "
                      f"{'kept' if c.kept else 'not kept'}."]
    if layers:
        lines += ["", "## Where int8 loses accuracy", "",
                  "Each layer's output compared with the float model's on held-back calibration images: RMS error "
                  "over the output's standard deviation, accumulated from the input, and what the layer itself adds. "
                  "The selective-float fallbacks keep the top layers of this list in float.", "",
                  "| layer | op | adds | error after it |", "|---|---|---|---|"]
        lines += [f"| {e.name} | {e.op} | {e.added:+.3f} | {e.error:.3f} |" for e in most_added(layers, 8)]
        lines += ["", f"Output error of the whole int8 model: {layers[-1].error:.3f}."]
    folder.report_md.write_text("\n".join(lines) + "\n")


def verify_run(run: str | Path | None = None, gates: Gates | None = None, threads: int | None = None) -> ExportResult:
    """Verify the artifacts already in RUN/export/ again (same images, same gates as export).

    An artifact the manifest lists as verified that is missing, or whose sha256 differs from the
    one recorded at export (replaced or modified since), fails without being run."""
    run_path = Path(run) if run is not None else runs.latest_run()
    folder = RunFolder(run_path).export
    if not folder.manifest.is_file():
        raise EdgetlError("no export in this run", path=run_path, fix=f"run `edgetl export {run_path}` first")
    manifest = folder.read_manifest()
    if not manifest.verified:
        raise EdgetlError("the manifest lists no verified artifact", path=folder.manifest,
                          fix=f"export again: edgetl export {run_path}")
    pixels_val, ref = _held_out_reference(run_path, Audit.load_file(RunFolder(run_path).audit), manifest.input)
    checks = []
    for a in manifest.verified:
        path, m = folder.path / a.file, a.manifest
        problem = ("missing: the file is gone since export" if not path.is_file()
                   else "modified since export: its sha256 differs from the manifest's"
                   if file_sha256(path) != m.sha256 else None)
        checks.append(Check.failed(a.file, m.format, m.precision, problem) if problem else
                      verify(path, ref, pixels_val, gates or Gates(), m.format, m.precision, threads))
    return ExportResult(folder.path, checks, [], ref.accuracy, {})
