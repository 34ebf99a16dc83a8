"""`edgetl train`: audit -> cached images -> stage 1 -> stage 2 -> run folder."""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from edgetl.console import err
from edgetl.data.audit import Audit, AuditOptions, audit
from edgetl.data.cache import load_images
from edgetl import runs
from edgetl.errors import EdgetlError
from edgetl.native_logs import quiet_import
from edgetl.runtime.classifier import MANIFEST
from edgetl.runtime.labels import write_labels
from edgetl.runtime.spec import PixelSpec
from edgetl.models.backbones import check_weights
from edgetl.text import clean
from edgetl.train.config import TrainConfig


class Interrupted(EdgetlError):
    """Ctrl-C or SIGTERM during training (exit 130); the run can be resumed."""

    exit_code = 130


@dataclass
class TrainResult:
    """A finished run: its folder and what metrics.json says."""

    path: Path
    metrics: dict


class RunLog:
    """Status lines to stderr and to RUN/train.log."""

    def __init__(self, path: Path):
        self.file = path.open("a", encoding="utf-8")

    def __call__(self, message: str) -> None:
        err.print(clean(message, keep_newlines=True), highlight=False, markup=False, soft_wrap=True)
        if not self.file.closed:
            self.file.write(f"{time.strftime('%H:%M:%S')} {message}\n")
            self.file.flush()

    def close(self) -> None:
        """Stop writing train.log (the folder is about to go)."""
        self.file.close()


def _strategy(name: str, log: RunLog):
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if name == "none" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise EdgetlError("--strategy multiworker needs the TF_CONFIG environment variable",
                              fix="set TF_CONFIG on every worker (cluster and task), or use --strategy mirrored")
        return tf.distribute.MultiWorkerMirroredStrategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    log(f"MirroredStrategy over {len(devices)} device(s): {', '.join(devices)}")
    return tf.distribute.MirroredStrategy(devices)


def _class_weights(y: np.ndarray, n: int) -> dict[int, float]:
    counts = np.bincount(y, minlength=n).astype(float)
    return {i: float(len(y) / (n * c)) if c else 0.0 for i, c in enumerate(counts)}


def train(config: TrainConfig | None = None, resume: str | Path | None = None, **overrides) -> TrainResult:
    """Train a classifier on ``config.data`` (or continue an interrupted run) and return the run.

    ``edgetl.train(data="photos/", epochs=10)`` works as well as passing a :class:`TrainConfig`.
    Every setting is checked before a run folder is made; a run that fails before its first
    epoch is finished is removed again (there is nothing to resume)."""
    if resume is not None:
        work = runs.resume_path(resume)
        cfg = _resumed_config(work, config, overrides)
    else:
        cfg = (config or TrainConfig(**overrides)).validate()
        if not cfg.data:
            raise EdgetlError("no dataset given", fix="edgetl train DATA")
        from edgetl.models import get_backbone

        get_backbone(cfg.backbone)
        check_weights(cfg.weights)
        check_tensorboard(cfg.tensorboard)
        runs.check_new_run(cfg.out)
        # The audit runs before the run folder exists, so bad data leaves nothing behind.
        pre = audit(cfg.data, AuditOptions(val_split=cfg.val_split, seed=cfg.seed))
        pre.require_trainable()
        work = runs.new_run(cfg.project, cfg.name, cfg.out)
        cfg.save(work / "config.yaml")
        pre.save(work / "audit.json")
    with runs.locked(work, "this training run"):
        log = RunLog(work / "train.log")
        log(f"run folder: {runs.final_path(work)} (in progress at {work})")
        try:
            return _train(cfg, work, resume is not None, log)
        except BaseException as e:
            if not _has_finished_epoch(work):
                log.close()
                shutil.rmtree(work, ignore_errors=True)
                if isinstance(e, KeyboardInterrupt):
                    raise Interrupted("training stopped before its first epoch finished; nothing to resume, "
                                      "the run folder was removed") from None
                raise
            if isinstance(e, KeyboardInterrupt):
                log("interrupted")
                raise Interrupted(f"training stopped; resume with: edgetl train --resume {runs.final_path(work)}") from None
            if isinstance(e, EdgetlError):
                e.args = (f"{e.args[0]} (the run can be resumed: edgetl train --resume {runs.final_path(work)})",)
            raise


def _has_finished_epoch(work: Path) -> bool:
    return (work / "last.weights.h5").exists()


# Settings a resumed run may change: they do not alter what was already trained.
RESUMABLE = ("weights", "epochs", "fine_tune_epochs", "patience", "cache", "strategy", "tensorboard")


