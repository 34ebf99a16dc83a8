"""`edgetl tune`: which model fits my device."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgetl.console import out, print_json
from edgetl.errors import EdgetlError
from edgetl.text import safe
from edgetl.cli.app import app
from edgetl.cli.options import DEVICE_TIMEOUT, JSON, REMOTE_PYTHON, SSH_CONFIG


def _list(text: str | None, kind, what: str) -> tuple | None:
    if not text:
        return None
    try:
        return tuple(kind(t.strip()) for t in text.split(",") if t.strip())
    except ValueError:
        raise EdgetlError(f"--{what} {text!r} is not a comma-separated list", fix=f"e.g. --{what} "
                          + {"sizes": "96,128,160", "alphas": "0.35,0.5,1.0", "backbones": "mobilenet_v2",
                             "formats": "int8,fp16"}[what]) from None


@app.command()
def tune(
    data: Optional[Path] = typer.Argument(None, help="Dataset, as for train (or `data:` in --config)."),
    budget_ms: float = typer.Option(..., "--budget-ms", help="Latency budget per image on the device, in ms "
                                                              "(33 for 30 frames a second)."),
    device: str = typer.Option("local", "--device", help="Where the model will run: local, rpi (any Linux board over "
                                                        "SSH) or android (adb)."),
    host: Optional[str] = typer.Option(None, "--host", help="SSH host or ~/.ssh/config alias (--device rpi)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference threads on the device "
                                                                         "(default: the runtime's choice)."),
    statistic: str = typer.Option("p50", "--statistic", help="The figure held against the budget: p50 (median), p90 "
                                                             "or mean."),
    metric: str = typer.Option("accuracy", "--metric", help="What the finalists are ranked by: accuracy."),
    backbones: Optional[str] = typer.Option(None, "--backbones", help="Comma-separated backbones (default: every one "
                                                                      "registered)."),
    alphas: Optional[str] = typer.Option(None, "--alphas", help="Widths to try where a backbone has several (default: all)."),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Input sizes (default 96,128,160,192,224)."),
    formats: Optional[str] = typer.Option(None, "--formats", help="Artifact kinds: int8, fp16, fp32 (default int8,fp16)."),
    finalists: int = typer.Option(2, "--finalists", help="Architectures trained fully, the best by the quick estimate."),
    max_hours: Optional[float] = typer.Option(None, "--max-hours", help="Stop after this long with the best so far "
                                                                        "(continue later with --resume)."),
    bench_seconds: float = typer.Option(2.0, "--bench-seconds", help="Seconds each candidate is benched for at least."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="The search's folder (default runs/tune, runs/tune2, ...)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the search in --out, skipping what was done."),
    remote_python: str = REMOTE_PYTHON,
    ssh_config: Optional[Path] = SSH_CONFIG,
    serial: Optional[str] = typer.Option(None, help="adb device serial (--device android)."),
    timeout: float = DEVICE_TIMEOUT,
    config: Optional[Path] = typer.Option(None, "--config", help="A train YAML file: every candidate trains with it "
                                                                "(its backbone, alpha and size are the candidates')."),
    weights: Optional[str] = typer.Option(None, help="imagenet (default: Keras's cache; never downloaded during a "
                                                     "search), none, or a backbone weights file."),
    epochs: Optional[int] = typer.Option(None, help="Stage 1 epochs of each finalist (default train's)."),
    fine_tune_epochs: Optional[int] = typer.Option(None, help="Stage 2 epochs of each finalist (default train's)."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size (default 32)."),
    resize: Optional[str] = typer.Option(None, help="resize or center_crop (default resize)."),
    seed: Optional[int] = typer.Option(None, help="Seed for split, order and initialisation."),
    val_split: Optional[float] = typer.Option(None, help="Validation fraction when DATA has no validation folder."),
    class_depth: Optional[int] = typer.Option(None, "--class-depth", help="As train's --class-depth."),
    json_out: bool = JSON,
) -> None:
    """Search backbones, widths, input sizes and int8/fp16 for the most accurate model within a latency budget,
    measured on the device."""
    from edgetl.training import load_config
    from edgetl.tuning import Grid, Quant, Statistic, Target, TuneOptions, tune as run_tune

    overrides = {"data": str(data) if data else None, "weights": weights, "epochs": epochs,
                 "fine_tune_epochs": fine_tune_epochs, "batch_size": batch_size, "resize": resize, "seed": seed,
                 "val_split": val_split, "class_depth": class_depth}
    cfg = load_config(config, {k: v for k, v in overrides.items() if v is not None})
    try:
        quants = tuple(Quant(q) for q in (_list(formats, str, "formats") or ("int8", "fp16")))
        stat = Statistic(statistic)
    except ValueError:
        raise EdgetlError(f"--formats {formats!r} / --statistic {statistic!r}: unknown value",
                          fix="--formats from int8, fp16, fp32; --statistic p50, p90 or mean") from None
    grid = Grid(backbones=_list(backbones, str, "backbones"), alphas=_list(alphas, float, "alphas"),
                sizes=_list(sizes, int, "sizes") or Grid().sizes, quants=quants)
    target = Target(device, host, threads, remote_python, str(ssh_config) if ssh_config else None, serial, timeout)
    options = TuneOptions(budget_ms, target, grid, stat, metric, finalists, max_hours, str(out_dir) if out_dir else None,
                          resume, bench_seconds)
    result = run_tune(cfg, options)
    if json_out:
        print_json(result.record.to_dict())
        return
    record = result.record
    if result.chosen is not None:
        out.print(record.recommendation, markup=False, soft_wrap=True)
        out.print(f"run: {safe(result.run)}  artifact: {safe(result.chosen.artifact)}", markup=False, soft_wrap=True)
    else:
        out.print(f"nothing chosen: {record.stopped or 'no finalist was kept within budget'}", markup=False)
    dropped = sum(r.status == "over budget" for r in record.rows)
    skipped = sum(r.status == "no weights" for r in record.rows)
    out.print(f"{len(record.rows)} candidates: {dropped} over budget (not trained)"
              + (f", {skipped} without weights here (listed on the page)" if skipped else "")
              + f"; {sum(record.seconds.values()) / 60:.1f} min", markup=False)
    out.print(f"page: {safe(result.page)}  chart: {safe(result.folder / 'tune.png')}  record: "
              f"{safe(result.folder / 'tune.json')}", markup=False, soft_wrap=True)
    if result.chosen is None:
        raise typer.Exit(1)
