"""What export writes beside the artifacts: manifest.json (each artifact's contract and hash, the
golden set), report.json and report.md (the checks as a table, and what they mean, for people)."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from edgetl.exporting import onnx as onnx_export
from edgetl.exporting.formats import FORMATS, LAYER_ERROR_IMAGES, held_back
from edgetl.exporting.gate import mark
from edgetl.exporting.layer_error import most_added
from edgetl.exporting.verify import Check
from edgetl.runs import ExportFolder
from edgetl.runtime.folder_manifest import ArtifactEntry, ExportManifest, GoldenEntry
from edgetl.runtime.manifest import file_sha256
from edgetl.versions import package_versions
from edgetl.exporting.runtime_needs import runtime_needs
from edgetl.exporting.context import EXPORT_TOOLS, ExportContext


def write_records(work: Path, ctx: ExportContext, checks: list[Check], attempts: list[Check], gold: GoldenEntry) -> None:
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
        artifacts.append(ArtifactEntry(path.relative_to(work).as_posix(), contract, c.size_bytes, c.kept,
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
