"""The `edgetl` command: parse options, call one library function, print the result."""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from typer.core import TyperGroup

from edgetl import __version__
from edgetl.console import err, error_line, out, print_json
from edgetl.benchmark import BenchOptions
from edgetl.errors import EdgetlError
from edgetl.exporting.formats import ALL, FORMATS, Gates, Int8Settings, chosen_formats
from edgetl.models.backbones import BACKBONES
from edgetl.training.config import ClassWeight, Resize, Schedule, Strategy, choices
from edgetl.native_logs import DEBUG_ENV
from edgetl.text import clean, safe

WORKFLOW = ("data", "train", "export", "verify", "predict", "eval", "bench", "live", "deploy", "harvest", "report",
            "doctor", "demo")


class WorkflowOrder(TyperGroup):
    """Lists commands in the order a user meets them, not alphabetically or by definition."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: WORKFLOW.index(n) if n in WORKFLOW else len(WORKFLOW))


# Plain click help (rich_markup_mode=None): no "<bool>" beside flags, argument names as typed.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=WorkflowOrder,
                  rich_markup_mode=None, help="edgetl: photos in, a fast verified classifier for the edge out.")
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Inspect a photo folder.")
app.add_typer(data_app, name="data")

JSON = typer.Option(False, "--json", help="Machine-readable result on stdout.")
MAX_DROP = typer.Option(Gates.max_drop, "--max-drop", help="Largest accuracy drop vs Keras, in points.")
MIN_AGREEMENT = typer.Option(Gates.min_agreement, "--min-agreement", help="Smallest top-1 agreement with Keras (0..1).")
STRICT_GATES = typer.Option(Gates.strict, "--strict-gates/--evidence-gates",
                            help="Refuse on the figures alone; by default a missed limit refuses an artifact only when "
                                 "the held-out images prove the loss (McNemar), else it is kept as 'not proven'.")


def _version(value: bool) -> None:
    if value:
        out.print(f"edgetl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit."),
          debug: bool = typer.Option(False, "--debug", help="Show full tracebacks.")) -> None:
    """edgetl: photos in, a fast verified classifier for the edge out."""


CLASS_DEPTH = typer.Option(1, "--class-depth", min=1, max=2,
                           help="1: classes are DATA's (or each split's) sub-folders; 2: their sub-folders are, merged "
                                "across the folders above (batch folders such as 2023/cats, 2024/cats).")
EXAMPLES_PER_GROUP = 3


@data_app.command("check")
def data_check(
    folder: Path = typer.Argument(..., metavar="DATA", help="DATA/<class>/*, DATA/{train,validation[,test]}/<class>/* "
                                                            "or a CSV of path,label[,split]"),
    val_split: float = typer.Option(0.2, help="Validation fraction when DATA has no validation folder."),
    seed: int = typer.Option(0, help="Seed of the stratified split."),
    min_side: int = typer.Option(32, help="Note images whose shorter side is below this (they are upscaled)."),
    class_depth: int = CLASS_DEPTH,
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1,
                                             help="Refuse images whose header claims more pixels (default 100,000,000 "
                                                  "or $EDGETL_MAX_PIXELS): decompression bombs cost nothing."),
    json_out: bool = JSON,
) -> None:
    """Audit a photo folder: counts per class and split, every bad file with its reason, imbalance."""
    from edgetl.data.audit import AuditOptions, audit

    options = AuditOptions(val_split=val_split, seed=seed, min_side=min_side, class_depth=class_depth)
    if max_pixels:
        options.max_pixels = max_pixels
    result = audit(folder, options)
    if json_out:
        print_json(result.to_dict())
    else:
        _print_audit(result)
    raise typer.Exit(0 if result.clean else 1)


def _print_audit(result) -> None:
    """One screen whatever the dataset's size: what was read, the table, problems grouped by kind
    with a few examples each (every file is in --json and in a run's audit.json)."""
    out.print(result.describe(), markup=False, soft_wrap=True)
    counts = result.counts()
    table = Table()
    table.add_column("class")
    for s in result.splits:
        table.add_column(s, justify="right")
    table.add_column("total", justify="right")
    shown = list(counts.items())
    for c, per in shown[:20]:
        table.add_row(safe(c), *[str(per[s]) for s in result.splits], str(sum(per.values())))
    if len(shown) > 20:
        table.add_row(f"... {len(shown) - 20} more", *["" for _ in result.splits], "")
    table.add_row("[bold]all", *[f"[bold]{sum(p[s] for p in counts.values())}" for s in result.splits],
                  f"[bold]{len(result.records)}")
    out.print(table)
    sizes = result.size_stats()
    if sizes:
        out.print("image size: width {min}-{max} (median {median:.0f}), ".format(**sizes["width"])
                  + "height {min}-{max} (median {median:.0f})".format(**sizes["height"]))
    colour = {"error": "red", "warning": "yellow", "info": "dim"}
    for g in result.groups():
        head = f"[{colour[g.severity]}]{g.severity:7}[/] "
        if len(g.problems) == 1:
            p = g.problems[0]
            out.print(head + f"{safe(p.path)}: {safe(p.reason)}", soft_wrap=True)
            continue
        out.print(head + f"{len(g.problems):,} × {safe(g.kind)}", soft_wrap=True)
        for p in g.problems[:EXAMPLES_PER_GROUP]:
            out.print(f"          e.g. {safe(p.path)}: {safe(p.reason)}", soft_wrap=True)
        if len(g.problems) > EXAMPLES_PER_GROUP:
            out.print(f"          ... and {len(g.problems) - EXAMPLES_PER_GROUP:,} more (--json lists every file)")
    n_err = sum(p.severity == "error" for p in result.problems)
    n_warn = sum(p.severity == "warning" for p in result.problems)
    verdict = "[green]clean[/]" if result.clean else f"[red]{n_err} error(s)[/], [yellow]{n_warn} warning(s)[/]"
    n = len(result.classes)
    out.print(f"{len(result.records)} of {result.scanned} files usable, {n} class{'' if n == 1 else 'es'}: {verdict}")


THREADS = typer.Option(None, "--threads", min=1, help="Inference threads (default: the runtime's choice).")
LABELS = typer.Option(None, "--labels", help="Labels file, one per line (overrides the model's own).")
THRESHOLD = typer.Option(None, "--threshold", min=0.0, max=1.0,
                         help="Answer 'unknown' below this top score (default: the model's own, chosen at training; "
                              "0 never).")
# The device options of bench, verify, deploy and doctor, defined once (defaults: SshTarget's and
# DEFAULT_TIMEOUT in edgetl.remote.ssh, which a test compares; not imported here to keep start-up light).
REMOTE_PYTHON = typer.Option("python3", "--remote-python", help="Python on the device (e.g. ~/edgetl-venv/bin/python).")
SSH_CONFIG = typer.Option(None, "--ssh-config", help="ssh_config file (default: ~/.ssh/config).")
DEVICE_TIMEOUT = typer.Option(900.0, "--timeout", min=1, help="Seconds a device may take before it is stopped.")


@app.command()
def predict(
    model: Path = typer.Argument(..., help="A .tflite, .onnx or .keras model."),
    images: list[Path] = typer.Argument(..., help="Image files or folders."),
    top_k: int = typer.Option(3, "--top-k", min=1, help="How many labels per image."),
    labels: Optional[Path] = LABELS,
    threads: Optional[int] = THREADS,
    provider: Optional[str] = typer.Option(None, help="ONNX Runtime execution provider."),
    threshold: Optional[float] = THRESHOLD,
    json_out: bool = typer.Option(False, "--json", help="One JSON object per image on stdout."),
) -> None:
    """Classify images: a line per image with its top-k labels and scores ('unknown' under the threshold)."""
    from edgetl.evaluation import predict as run_predict
    from edgetl.runtime import load

    clf = load(model, threads=threads, labels=labels, provider=provider, threshold=threshold)
    warned = False
    read, skipped = 0, []

    def say_skipped(p) -> None:
        err.print(f"skipped {clean(p.path)}: {clean(p.error)}", markup=False, soft_wrap=True)
        if json_out:
            print(json.dumps(p.to_dict()), flush=True)

    for p in run_predict(clf, list(images), top_k):
        if p.error:
            skipped.append(p)
            if read:  # until one file is read, held back: a lone bad file is one error line of its own
                say_skipped(p)
            continue
        if not read:
            for held in skipped:
                say_skipped(held)
        read += 1
        if clf.unlabelled_logits and not warned:
            warned = True
            err.print(f"[yellow]warning:[/] {safe(model)} has no labels and its outputs are not probabilities: if it is "
                      "a feature extractor rather than a classifier, these scores mean nothing (give --labels FILE if "
                      "it is a classifier)", soft_wrap=True)
        if json_out:
            print(json.dumps(p.to_dict()), flush=True)
        else:
            scores = scores_line([(c.label, c.score) for c in p.top])
            out.print(f"{clean(p.path)}: {f'unknown ({scores})' if p.unknown else scores}", markup=False)
    if skipped and read:
        err.print(f"{read} image(s) classified, {len(skipped)} skipped", markup=False)
    if not read:
        first = skipped[0]
        if len(skipped) == 1:
            raise EdgetlError(first.error, path=first.path, fix="give a jpg, png, bmp, gif or webp file")
        raise EdgetlError(f"none of the {len(skipped)} files could be read as an image (the first: {clean(first.error)})",
                          path=first.path, fix="give jpg, png, bmp, gif or webp files")


def scores_line(top: list[tuple[str, float]]) -> str:
    """``daisy 0.996, rose 0.004``: labels and scores as predict and live print them. A label with
    a comma or quote is quoted (``"tabby, tabby cat" 0.912``) so the line still reads one way;
    entries after the first that print as 0.000 are left out (a class no image is near, such as a
    background class, is not a runner-up; --json keeps the whole top-k)."""
    def label(text: str) -> str:
        text = clean(text)
        return json.dumps(text, ensure_ascii=False) if ("," in text or '"' in text) else text

    shown = [(n, v) for i, (n, v) in enumerate(top) if i == 0 or round(v, 3) > 0]
    return ", ".join(f"{label(n)} {v:.3f}" for n, v in shown)


MISTAKES_SHOWN = 20
"""Misclassified files `eval` lists on the console (all of them in --json)."""


@app.command("eval")
def eval_cmd(
    model: Path = typer.Argument(..., help="A .tflite, .onnx or .keras model."),
    data: Path = typer.Argument(..., help="A dataset folder or CSV (any layout `data check` accepts)."),
    split: str = typer.Option("auto", help="auto: the test split, else a validation folder, else every image; never "
                                           "an image the model's run trained on. Or train, val, test, all."),
    class_depth: int = CLASS_DEPTH,
    labels: Optional[Path] = LABELS,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference threads (default: every usable core)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the confusion matrix PNG here."),
    threshold: Optional[float] = THRESHOLD,
    unknown: Optional[Path] = typer.Option(None, "--unknown", metavar="DIR", help="Images that are none of the "
                                           "classes: the share answered 'unknown' and AUROC known-vs-unknown."),
    json_out: bool = JSON,
) -> None:
    """Accuracy, per-class precision/recall and the confusion matrix of a model on a dataset; with
    'unknown' under the threshold, the share answered and their accuracy."""
    from edgetl.evaluation import evaluate
    from edgetl.metrics import plot_confusion

    res = evaluate(model, data, split=split, threads=threads, labels=labels, class_depth=class_depth,
                   threshold=threshold, unknown=unknown)
    if plot:
        plot_confusion(res.report, str(plot), title=Path(res.model).name)
    if json_out:
        print_json(res.to_dict())
        return
    rep = res.report
    out.print(f"{safe(res.model)} ({safe(res.runtime)}) on {safe(data)}: scored {rep.count} images ({safe(res.how)}): "
              f"accuracy [bold]{rep.accuracy:.4f}[/] ({round(rep.accuracy * rep.count)}/{rep.count}), "
              f"{res.images_per_s:.1f} images/s {f'in batches of {res.batch}' if res.batch > 1 else 'one at a time'}, "
              f"{res.latency_ms:.2f} ms for one image alone", soft_wrap=True)
    sel = res.selective
    if sel is not None:
        auc = f"; ROC AUC {sel.roc_auc:.4f}" if sel.roc_auc is not None else ""
        if sel.threshold > 0:
            answered = f"accuracy {sel.accuracy:.4f} on those" if sel.accuracy is not None else "none answered"
            out.print(f"'unknown' under {sel.threshold:.3f}: {sel.coverage:.1%} answered ({sel.unknown} unknown), "
                      f"{answered}{auc}", soft_wrap=True)
        elif auc:
            out.print(f"no 'unknown' threshold (the model has none; --threshold sets one){auc}", soft_wrap=True)
        if sel.unknown_images:
            separation = (f"; AUROC known vs unknown {sel.auroc_known_unknown:.4f}"
                          if sel.auroc_known_unknown is not None else "")
            out.print(f"--unknown: {sel.unknown_rejected:.1%} of {sel.unknown_images} images answered 'unknown'"
                      f"{separation}", soft_wrap=True)
    table = Table("class", "precision", "recall", "support")
    for c in rep.per_class:
        table.add_row(safe(c.label), f"{c.precision:.3f}", f"{c.recall:.3f}", str(c.support))
    out.print(table)
    cm = Table("true \\ predicted", *map(safe, rep.labels), title="confusion matrix")
    for label, row in zip(rep.labels, rep.confusion):
        cm.add_row(safe(label), *map(str, row))
    out.print(cm)
    if res.mistakes:
        shown = res.mistakes[:MISTAKES_SHOWN]
        out.print(f"{len(res.mistakes)} misclassified, most confident first"
                  + (f" (the first {len(shown)}; --json lists every one)" if len(shown) < len(res.mistakes) else "") + ":")
        for m in shown:
            out.print(f"  {safe(m['path'])}: {safe(m['true'])} taken for {safe(m['predicted'])} {m['score']:.3f}")
    if res.skipped:
        out.print(f"[yellow]{len(res.skipped)} file(s) skipped[/] (not counted):")
        for item in res.skipped:
            out.print(f"  {safe(item['path'])}: {safe(item['reason'])}")
    if plot:
        out.print(f"confusion matrix written to {safe(plot)}")


@app.command()
def train(
    data: Optional[Path] = typer.Argument(None, help="Dataset folder or CSV of path,label[,split] (or set `data:` in "
                                                     "--config)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file whose keys are these options."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run folder."),
    backbone: Optional[str] = typer.Option(None, help=f"{', '.join(BACKBONES)} (default mobilenet_v2)."),
    alpha: Optional[float] = typer.Option(None, help="Width multiplier: " + "; ".join(
        f"{b.name} {', '.join(map(str, b.alphas))}" for b in BACKBONES.values() if len(b.alphas) > 1) + "."),
    size: Optional[int] = typer.Option(None, help="Input size in pixels (default 224; 160, 192, 96 for small devices)."),
    weights: Optional[str] = typer.Option(None, help="imagenet (default, Keras cache), none, or a weights file."),
    resize: Optional[str] = typer.Option(None, help=f"{choices(Resize)} (default resize: squash)."),
    epochs: Optional[int] = typer.Option(None, help="Stage 1 epochs (default 15)."),
    fine_tune_epochs: Optional[int] = typer.Option(None, help="Stage 2 epochs (default 10; 0 skips)."),
    fine_tune_at: Optional[int] = typer.Option(None, help="First base layer to unfreeze in stage 2."),
    unfreeze: Optional[float] = typer.Option(None, help="Fraction of base layers to unfreeze (instead of --fine-tune-at)."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size (default 32)."),
    lr: Optional[float] = typer.Option(None, help="Stage 1 learning rate (default 3e-3)."),
    fine_tune_lr: Optional[float] = typer.Option(None, help="Stage 2 learning rate (default lr/10)."),
    dropout: Optional[float] = typer.Option(None, help="Dropout before the classifier (default 0.2)."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment",
                                           help="Augmentation (default on); off trains stage 1 on cached features."),
    feature_cache: Optional[bool] = typer.Option(None, "--feature-cache/--no-feature-cache",
                                                 help="Stage 1 on backbone features computed once (default on)."),
    augment_views: Optional[int] = typer.Option(None, "--augment-views", metavar="K",
                                                help="With augmentation: stage 1 on cached features of K augmented views "
                                                     "of each photo (default 0: through the base every epoch; 5 is 3x faster)."),
    label_smoothing: Optional[float] = typer.Option(None, help="Label smoothing (default 0)."),
    class_weight: Optional[str] = typer.Option(None, help=f"{choices(ClassWeight)} (default none; auto for imbalanced data)."),
    schedule: Optional[str] = typer.Option(None, help=f"{choices(Schedule)} (default cosine)."),
    patience: Optional[int] = typer.Option(None, help="Early-stopping patience in epochs (default 5)."),
    seed: Optional[int] = typer.Option(None, help="Seed for split, order and initialisation."),
    val_split: Optional[float] = typer.Option(None, help="Validation fraction when DATA has no validation folder "
                                                         "(default 0.2)."),
    class_depth: Optional[int] = typer.Option(None, "--class-depth", help="1 (default): classes are DATA's (or each "
                                              "split's) sub-folders; 2: their sub-folders, merged across batch folders."),
    strategy: Optional[str] = typer.Option(None, help=f"{choices(Strategy)} (tf.distribute; default auto)."),
    worker_timeout: Optional[float] = typer.Option(None, "--worker-timeout", metavar="SECONDS",
                                                   help="multiworker: give up when the others have not joined in "
                                                        "this time (default 600)."),
    mixed_precision: Optional[bool] = typer.Option(None, "--mixed-precision/--no-mixed-precision", help="float16 on GPU."),
    deterministic: Optional[bool] = typer.Option(None, "--deterministic/--no-deterministic",
                                                 help="The same run again gives the same model (some ops slower)."),
    cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", help="Keep decoded images on disk (default on)."),
    tensorboard: Optional[bool] = typer.Option(None, "--tensorboard/--no-tensorboard",
                                               help="TensorBoard logs in RUN/tensorboard/ (view: tensorboard --logdir RUN/tensorboard)."),
    unknown: Optional[Path] = typer.Option(None, "--unknown", help="A folder of images that are none of the classes: "
                                           "the 'unknown' threshold is chosen with them."),
    min_precision: Optional[float] = typer.Option(None, "--min-precision", help="Precision the 'unknown' threshold "
                                                  "keeps on held-out (and --unknown) images (default 0.95)."),
    answer_rate: Optional[float] = typer.Option(None, "--answer-rate", help="Share of validation images the 'unknown' "
                                                "rule from the classes' own images answers (default 0.95)."),
    project: Optional[str] = typer.Option(None, help="Parent of auto-named runs (default runs)."),
    name: Optional[str] = typer.Option(None, help="Run name stem (default exp: runs/exp, runs/exp2, ...)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Exact run folder."),
    json_out: bool = JSON,
) -> None:
    """Two-stage transfer learning: frozen base + new head, then fine-tuning with BatchNorm frozen."""
    from edgetl.training import load_config
    from edgetl.training.run import train as run_train

    # Every option by name: a new local variable can never become a config key by accident.
    overrides = {
        "data": data, "backbone": backbone, "alpha": alpha, "size": size, "weights": weights, "resize": resize,
        "epochs": epochs, "fine_tune_epochs": fine_tune_epochs, "fine_tune_at": fine_tune_at, "unfreeze": unfreeze,
        "batch_size": batch_size, "lr": lr, "fine_tune_lr": fine_tune_lr, "dropout": dropout, "augment": augment,
        "feature_cache": feature_cache, "augment_views": augment_views, "label_smoothing": label_smoothing, "class_weight": class_weight,
        "schedule": schedule, "patience": patience, "seed": seed, "val_split": val_split, "class_depth": class_depth, "strategy": strategy, "worker_timeout": worker_timeout,
        "mixed_precision": mixed_precision, "deterministic": deterministic, "cache": cache, "tensorboard": tensorboard, "project": project, "name": name,
        "unknown": str(unknown) if unknown else None, "min_precision": min_precision, "answer_rate": answer_rate,
        "out": out_dir,
    }
    overrides = {k: str(v) if isinstance(v, Path) else v for k, v in overrides.items() if v is not None}
    if resume is not None:
        if config is not None:
            raise EdgetlError("--resume keeps the run's own config.yaml; --config cannot be combined with it",
                              fix="leave out --config")
        result = run_train(resume=resume, **overrides)
    else:
        result = run_train(load_config(config, overrides))
    if json_out:
        print_json(result.to_dict())
    elif result.metrics is None:
        out.print(f"worker {result.worker} done; the chief wrote {safe(result.path)}")
    else:
        from edgetl.runs import RunFolder

        m, folder = result.metrics, RunFolder(result.path)
        wrote = (folder.model, folder.history_plot, folder.confusion_plot, folder.reliability_plot, folder.metrics)
        out.print(f"[bold]{safe(result.path)}[/]: val accuracy {m.val_accuracy:.4f} (best epoch {m.best.epoch}, "
                  f"stage {m.best.stage}); {', '.join(f.name for f in wrote)}")
        conf = m.confidence.get("manifest")
        if conf:
            from edgetl.runtime.confidence import threshold_rule

            out.print(f"{threshold_rule(conf['threshold'])} ({conf['precision']:.3f} precision, "
                      f"{conf['coverage']:.1%} of val answered); override with --threshold in predict, eval and live",
                      markup=False)


def verdict_mark(verdict: str) -> str:
    """✓, ? or ✗ for a gate's verdict, coloured (one mapping: :func:`edgetl.exporting.gate.mark`)."""
    from edgetl.exporting.gate import mark

    return mark(verdict)


def _print_checks(result) -> None:
    table = Table(title=f"{safe(result.folder)} (Keras accuracy {result.keras_accuracy:.4f})")
    for col in ("", "file", "precision", "size MB", "accuracy", "Δ pts", "agreement", "lost/gained", "max Δp", "ms",
                "gate"):
        table.add_column(col, justify="left" if col in ("", "file", "precision", "gate") else "right")
    seen = set()
    for c in result.checks + result.attempts:
        if c.file in seen:
            continue
        seen.add(c.file)
        table.add_row(verdict_mark(c.verdict), safe(c.file), c.precision, f"{c.size_bytes / 1e6:.2f}", f"{c.accuracy:.4f}",
                      f"{c.delta_points:+.2f}", f"{c.agreement:.1%}", f"{c.lost}/{c.gained}", f"{c.max_prob_diff:.2g}",
                      f"{c.latency_ms:.1f}", safe(c.verdict))
    out.print(table)
    for c in result.checks:
        if c.verdict == "not proven":
            out.print(f"[yellow]? {safe(c.file)}[/] is kept: {safe(c.note)} (--strict-gates refuses on the figures alone)",
                      soft_wrap=True)
        elif not c.passed:
            hint = ("try --calib-samples 500, or ship the fallback the table shows passing"
                    if c.precision == "int8" else "check the calibration data and the --max-drop gate")
            out.print(f"[red]✗ {safe(c.file)}[/]: {safe(c.note)}; kept as rejected/{safe(c.file)}; {hint}")


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
        _print_checks(result)
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
        _print_model_check(result, json_out)
    if json_out:
        print_json({"folder": str(result.folder), "ok": result.ok, "checks": [c.to_dict() for c in result.checks]})
    else:
        _print_checks(result)
    raise typer.Exit(0 if result.ok else 1)


def _print_model_check(check, json_out: bool) -> None:
    """A model's golden check, each place a line (and its failing images), then exit 0 or 1."""
    model = check.model
    if json_out:
        print_json(check.to_dict())
        raise typer.Exit(0 if check.ok else 1)
    if check.modified_since_export:
        err.print(f"[red]✗[/] {safe(model)} was modified since export: its sha256 differs from the manifest's")
    for report in check.reports:
        bad = [r for r in report.results if not r.ok]
        mark = "[green]✓[/]" if report.ok else "[red]✗[/]"
        out.print(f"{mark} {safe(model.name)} on {safe(report.where)} ({safe(report.runtime)}): "
                  f"{len(report.results) - len(bad)} of {len(report.results)} golden images answer as at export")
        for r in bad:
            out.print(f"  [red]✗[/] {safe(r.image)}: at export {safe(r.expected_top1)} {r.expected_score:.3f}, now "
                      f"{safe(r.got_top1)} {r.got_score:.3f} (largest probability difference {r.max_diff:.3g})")
        if report.hint:
            out.print(f"  {safe(report.hint)}")
    raise typer.Exit(0 if check.ok else 1)


def _print_profiles(models: list[Path], threads: list[Optional[int]], runs: int, json_out: bool) -> None:
    """`bench --profile`: a table per model and thread count (or their JSON)."""
    from edgetl.benchmark.profile import profile

    profiles = [profile(m, t, runs) for m in models for t in threads]
    if json_out:
        print_json([p.to_dict() for p in profiles])
        return
    for p in profiles:
        timed = p.delegated is None
        table = Table(title=f"{safe(p.model)}, {safe(p.runtime)}, {p.threads or 'default'} thread(s)")
        for col in ("op", "nodes") + (("ms per inference", "share") if timed else ("outside XNNPACK",)):
            table.add_column(col, justify="left" if col == "op" else "right")
        for o in p.ops:
            table.add_row(safe(o.op), str(o.nodes), *((f"{o.ms:.3f}", f"{o.share:.1%}") if timed else
                                                     (str(o.outside_delegate) if o.outside_delegate else "",)))
        out.print(table)
        if timed:
            out.print(f"{sum(o.ms for o in p.ops):.2f} ms per inference in {p.total_nodes} nodes, over {p.runs} runs")
        else:
            out.print(f"XNNPACK runs {p.delegated} of {p.total_nodes} nodes in {p.partitions} partition(s); LiteRT's "
                      "Python API times no single op: the ones outside XNNPACK are where a graph change can help")


@app.command()
def bench(
    models: list[Path] = typer.Argument(..., help="Models to compare (.tflite, .onnx; .keras locally)."),
    threads: str = typer.Option("", "--threads", help="Comma-separated thread counts, e.g. 1,2,4 (default: runtime's)."),
    runs: int = typer.Option(BenchOptions.runs, help="Timed inferences at least."),
    warmup: int = typer.Option(BenchOptions.warmup, help="Untimed inferences first."),
    min_seconds: float = typer.Option(BenchOptions.min_seconds, help="Measure at least this long per model and thread count."),
    e2e: Optional[Path] = typer.Option(None, "--e2e", help="Also time decode + preprocessing of this image."),
    device: str = typer.Option("local", "--device", help="local, rpi (any Linux board over SSH) or android (adb)."),
    host: list[str] = typer.Option([], "--host", help="SSH host or ~/.ssh/config alias (repeat for several)."),
    remote_python: str = REMOTE_PYTHON,
    ssh_config: Optional[Path] = SSH_CONFIG,
    serial: Optional[str] = typer.Option(None, help="adb device serial."),
    benchmark_binary: Optional[str] = typer.Option(None, help="benchmark_model: a local file (pushed) or a path on the phone."),
    use_gpu: bool = typer.Option(False, "--use-gpu", help="Android: GPU delegate."),
    use_nnapi: bool = typer.Option(False, "--use-nnapi", help="Android: NNAPI delegate."),
    timeout: float = DEVICE_TIMEOUT,
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="Write the comparison as CSV."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a latency box plot PNG."),
    profile: bool = typer.Option(False, "--profile", help="Where the time goes, op by op, on this machine (ONNX: time "
                                                          "per op type; TFLite: the ops XNNPACK leaves to LiteRT)."),
    json_out: bool = JSON,
) -> None:
    """Latency benchmark: init, first, mean/p50/p90/p99, FPS, memory, device facts; one table for all."""
    from edgetl.benchmark import bench as run_bench, export_run_of, parse_threads
    from edgetl.benchmark.report import device_line, oversubscribed, plot as draw, rows, write_csv

    thread_list = parse_threads(threads)
    if profile:
        if device != "local":
            raise EdgetlError("--profile runs on this machine", fix="run `edgetl bench MODEL --profile` on the device itself")
        _print_profiles(models, thread_list, runs, json_out)
        return
    opts = BenchOptions(runs=runs, warmup=warmup, min_seconds=min_seconds, e2e_image=str(e2e) if e2e else None)
    results = run_bench(models, thread_list, device=device, hosts=host, options=opts, remote_python=remote_python,
                        ssh_config=str(ssh_config) if ssh_config else None, serial=serial,
                        benchmark_binary=benchmark_binary, use_gpu=use_gpu, use_nnapi=use_nnapi, timeout=timeout)
    run = export_run_of(models)
    if run is not None:  # the run's page shows its benchmarks
        from edgetl.report import refresh

        refresh(run)
    if csv_file:
        write_csv(results, csv_file)
    if plot:
        draw(results, plot)
    if json_out:
        print_json([r.to_dict() for r in results])
        return
    table = Table(title="edgetl bench")
    columns = ("model", "format", "precision", "size MB", "accuracy", "device", "threads", "init ms", "mean ms",
               "std ms", "p50 ms", "p90 ms", "p99 ms", "FPS", "peak RSS MB")
    longest = max((len(safe(r.model)) for r in results), default=5)
    for col in columns:
        # a model's name is what the row is about: never cut (the other columns give way)
        table.add_column(col, justify="left" if col in ("model", "format", "precision", "device") else "right",
                         no_wrap=col == "model", min_width=min(longest, 48) if col == "model" else None)

    def num(v, f: str) -> str:
        return "—" if v is None else format(v, f)

    for row in rows(results):
        table.add_row(safe(row["model"]), safe(row["format"]), safe(row["precision"]), f"{row['size_mb']:.2f}",
                      num(row["accuracy"], ".4f"), safe(row["target"]), str(row["threads"] or "default"),
                      num(row["init_ms"], ".0f"), num(row["mean_ms"], ".2f"), num(row["std_ms"], ".2f"),
                      num(row["p50_ms"], ".2f"), num(row["p90_ms"], ".2f"), num(row["p99_ms"], ".2f"),
                      num(row["fps"], ".1f"), num(row["peak_rss_mb"], ".0f"))
    out.print(table)
    for line in dict.fromkeys(device_line(r.device) for r in results):
        out.print(line, markup=False)
    out.print("runtime: " + ", ".join(sorted({r.runtime for r in results})), markup=False)
    if any(r.own_process is False for r in results):
        out.print("peak RSS: measured one model after another in one process (this Python cannot start a fresh "
                  "one), so each figure is the highest so far", markup=False)
    for t, cores in oversubscribed(results):
        err.print(f"[yellow]warning:[/] --threads {t} is more than the device's {cores} cores: threads then wait for "
                  "each other and latency rises; measure up to the core count")
    for r in results:
        if r.e2e:
            out.print(f"{safe(r.model)} ({r.threads or 'default'} thr) end to end: preprocess "
                      f"{r.e2e['preprocess_ms']:.2f} ms, with inference {r.e2e['total_ms']:.2f} ms (p50s, in sequence)")
    overheads = [r.harness_overhead_pct for r in results if r.harness_overhead_pct is not None]
    if overheads:
        out.print(f"harness overhead vs a bare loop: {min(overheads):+.2f}% to {max(overheads):+.2f}%")


@app.command()
def live(
    model: Path = typer.Argument(..., help="A .tflite or .onnx model."),
    source: str = typer.Option("0", "--source", help="Camera index, video file, rtsp/http URL, folder or glob, or picamera2."),
    width: int = typer.Option(0, help="Camera width request (default: the smallest common size covering the model's input)."),
    height: int = typer.Option(0, help="Camera height request."),
    full_decode: bool = typer.Option(False, "--full-decode",
                                     help="Decode JPEG/MJPEG frames whole (default: at 1/2, 1/4 or 1/8 scale when "
                                          "still at least the model's input size)."),
    fps: float = typer.Option(0, help="Camera FPS request."),
    top_k: int = typer.Option(3, "--top-k", min=1, help="Labels shown per frame."),
    smooth: int = typer.Option(0, help="Average scores over about N frames (exponential moving average)."),
    threshold: Optional[float] = THRESHOLD,
    realtime: bool = typer.Option(False, "--realtime", help="Drop frames of a video file like a camera would."),
    loop: bool = typer.Option(False, "--loop", help="Read a video file or folder again from its start when it ends."),
    headless: bool = typer.Option(False, "--headless", help="No window, print instead (automatic without a display)."),
    record: Optional[Path] = typer.Option(None, "--record", help="Write the annotated video (e.g. out.mp4)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop after N frames."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after S seconds."),
    reconnect: float = typer.Option(10.0, "--reconnect", help="Seconds to retry a lost camera or stream."),
    labels: Optional[Path] = LABELS,
    threads: Optional[int] = THREADS,
    json_out: bool = typer.Option(False, "--json", help="One JSON line per frame, then a summary line."),
    serve: Optional[str] = typer.Option(None, "--serve", metavar="[HOST:]PORT",
                                        help="Serve the live page and its API (127.0.0.1 unless HOST is given; "
                                             "another address needs the printed token)."),
    capture: Optional[Path] = typer.Option(None, "--capture", metavar="DIR",
                                           help="Keep frames answered 'unknown', with close scores or a flip-flopping "
                                                "label here, to label later (edgetl harvest brings them home)."),
    capture_max_files: int = typer.Option(500, "--capture-max-files", help="Frames the outbox keeps (oldest go first)."),
    capture_max_mb: float = typer.Option(200.0, "--capture-max-mb", help="Megabytes the outbox keeps."),
    capture_every: float = typer.Option(1.0, "--capture-every", metavar="SECONDS", help="At most one frame kept per this many seconds."),
) -> None:
    """Classify a camera, video, stream or folder frame by frame, on screen, headless or in a browser."""
    from edgetl.live import CaptureRequest, LiveOptions, OutboxPolicy, run
    from edgetl.live.overlay import has_gui

    show = False
    if not headless and serve is None:
        show, why = has_gui()
        if not show:
            err.print(f"running headless: {why}")

    def serving(url: str) -> None:
        err.print(f"serving the live page at {url}", markup=False, soft_wrap=True)
        if "token=" not in url:
            from urllib.parse import urlsplit

            where = urlsplit(url)
            host = where.hostname if ":" not in (where.hostname or "") else f"[{where.hostname}]"
            err.print(f"from another machine: ssh -L {where.port}:{host}:{where.port} THIS_HOST, then open "
                      f"http://127.0.0.1:{where.port}/", markup=False, soft_wrap=True)

    def on_frame(r) -> None:
        if json_out:
            print(json.dumps(r.to_dict()), flush=True)
        elif not show:
            scores = scores_line(r.top)
            shown = f"unknown ({scores})" if r.unknown else scores
            out.print(f"frame {r.index}: {shown} ({r.latency_ms['total']:.1f} ms)", markup=False)

    summary = run(model, source, LiveOptions(top_k=top_k, smooth=smooth, threshold=threshold, realtime=realtime,
                                             loop=loop, max_frames=max_frames, duration=duration, reconnect=reconnect),
                  CaptureRequest(width, height, fps, full_decode=full_decode), show=show, record=record, on_frame=on_frame,
                  threads=threads, labels=labels, serve=serve, on_serving=serving,
                  capture=OutboxPolicy(capture, capture_max_files, int(capture_max_mb * 1e6), capture_every)
                  if capture else None)
    s = summary.to_dict()
    if json_out:
        print(json.dumps(s), flush=True)
    else:
        out.print(f"{s['frames']} frames in {s['seconds']:.1f} s: {s['fps']:.1f} FPS, p50 {s['p50_ms']:.1f} ms, "
                  f"p90 {s['p90_ms']:.1f} ms, {s['dropped']} dropped, {s['skipped']} unreadable ({s['ended']})"
                  + (f"; video written to {safe(record)}" if record else ""))
        if s.get("outbox"):
            o = s["outbox"]
            out.print(f"kept {o['kept']} doubtful frame(s) in {safe(o['folder'])} (now {o['files']} frames, "
                      f"{o['bytes'] / 1e6:.1f} MB; {o['dropped']} dropped while the writer was busy)")
        if s.get("bound_fps"):
            stages = ", ".join(f"{k} {v:.1f}" for k, v in s["stage_ms"].items())
            why = (f"CPU: {s['cpu_ms_per_frame']:.1f} ms per frame over {s['cores']} cores" if s["bound_by"] == "cpu"
                   else f"its slowest stage, {s['bound_by']}")
            if s.get("paced_fps"):
                # reading waits for the file's clock here, so the stages bound nothing: say what sets the pace
                work = ", ".join(f"{k} {v:.1f}" for k, v in s["stage_ms"].items() if k != "read")
                out.print(f"paced by the file's own {s['paced_fps']:.1f} FPS (--realtime), as a camera would deliver "
                          f"it; ms per frame besides reading: {work}, of which inference {s['inference_ms']:.1f}")
            else:
                out.print(f"{s['of_bound']:.0%} of this pipeline's bound of {s['bound_fps']:.1f} FPS (set by {why}; "
                          f"ms per frame: {stages}, of which inference {s['inference_ms']:.1f})")
    raise typer.Exit(1 if s["ended"] == "source lost" else 0)


@app.command()
def deploy(
    model: Optional[Path] = typer.Argument(None, help="An exported model (RUN/export/model_int8.tflite)."),
    host: str = typer.Option(..., "--host", help="SSH host or ~/.ssh/config alias of the device."),
    service: bool = typer.Option(False, "--service", help="Also run `live --serve` there as a systemd user service."),
    serve: str = typer.Option("127.0.0.1:8080", "--serve", metavar="[HOST:]PORT", help="What the service listens on."),
    source: str = typer.Option("0", "--source", help="The service's --source (camera index, picamera2, URL...)."),
    status: bool = typer.Option(False, "--status", help="Show what is deployed there and whether the service runs."),
    remove: bool = typer.Option(False, "--remove", help="Stop and remove the service and the deployed model."),
    capture: Optional[str] = typer.Option(None, "--capture", metavar="DIR",
                                          help="The service keeps the frames it doubted here (e.g. ~/edgetl-outbox; "
                                               "edgetl harvest brings them home); with --status: the outbox to size."),
    remote_dir: str = typer.Option(".local/share/edgetl/deploy", "--remote-dir",
                                   help="Deployment folder on the device (relative to its home, or absolute)."),
    remote_python: str = REMOTE_PYTHON,
    ssh_config: Optional[Path] = SSH_CONFIG,
    timeout: float = DEVICE_TIMEOUT,
    json_out: bool = JSON,
) -> None:
    """Put an exported model on a device over SSH, check it answers as at export, optionally as a service."""
    from edgetl import deploy as deploying
    from edgetl.remote.ssh import SshTarget

    target = SshTarget(host, remote_python=remote_python, ssh_config=str(ssh_config) if ssh_config else None,
                       timeout=timeout)
    if status:
        done = deploying.status(target, remote_dir, capture or "~/edgetl-outbox")
    elif remove:
        done = deploying.remove(target, remote_dir)
    else:
        if model is None:
            raise EdgetlError("deploy needs a MODEL", fix="edgetl deploy runs/exp/export/model_int8.tflite --host mypi")
        done = deploying.deploy(model, target, deploying.DeployOptions(remote_dir, service, serve, source,
                                                                       capture=capture))
    if json_out:
        print_json(done.to_dict())
        return
    for key, value in done.to_dict().items():
        out.print(f"{key}: {clean(value if not isinstance(value, dict) else json.dumps(value))}", markup=False)


@app.command()
def harvest(
    host: str = typer.Argument(..., help="The device: a host name, user@host or an alias from ~/.ssh/config."),
    outbox: str = typer.Option("~/edgetl-outbox", "--outbox", help="The device's `live --capture` folder."),
    to: Optional[Path] = typer.Option(None, "--to", help="Where the frames go (default harvest/HOST)."),
    keep: bool = typer.Option(False, "--keep", help="Leave the frames on the device (default: remove what arrived intact)."),
    max_frames: int = typer.Option(500, "--max-frames", min=1, help="Frames one harvest takes at most (the rest stays on the device)."),
    max_mb: float = typer.Option(200.0, "--max-mb", min=0.001, help="Megabytes one harvest takes at most."),
    remote_python: str = REMOTE_PYTHON,
    ssh_config: Optional[Path] = SSH_CONFIG,
    timeout: float = typer.Option(900.0, "--timeout", min=1, help="Seconds the whole harvest may take before it is stopped."),
    json_out: bool = JSON,
) -> None:
    """Bring a device's doubtful frames home: DEST/unsorted/ to label, the model's guesses in DEST/guesses.csv."""
    from edgetl.remote.ssh import SshTarget, check_host
    from edgetl.harvest import HarvestLimits, default_folder, harvest as run_harvest

    check_host(host)
    dest = to or default_folder(host)
    result = run_harvest(SshTarget(host, remote_python, str(ssh_config) if ssh_config else None, timeout=timeout),
                         outbox, dest, remove=not keep, limits=HarvestLimits(max_frames, int(max_mb * 1e6)))
    if json_out:
        print_json(result.to_dict())
        return
    out.print(f"{len(result.images)} frame(s) from {safe(host)} in {safe(dest / 'unsorted')} (guesses in "
              f"{safe(dest / 'guesses.csv')}); {result.removed} removed from the device", soft_wrap=True)
    for why in result.refused:
        out.print(f"[yellow]not taken:[/] {safe(why)}")
    if result.capped:
        out.print(f"[yellow]stopped at the cap of {safe(result.capped)}:[/] the rest is still on the device; "
                  "harvest again for it (or raise --max-frames / --max-mb)")


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., metavar="RUN...", help="Run folders (runs/exp ...)."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="With several runs: where the comparison page goes "
                                                                  "(default: compare.html beside the first run)."),
) -> None:
    """One self-contained HTML page per run: is it good, where does it fail, what to ship."""
    from edgetl.report import write_comparison, write_report
    from edgetl.runs import check_run_folder

    for run in runs:
        check_run_folder(run)
    if len(runs) == 1:
        page = write_report(runs[0])
    else:
        page = write_comparison(runs, out_file or runs[0].parent / "compare.html")
    out.print(f"report: {clean(page)}", markup=False)


@app.command()
def doctor(
    host: Optional[str] = typer.Option(None, "--host", help="Check a device over SSH instead (runtimes, versions, conflicts)."),
    remote_python: str = REMOTE_PYTHON,
    ssh_config: Optional[Path] = SSH_CONFIG,
    json_out: bool = JSON,
) -> None:
    """Versions, runtimes that load, cached ImageNet weights, cameras, GPUs and known conflicts."""
    from edgetl.doctor import diagnose

    if host is not None:
        _doctor_host(host, remote_python, ssh_config, json_out)
        return
    d = diagnose()
    if json_out:
        print_json(d.to_dict())
        raise typer.Exit(1 if d.conflicts else 0)
    table = Table("package", "version", title="installed")
    for pkg, ver in d.versions.items():
        if ver:
            table.add_row(pkg, ver)
    out.print(table)
    loaded = [name for name, info in d.runtimes.items() if info.loads]
    for name, info in d.runtimes.items():
        extra = info.providers or info.delegates or []
        if info.loads:
            out.print(f"runtime {name}: [green]loads[/] " + ", ".join(extra))
        elif name == "tflite-runtime" and "ai-edge-litert" in loaded:
            out.print(f"runtime {name}: [dim]not installed (optional: the older TFLite runtime; ai-edge-litert is used)[/]")
        else:
            out.print(f"runtime {name}: [red]missing[/] ({safe(info.error)})")
    tf = d.tensorflow
    out.print("TensorFlow: " + (f"{tf.version}, GPUs: {', '.join(tf.gpus or []) or 'none visible'}" if tf.installed
                                else "not installed (fine on a device; training needs edgetl[train])"))
    w = d.imagenet_weights
    for name, path in w.cached.items():
        out.print(f"ImageNet weights {name}: " + (f"cached at {path}" if path else
                  f"[yellow]not cached[/] in {w.cache_dir} (downloads on first use; offline use --weights PATH)"))
    cv = d.opencv
    if cv.version:
        out.print(f"OpenCV {cv.version}: window {'yes' if cv.window else 'no (' + str(cv.why_not) + ')'}; "
                  f"cameras that open: {cv.cameras or 'none'}")
    for c in d.conflicts:
        out.print(f"[red]conflict:[/] {safe(c)}")
    for note in d.notes:
        out.print(f"[yellow]note:[/] {safe(note)}")
    raise typer.Exit(1 if d.conflicts else 0)


def _doctor_host(host: str, remote_python: str, ssh_config: Optional[Path], json_out: bool) -> None:
    from edgetl.remote.runner import doctor_on_host
    from edgetl.remote.ssh import SshTarget

    d = doctor_on_host(SshTarget(host, remote_python=remote_python, ssh_config=str(ssh_config) if ssh_config else None))
    if json_out:
        print_json(d.to_dict())
        raise typer.Exit(1 if d.conflicts else 0)
    out.print(f"{safe(host)}: {safe(d.machine)}, Python {safe(d.python)}, numpy {safe(d.versions.get('numpy'))}")
    for name, info in d.runtimes.items():
        out.print(f"  runtime {safe(name)}: " + ("[green]loads[/]" if info.loads else f"not usable ({safe(info.error)})"))
    for c in d.conflicts:
        out.print(f"[red]conflict:[/] {safe(c)}")
    raise typer.Exit(1 if d.conflicts else 0)


@app.command()
def demo(
    project: Path = typer.Option(Path("runs"), help="Where the dataset and runs/demo* go."),
    weights: Optional[str] = typer.Option(None, help="Backbone weights file for transfer learning."),
    per_class: Optional[int] = typer.Option(None, help="Images drawn per class (default 80 with pretrained weights, 300 from scratch)."),
    epochs: Optional[int] = typer.Option(None, help="Stage 1 epochs (default: 8 with weights, 40 from scratch)."),
    threads: int = typer.Option(2, help="Threads for verification, bench and live."),
    json_out: bool = JSON,
) -> None:
    """The whole path on a dataset edgetl draws itself: check, train, export, verify, bench, live."""
    from edgetl.demo import DemoOptions, run_demo

    s = run_demo(DemoOptions(project=str(project), per_class=per_class, weights=weights, epochs=epochs, threads=threads))
    if json_out:
        print_json(s.to_dict())
        return
    table = Table("", "artifact", "gate", "accuracy", "agreement", "with unknown", "size MB", "p50 ms", "FPS",
                  title=f"edgetl demo: {safe(s.run)}")
    for a in s.artifacts:
        table.add_row(verdict_mark(a.verdict), safe(Path(a.file).name), a.verdict, f"{a.accuracy:.4f}",
                      f"{a.agreement:.1%}", f"{a.decision_agreement:.1%}" if a.decision_agreement is not None else "—",
                      f"{a.size_mb:.2f}", f"{a.p50_ms:.2f}" if a.p50_ms else "—", f"{a.fps:.0f}" if a.fps else "—")
    out.print(table)
    lv = s.live
    out.print(f"training: {s.training}; Keras val accuracy {s.keras_accuracy:.4f}")
    out.print(f"live ({lv['model']} on {lv['video']}): {lv['frames']} frames at {lv['fps']:.0f} FPS, p50 {lv['p50_ms']:.1f} ms")
    out.print(f"dataset: {s.dataset}\nrun: {s.run} (model.keras, history.png, confusion_matrix.png, metrics.json)\n"
              f"artifacts: {s.run}/export (labels.txt, manifest.json, report.md)\ntook {s.minutes:.1f} min")


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning EdgetlError into one line and exit code 2 (1 for gates)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        os.environ[DEBUG_ENV] = "1"  # native libraries' own log lines are shown too
    for stream in (sys.stdout, sys.stderr):  # file names need not be UTF-8: never die printing one
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    # systemd and `kill` stop a program with SIGTERM: end like Ctrl-C (live prints its summary,
    # training stays resumable), not mid-write.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app(args=args, prog_name="edgetl")  # typer handles usage errors (exit 2) and typer.Exit
    except EdgetlError as e:
        if debug:
            raise
        error_line(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # a bug or an unexpected environment: still one line unless --debug
        if debug:
            raise
        error_line(f"{type(e).__name__}: {e} (run with --debug for the traceback)")
        sys.exit(1)