def _resumed_config(work: Path, config: TrainConfig | None, overrides: dict) -> TrainConfig:
    """The run's saved settings, with the few a resume can honour taken from the caller; any
    other setting given is an error rather than silently ignored."""
    try:
        saved = TrainConfig(**yaml.safe_load((work / "config.yaml").read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, TypeError) as e:
        raise EdgetlError(f"cannot read the run's settings ({type(e).__name__})", path=work / "config.yaml",
                          fix="start a new run; this one cannot be resumed") from None
    given = dict(overrides) if config is None else {k: v for k, v in config.to_dict().items()
                                                   if v != getattr(TrainConfig(), k)}
    given = {k: v for k, v in given.items() if v is not None}
    refused = sorted(k for k, v in given.items() if k not in RESUMABLE and v != getattr(saved, k))
    if refused:
        raise EdgetlError(f"--resume keeps the run's own settings; cannot change {', '.join(refused)}",
                          path=runs.final_path(work),
                          fix=f"leave those options out, or start a new run (resumable changes: {', '.join(RESUMABLE)})")
    changed = {k: v for k, v in given.items() if k in RESUMABLE}
    if "weights" in changed and _has_finished_epoch(work):
        changed.pop("weights")  # trained weights are in the checkpoint; the backbone file no longer matters
    cfg = TrainConfig(**(saved.to_dict() | changed)).validate()
    check_weights(cfg.weights)
    check_tensorboard(cfg.tensorboard)
    cfg.save(work / "config.yaml")
    return cfg


def check_tensorboard(wanted: bool) -> None:
    """TensorBoard logs need the tensorboard package (the optional extra), checked up front."""
    import importlib.util

    if wanted and importlib.util.find_spec("tensorboard") is None:
        raise EdgetlError("--tensorboard needs the tensorboard package", fix='pip install "edgetl[tensorboard]"')


def _train(cfg: TrainConfig, work: Path, resuming: bool, log: RunLog) -> TrainResult:
    tf = quiet_import("tensorflow")
    keras = quiet_import("keras")

    from edgetl.models.backbones import build_base, build_classifier, build_head, freeze_for_fine_tuning, get_backbone
    from edgetl.train.stages import Checkpointer, RunState, dataset, load_checkpoint, loss_fn, optimizer, with_augmentation

    result = Audit.load_file(work / "audit.json")
    skipped = result.skipped
    if skipped:
        log(f"{len(skipped)} file(s) skipped by the audit (`edgetl data check {cfg.data}` lists each with its reason):")
        for p in skipped[:10]:
            log(f"  skipped {p.path}: {p.reason}")
        if len(skipped) > 10:
            log(f"  ... and {len(skipped) - 10} more")
    classes, n = result.classes, len(result.classes)
    write_labels(work / "labels.txt", classes)
    state = RunState.load(work) if resuming else RunState()
    if resuming:
        log(f"resuming after epoch {state.epoch + 1} (stage {state.stage}{', stage 1 done' if state.stage1_done else ''})")
    keras.utils.set_random_seed(cfg.seed)
    spec = get_backbone(cfg.backbone)

    t0 = time.perf_counter()
    splits = {s: result.split(s) for s in result.splits}
    x = {s: load_images([r.path for r in recs], cfg.size, cfg.size, cfg.resize, use_cache=cfg.cache,
                        hashes=[r.sha256 for r in recs])
         for s, recs in splits.items()}
    y = {s: np.array([r.label for r in recs], np.int64) for s, recs in splits.items()}
    onehot = {s: np.eye(n, dtype=np.float32)[v] for s, v in y.items()}
    load_s = time.perf_counter() - t0
    log(f"{sum(map(len, x.values()))} images loaded at {cfg.size}x{cfg.size} in {load_s:.1f} s "
        f"({', '.join(f'{s} {len(v)}' for s, v in x.items())})")

    mixed = cfg.mixed_precision and tf.config.list_physical_devices("GPU")
    if cfg.mixed_precision and not mixed:
        log("--mixed-precision ignored: no GPU visible")
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = _strategy(cfg.strategy, log)
    with strategy.scope():
        base = build_base(spec, cfg.size, cfg.alpha, cfg.weights)
        model, features = build_classifier(spec, base, cfg.size, n, cfg.dropout)
    base.trainable = False
    if state.epoch >= 0:
        load_checkpoint(model, work / "last.weights.h5")
    weights = _class_weights(y["train"], n) if cfg.class_weight == "auto" else None
    steps = int(np.ceil(len(x["train"]) / cfg.batch_size))
    train_ds = dataset(x["train"], onehot["train"], cfg.batch_size, cfg.seed, shuffle=True)
    val_ds = dataset(x["val"], onehot["val"], cfg.batch_size, cfg.seed, shuffle=False)
    metrics = ["accuracy"]

    # Stage 1: frozen base, new head.
    if not state.stage1_done:
        start = state.epoch + 1
        t1 = time.perf_counter()
        if cfg.weights == "none" or cfg.augment or not cfg.feature_cache:
            if cfg.weights == "none":
                base.trainable = True  # nothing pretrained to keep: the whole network learns
                state.path_taken = "whole network from scratch (no pretrained weights to freeze)"
            else:
                state.path_taken = "through the frozen base" + (" (augmentation on)" if cfg.augment else " (feature cache off)")
            log(f"stage 1: {state.path_taken}, {spec.name} run every epoch")
            with strategy.scope():
                trainer = with_augmentation(model, cfg.size, cfg.seed) if cfg.augment else model
                trainer.compile(optimizer(cfg.lr, cfg.schedule, steps * cfg.epochs, steps * start), loss_fn(cfg.label_smoothing), metrics=metrics)
            ckpt = Checkpointer(work, state, 1, model, cfg.patience, cfg.epochs + cfg.fine_tune_epochs, log=log,
                                tensorboard=cfg.tensorboard)
            trainer.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=start,
                        class_weight=weights, callbacks=[ckpt], verbose=0, shuffle=False)  # tf.data shuffles
        else:
            state.path_taken = "cached backbone features (no augmentation)"
            log(f"stage 1: cached backbone features (no augmentation): {spec.name} features computed once, the head trained on them")
            tf_ = time.perf_counter()
            feats = {s: features.predict(x[s].astype(np.float32), batch_size=cfg.batch_size, verbose=0) for s in ("train", "val")}
            log(f"features of {len(x['train']) + len(x['val'])} images in {time.perf_counter() - tf_:.1f} s")
            with strategy.scope():
                head = build_head(feats["train"].shape[1], n, cfg.dropout)
                head.get_layer("predictions").set_weights(model.get_layer("predictions").get_weights())
                head.compile(optimizer(cfg.lr, cfg.schedule, steps * cfg.epochs, steps * start), loss_fn(cfg.label_smoothing), metrics=metrics)

            def sync() -> None:
                model.get_layer("predictions").set_weights(head.get_layer("predictions").get_weights())

            ckpt = Checkpointer(work, state, 1, model, cfg.patience, cfg.epochs + cfg.fine_tune_epochs, sync=sync, log=log,
                                tensorboard=cfg.tensorboard)
            head.fit(feats["train"], onehot["train"], batch_size=cfg.batch_size, epochs=cfg.epochs, initial_epoch=start,
                     validation_data=(feats["val"], onehot["val"]), class_weight=weights, callbacks=[ckpt],
                     verbose=0, shuffle=True)
        state.stage1_done, state.stage1_epochs, state.wait = True, state.epoch + 1, 0
        state.seconds["stage1"] = state.seconds.get("stage1", 0) + time.perf_counter() - t1
        state.save(work)
        log(f"stage 1 done: {state.stage1_epochs} epochs in {state.seconds['stage1']:.1f} s, "
            f"best val loss {state.best_val_loss:.4f} at epoch {state.best_epoch + 1}")

    # Stage 2: unfreeze the top of the base, BatchNorm frozen, lower learning rate.
    if cfg.fine_tune_epochs > 0 and state.epoch + 1 < state.stage1_epochs + cfg.fine_tune_epochs:
        t2 = time.perf_counter()
        if state.stage == 1:  # start fine-tuning from the best stage-1 weights
            load_checkpoint(model, work / "best.weights.h5")
            state.wait = 0
        n_layers = len(base.layers)
        at = cfg.fine_tune_at if cfg.fine_tune_at is not None else (
            int(round(n_layers * (1 - cfg.unfreeze))) if cfg.unfreeze else spec.fine_tune_at(n_layers))
        if not 0 <= at < n_layers:
            raise EdgetlError(f"--fine-tune-at {at} is outside the {n_layers} layers of {spec.name}")
        with strategy.scope():
            trainable = freeze_for_fine_tuning(base, at)
            lr2 = cfg.fine_tune_lr or cfg.lr / 10
            end = state.stage1_epochs + cfg.fine_tune_epochs
            start = state.epoch + 1
            trainer = with_augmentation(model, cfg.size, cfg.seed) if cfg.augment else model
            trainer.compile(optimizer(lr2, cfg.schedule, steps * cfg.fine_tune_epochs, steps * (start - state.stage1_epochs)),
                            loss_fn(cfg.label_smoothing), metrics=metrics)
        log(f"stage 2: fine-tuning {trainable} layers from layer {at} of {n_layers} at lr {lr2:g}, BatchNorm frozen")
        ckpt = Checkpointer(work, state, 2, model, cfg.patience, end, log=log, tensorboard=cfg.tensorboard)
        trainer.fit(train_ds, validation_data=val_ds, epochs=end, initial_epoch=start, class_weight=weights,
                    callbacks=[ckpt], verbose=0, shuffle=False)  # tf.data shuffles
        state.seconds["stage2"] = state.seconds.get("stage2", 0) + time.perf_counter() - t2
        state.save(work)

    return _finish(cfg, work, state, model, x, y, classes, log, load_s, len(skipped), splits)


