"""`edgetl train`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgetl.console import out, print_json
from edgetl.errors import EdgetlError
from edgetl.models.backbones import BACKBONES
from edgetl.training.config import ClassWeight, Resize, Schedule, Strategy, choices
from edgetl.text import safe
from edgetl.cli.app import app
from edgetl.cli.options import JSON


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
    multi_label: Optional[bool] = typer.Option(None, "--multi-label/--single-label",
                                               help="Several labels per image (sigmoid outputs); a multi-label CSV "
                                                    "is detected without it."),
    label_threshold: Optional[str] = typer.Option(None, "--label-threshold",
                                                  help="Multi-label: each label's threshold on validation: f1 (default: "
                                                       "its best F1) or precision (the most recall at --min-precision)."),
    from_run: Optional[Path] = typer.Option(None, "--from", metavar="RUN",
                                            help="Start from RUN's model (same backbone and size; new classes get new "
                                                 "rows) and keep its split: its val images stay val, so `edgetl compare` "
                                                 "judges both runs on the same images."),
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
        "out": out_dir, "from_run": from_run, "multi_label": multi_label, "label_threshold": label_threshold,
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
        wrote = [f for f in (folder.model, folder.history_plot, folder.confusion_plot, folder.reliability_plot,
                             folder.pr_plot, folder.metrics) if f.exists()]
        what = "val exact match" if m.multi_label else "val accuracy"
        out.print(f"[bold]{safe(result.path)}[/]: {what} {m.val_accuracy:.4f} (best epoch {m.best.epoch}, "
                  f"stage {m.best.stage}); {', '.join(f.name for f in wrote)}")
        if m.multi_label:
            v = m.multi_label["val"]
            out.print(f"multi-label on val: mAP {v['map'] or 0:.4f}, micro F1 {v['micro_f1']:.4f}, macro F1 "
                      f"{v['macro_f1']:.4f}; each label's threshold folded into the model (0.5 decides every label)",
                      markup=False)
        conf = m.confidence.get("manifest")
        if conf:
            from edgetl.runtime.confidence import threshold_rule

            out.print(f"{threshold_rule(conf['threshold'])} ({conf['precision']:.3f} precision, "
                      f"{conf['coverage']:.1%} of val answered); override with --threshold in predict, eval and live",
                      markup=False)
