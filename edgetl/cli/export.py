"""`edgetl export`, `edgetl verify` and `edgetl calibrate`: making, checking and re-tuning what a run ships."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgetl.console import out, print_json
from edgetl.exporting.formats import ALL, FORMATS, Gates, Int8Settings, chosen_formats
from edgetl.text import safe
from edgetl.cli.app import app
from edgetl.cli.options import DEVICE_TIMEOUT, JSON, MAX_DROP, MIN_AGREEMENT, REMOTE_PYTHON, SSH_CONFIG, STRICT_GATES, THREADS
from edgetl.cli.show import print_calibration, print_checks, print_model_check


@app.command()
def export(
    run: Optional[Path] = typer.Argument(None, help="Run folder (default: the latest under runs/)."),
    formats: list[str] = typer.Option([], "--format", metavar="NAME",
                                      help=f"A format to make (repeat): {', '.join(FORMATS)}. fp32 is always made."),
    int8: bool = typer.Option(False, "--int8", help="Shorthand: --format int8 (and onnx_int8 with --onnx)."),
    fp16: bool = typer.Option(False, "--fp16", help="Shorthand: --format fp16."),
    dynamic: bool = typer.Option(False, "--dynamic", help="Shorthand: --format dynamic."),
    onnx: bool = typer.Option(False, "--onnx", help="Shorthand: --format onnx."),
    all_formats: bool = typer.Option(False, "--all", help=f"Shorthand for {', '.join(ALL)}."),
    io: str = typer.Option(Int8Settings.io, "--io", help="int8 TFLite input/output type: uint8, int8 or float."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset."),
    target: str = typer.Option(Int8Settings.target, "--target",
                               help="CPU the int8 ONNX model is for: x86 (uint8 activations, int8 weights) or arm64 "
                                    "(int8 both: Pi 5, Graviton)."),
    calib_samples: int = typer.Option(Int8Settings.calib_samples, "--calib-samples",
                                      help="Calibration images (stratified from train)."),
    bias_correction: bool = typer.Option(Int8Settings.bias_correction, "--bias-correction/--no-bias-correction",
                                         help="Correct the int8 TFLite model's depthwise biases on the calibration images."),
    max_drop: float = MAX_DROP,
    min_agreement: float = MIN_AGREEMENT,
    strict_gates: bool = STRICT_GATES,
    threads: Optional[int] = THREADS,
    json_out: bool = JSON,
) -> None:
    """TFLite (fp32, fp16, dynamic, int8) and ONNX (fp32, int8), each verified against the Keras model."""
    from edgetl.exporting.pipeline import ExportOptions, export as run_export

    wanted = chosen_formats(formats, fp16=fp16, dynamic=dynamic, int8=int8, onnx=onnx, every=all_formats)
    settings = Int8Settings(calib_samples=calib_samples, io=io, bias_correction=bias_correction, target=target)
    result = run_export(run, ExportOptions(formats=wanted, int8=settings, opset=opset,
                                           gates=Gates(max_drop, min_agreement, strict_gates), threads=threads))
    if json_out:
        print_json({"folder": str(result.folder), "ok": result.ok, "keras_accuracy": result.keras_accuracy,
                    "checks": [c.to_dict() for c in result.checks], "int8_fallback": [a.to_dict() for a in result.attempts]})
    else:
        print_checks(result)
        out.print(f"artifacts, labels.txt, manifest.json, report.md in {safe(result.folder)}")
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def verify(
    target: Optional[Path] = typer.Argument(None, metavar="[RUN|MODEL]",
                                            help="A run folder (default: the latest) or one exported model file."),
    host: list[str] = typer.Option([], "--host", help="With a MODEL: run its golden check on this SSH host (repeat)."),
    remote_python: str = REMOTE_PYTHON,
    ssh_config: Optional[Path] = SSH_CONFIG,
    timeout: float = DEVICE_TIMEOUT,
    max_drop: float = MAX_DROP,
    min_agreement: float = MIN_AGREEMENT,
    strict_gates: bool = STRICT_GATES,
    threads: Optional[int] = THREADS,
    json_out: bool = JSON,
) -> None:
    """A run: verify its artifacts against the Keras model again. A model: replay its golden images
    here or on devices (--host) and compare with what it answered at export."""
    from edgetl import verify as run_verify
    from edgetl.golden_check import ModelCheck

    result = run_verify(target, host, threads, Gates(max_drop, min_agreement, strict_gates),
                        remote_python=remote_python, ssh_config=str(ssh_config) if ssh_config else None, timeout=timeout)
    if isinstance(result, ModelCheck):
        print_model_check(result, json_out)
    if json_out:
        print_json({"folder": str(result.folder), "ok": result.ok, "checks": [c.to_dict() for c in result.checks]})
    else:
        print_checks(result)
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def calibrate(
    run: Optional[Path] = typer.Argument(None, help="Run folder (default: the latest under runs/)."),
    answer_rate: Optional[float] = typer.Option(None, "--answer-rate",
                                                help="Share of the validation images the rule answers (default: the "
                                                     "run's own, 0.95 unless train was told otherwise)."),
    unknown: Optional[Path] = typer.Option(None, "--unknown", metavar="DIR",
                                           help="Images that are none of the classes: the score threshold is then "
                                                "chosen with them to meet --min-precision."),
    min_precision: Optional[float] = typer.Option(None, "--min-precision",
                                                  help="With --unknown: the precision the threshold must reach "
                                                       "(default: the run's)."),
    threads: Optional[int] = THREADS,
    json_out: bool = JSON,
) -> None:
    """Choose the "unknown" rule again without retraining, rewrite model.keras, the manifests and every
    exported file's rule in place, then verify the artifacts against Keras as export does."""
    from edgetl import calibrate as run_calibrate
    from edgetl.calibration import CalibrateOptions

    result = run_calibrate(run, CalibrateOptions(answer_rate, str(unknown) if unknown else None, min_precision, threads))
    if json_out:
        print_json(result.to_dict())
    else:
        print_calibration(result)
        if result.verified is not None:
            print_checks(result.verified)
    raise typer.Exit(0 if result.ok else 1)