def _finish(cfg, work, state, model, x, y, classes, log, load_s, skipped: int, splits: dict) -> TrainResult:
    import keras
    import tensorflow as tf

    from edgetl.metrics import plot_confusion, report
    from edgetl.train.plots import plot_history
    from edgetl.train.stages import load_checkpoint

    load_checkpoint(model, work / "best.weights.h5")
    best = next(h for h in state.history if h["epoch"] == state.best_epoch)
    log(f"best epoch {state.best_epoch + 1} (stage {best['stage']}): val_loss {best['val_loss']:.4f} "
        f"val_acc {best['val_accuracy']:.4f}")
    tmp = work / "model.tmp.keras"
    model.save(tmp)
    os.replace(tmp, work / "model.keras")
    evals, predictions = {}, {}
    for split in [s for s in ("val", "test") if s in x]:
        probs = model.predict(x[split].astype(np.float32), batch_size=cfg.batch_size, verbose=0)
        evals[split] = report(y[split], probs.argmax(1), classes)
        predictions[split] = [{"path": r.path, "true": int(t), "pred": int(p.argmax()), "score": float(p.max()),
                               "true_score": float(p[t])} for r, t, p in zip(splits[split], y[split], probs)]
    plot_confusion(evals["val"], str(work / "confusion_matrix.png"), title="val")
    stage2_start = next((h["epoch"] for h in state.history if h["stage"] == 2), None)
    plot_history(state.history, work / "history.png", stage2_start)
    (work / "history.json").write_text(json.dumps(state.history, indent=1))
    # Per held-out image: what the report shows as mistakes, without running the model again.
    (work / "predictions.json").write_text(json.dumps(predictions))
    pixels = PixelSpec(cfg.size, cfg.size, mean=0.0, std=1.0, resize=cfg.resize)
    (work / MANIFEST).write_text(json.dumps({
        "labels": classes, "input": pixels.to_dict(), "backbone": cfg.backbone, "alpha": cfg.alpha,
        "split": {"val_split": cfg.val_split, "seed": cfg.seed},
        "artifacts": [{"file": "model.keras", "format": "keras"}],
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
    }, indent=1))
    s1 = [h for h in state.history if h["stage"] == 1]
    s2 = [h for h in state.history if h["stage"] == 2]
    metrics = {
        "val_accuracy": evals["val"].accuracy,
        "best": {"epoch": state.best_epoch + 1, "stage": best["stage"], "val_loss": best["val_loss"],
                 "val_accuracy": best["val_accuracy"]},
        # Epochs are counted from 1 here, as in the log (history.json keeps Keras's 0-based index).
        "final_epoch": {k: state.history[-1][k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
        | {"epoch": state.history[-1]["epoch"] + 1},
        "per_class": {c.label: {"precision": c.precision, "recall": c.recall, "support": c.support}
                      for c in evals["val"].per_class},
        "confusion": evals["val"].confusion,
        "test_accuracy": evals["test"].accuracy if "test" in evals else None,
        "epochs": {"stage1": len(s1), "stage2": len(s2)},
        "seconds": {"load": load_s, **state.seconds},
        "images_per_s": {f"stage{i}": len(h) * len(x["train"]) / state.seconds[f"stage{i}"] if h else None
                         for i, h in ((1, s1), (2, s2))},
        "stage1_path": state.path_taken,
        "images": {s: len(v) for s, v in x.items()},
        "skipped_files": skipped,
    }
    (work / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for checkpoint in ("last.weights.h5", "best.weights.h5"):  # model.keras holds the best weights now
        (work / checkpoint).unlink(missing_ok=True)
    final = runs.finish(work)
    from edgetl.report import refresh

    page = refresh(final)
    log(f"val accuracy {metrics['val_accuracy']:.4f}; run saved to {final}" + (f"; report: {page}" if page else ""))
    return TrainResult(final, metrics)
