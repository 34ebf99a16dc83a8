"""The stage loop: the run's data on disk, stage 1 (on cached features or through the base),
stage 2 (the top of the base unfrozen), the best weights restored."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.data.audit import Audit
from edgetl.errors import EdgetlError
from edgetl.native_logs import quiet_import
from edgetl.runs import RunFolder
from edgetl.runtime.labels import write_labels
from edgetl.training import stop
from edgetl.training.config import ClassWeight, TrainConfig
from edgetl.training.progress import epoch_bar
from edgetl.training.results import TrainResult
from edgetl.training.distribute import DistributedFit, WorkerRole, is_multiworker, shard
from edgetl.training.inputs import Split, class_weights, dataset, steps_per_epoch
from edgetl.training.runlog import RunLog
from edgetl.training.objective import OBJECTIVES, positive_weights
from edgetl.training.splits import open_split, targets
from edgetl.training.folder import finish
from edgetl.models.backbones import Pretrained, from_scratch
from edgetl.training.warm_start import load_into, read_warm_start


@dataclass
class RunContext:
    """What both stages share: the model, the inputs on disk, the strategy and how to feed it."""

    cfg: TrainConfig
    work: Path
    state: object
    log: RunLog
    strategy: object
    role: WorkerRole
    data: dict
    num_classes: int
    weights: object
    """Single-label: per-class sample weights (``--class-weight auto``), or None."""
    objective: object
    """The task's activation, loss and accuracy (:mod:`edgetl.training.objective`)."""
    positive_weights: object
    """Multi-label: each label's positives' weight in the loss, or None."""
    model: object
    base: object
    features: object
    sizes: dict
    """Images per split in the whole cluster (a worker's data holds its shard)."""

    @property
    def multiworker(self) -> bool:
        """Replicas in several processes: the distributed loop and equal batches per worker."""
        return is_multiworker(self.strategy)

    def batches_per_epoch(self, split: str) -> int | None:
        """Whole batches each worker runs per epoch (the same on every worker), or None for one process."""
        if not self.multiworker:
            return None
        replicas = self.strategy.num_replicas_in_sync
        total = self.sizes[split]
        return steps_per_epoch(total, self.cfg.batch_size) * max(1, replicas // self.role.count)

    def inputs(self, split: str, data_split=None, first_epoch: int = 0, views: int = 1):
        """The split as batches for ``fit`` or, across workers, for the distributed loop."""
        cfg = self.cfg
        train = split == "train"
        ds = dataset(data_split or self.data[split], self.num_classes, self._per_replica(), cfg.seed + self.role.index,
                     shuffle=train, first_epoch=first_epoch, weights=self.weights if train else None,
                     batches=self.batches_per_epoch(split), views=views)
        return self.strategy.distribute_datasets_from_function(lambda _: ds) if self.multiworker else ds

    def _per_replica(self) -> int:
        if not self.multiworker:
            return self.cfg.batch_size
        return max(1, -(-self.cfg.batch_size // self.strategy.num_replicas_in_sync))

    def fit(self, trainer, train_ds, val_ds, epochs: int, initial_epoch: int, callback) -> None:
        """One stage's epochs: Keras's fit in one process, the distributed loop across workers."""
        if self.multiworker:
            loop = DistributedFit(self.strategy, trainer, self._per_replica() * self.strategy.num_replicas_in_sync,
                                  self.cfg.label_smoothing, self.objective, self.positive_weights)
            loop.fit(train_ds, val_ds, epochs, initial_epoch, [callback])
        else:
            steps = self.batches_per_epoch("train") or -(-self.sizes["train"] // self.cfg.batch_size)
            bar = epoch_bar(steps, self.cfg.batch_size)
            trainer.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch,
                        callbacks=[callback, stop.callback(), bar], verbose=0, shuffle=False)  # the dataset shuffles

    def compile(self, trainer, lr: float, steps: int, done_steps: int) -> None:
        import keras

        from edgetl.training.stages import optimizer

        with self.strategy.scope():
            # ROC AUC per epoch, one class against the rest, macro over classes (the labels are
            # one-hot): what the EfficientNet tutorials watch, and the report's figure at the end.
            auc = keras.metrics.AUC(multi_label=True, num_labels=self.num_classes, name="auc")
            trainer.compile(optimizer(lr, self.cfg.schedule, steps, done_steps),
                            self.objective.loss(self.cfg.label_smoothing, self.positive_weights),
                            metrics=[self.objective.accuracy(), auc])
            # Every variable made now, not in the first training step: a variable made there (the
            # optimizer's slots, a metric named by a string) makes TensorFlow trace the step twice
            # (measured: the first epoch of a 0.35 MobileNetV2 at 32 px, 18.2 s -> 10.3 s).
            trainer.optimizer.build(trainer.trainable_variables)

    @property
    def base_frozen(self) -> bool:
        """Stage 1 on a pretrained base: only the head changes."""
        return not self.state.stage1_done and not from_scratch(self.cfg.weights)

    def checkpointer(self, stage: int, total: int, sync=lambda: None):
        from edgetl.training.stages import Checkpointer, trained_variables

        return Checkpointer(self.work, self.state, stage, trained_variables(self.model, self.base_frozen),
                            self.cfg.patience, total, sync=sync, log=self.log,
                            tensorboard=self.cfg.tensorboard and self.role.chief)


def run_stages(cfg: TrainConfig, work: Path, resuming: bool, log: RunLog, role: WorkerRole, strategy) -> TrainResult:
    tf = quiet_import("tensorflow")
    keras = quiet_import("keras")

    from edgetl.models.backbones import build_base, build_classifier, get_backbone
    from edgetl.training.stages import RunState, load_checkpoint

    result = Audit.load_file(RunFolder(work).audit)
    skipped = result.skipped
    if skipped and role.chief:
        log(f"{len(skipped)} file(s) skipped by the audit (`edgetl data check {cfg.data}` lists each with its reason):")
        for p in skipped[:10]:
            log(f"  skipped {p.path}: {p.reason}")
        if len(skipped) > 10:
            log(f"  ... and {len(skipped) - 10} more")
    classes, n = result.classes, len(result.classes)
    write_labels(RunFolder(work).labels, classes)
    state = RunState.load(work) if resuming else RunState()
    if resuming:
        log(f"resuming after epoch {state.epoch + 1} (stage {state.stage}{', stage 1 done' if state.stage1_done else ''})")
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    spec = get_backbone(cfg.backbone)

    t0 = time.perf_counter()
    records = {s: result.split(s) for s in result.splits}
    mine = {s: shard(records[s], role, cfg.seed) for s in ("train", "val")}
    data = {s: open_split(recs, cfg, num_labels=len(result.classes)) for s, recs in mine.items()}
    load_s = time.perf_counter() - t0
    read = sum(map(len, data.values()))
    sharded = f"; this worker's shard of {role.count}" if role.count > 1 else ""
    log(f"{read} images ready at {cfg.size}x{cfg.size} in {load_s:.1f} s ({read / max(load_s, 1e-9):.0f} images/s; "
        f"{', '.join(f'{s} {len(v)}' for s, v in data.items())}"
        f"{sharded})")

    mixed = cfg.mixed_precision and tf.config.list_physical_devices("GPU")
    if cfg.mixed_precision and not mixed:
        log("--mixed-precision ignored: no GPU visible")
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    warm = read_warm_start(cfg.from_run) if cfg.from_run else None
    objective = OBJECTIVES[result.task]
    if result.multi_label:
        log(f"multi-label: {n} sigmoid outputs, binary cross-entropy with rare labels' positives weighted")
    with strategy.scope():
        # A warm start's base weights all come from RUN's model: nothing to read from a weights file.
        base = build_base(spec, cfg.size, cfg.alpha, Pretrained.NONE if warm else cfg.weights)
        model, features = build_classifier(spec, base, cfg.size, n, cfg.dropout, objective.activation)
        if warm:
            load_into(model, warm, classes)
    base.trainable = False
    if state.epoch >= 0:
        load_checkpoint(model, RunFolder(work).checkpoint("last"))
    train_targets = targets(records["train"], n)
    weights = (class_weights(train_targets, n) if cfg.class_weight == ClassWeight.AUTO and not result.multi_label
               else None)
    ctx = RunContext(cfg, work, state, log, strategy, role, data, n, weights, objective,
                     positive_weights(train_targets) if result.multi_label else None, model, base, features,
                     {s: len(records[s]) for s in ("train", "val")})

    if not state.stage1_done:
        t1 = time.perf_counter()
        _stage1(ctx, spec)
        _checkpoint_whole_model(ctx)
        state.stage1_done, state.stage1_epochs, state.wait = True, state.epoch + 1, 0
        state.seconds["stage1"] = state.seconds.get("stage1", 0) + time.perf_counter() - t1
        state.save(work)
        log(f"stage 1 done: {state.stage1_epochs} epochs in {state.seconds['stage1']:.1f} s, "
            f"best val loss {state.best_val_loss:.4f} at epoch {state.best_epoch + 1}")
    if cfg.fine_tune_epochs > 0 and state.epoch + 1 < state.stage1_epochs + cfg.fine_tune_epochs:
        t2 = time.perf_counter()
        _stage2(ctx, spec)
        state.seconds["stage2"] = state.seconds.get("stage2", 0) + time.perf_counter() - t2
        state.save(work)
    if not role.chief:
        return TrainResult(work, worker=role.index)
    return finish(cfg, work, state, model, records, data, classes, log, load_s, len(skipped), ctx.multiworker,
                  result.task)


def _steps(ctx: RunContext) -> int:
    return steps_per_epoch(ctx.sizes["train"], ctx.cfg.batch_size)


def _stage1(ctx: RunContext, spec) -> None:
    """A new head on the frozen base: on backbone features computed once when nothing changes the
    images between epochs, else through the base every epoch (or the whole network, from scratch)."""
    cfg, state = ctx.cfg, ctx.state
    start = state.epoch + 1
    total = cfg.epochs + cfg.fine_tune_epochs
    if not from_scratch(cfg.weights) and cfg.feature_cache and not ctx.multiworker and (not cfg.augment or cfg.augment_views):
        return _stage1_on_features(ctx, spec, start, total)
    if from_scratch(cfg.weights):
        ctx.base.trainable = True  # nothing pretrained to keep: the whole network learns
        state.path_taken = "whole network from scratch (no pretrained weights to freeze)"
    else:
        why = ("several workers" if ctx.multiworker else "feature cache off" if not cfg.feature_cache
               else "augmentation on")
        state.path_taken = f"through the frozen base ({why})"
    ctx.log(f"stage 1: {state.path_taken}, {spec.name} run every epoch")
    trainer = _trainer(ctx)
    ctx.compile(trainer, cfg.lr, _steps(ctx) * cfg.epochs, _steps(ctx) * start)
    ctx.fit(trainer, ctx.inputs("train", first_epoch=start), ctx.inputs("val"), cfg.epochs, start,
            ctx.checkpointer(1, total))


def _stage1_on_features(ctx: RunContext, spec, start: int, total: int) -> None:
    """Stage 1 on cached features: the base runs once over each split, batch by batch, into a
    temporary file; the head trains on batches read back from it."""
    from edgetl.data.cache import temporary_store
    from edgetl.models.backbones import build_head
    from edgetl.training.stages import augmenter

    cfg, state, log = ctx.cfg, ctx.state, ctx.log
    views = cfg.augment_views if cfg.augment else 1
    state.path_taken = (f"cached backbone features of {views} augmented views" if cfg.augment
                        else "cached backbone features (no augmentation)")
    log(f"stage 1: {state.path_taken}: {spec.name} features computed once, the head trained on them")
    t = time.perf_counter()
    dim = int(ctx.features.output_shape[-1])
    augment = augmenter(cfg.seed) if cfg.augment else None
    feats = {}
    for s, n_views in (("train", views), ("val", 1)):
        split = ctx.data[s]
        store = temporary_store(n_views * len(split), (dim,), np.float32, folder=ctx.work)
        for view in range(n_views):
            for i, batch in enumerate(split.store.batches(cfg.batch_size)):
                stop.check()
                x = batch.astype(np.float32)
                if augment is not None and s == "train":
                    x = np.asarray(augment(x, training=True))
                store.write(view * len(split) + i * cfg.batch_size, _features_of(ctx.features, x, cfg.batch_size))
        feats[s] = Split(store, split.labels)
    n_img = views * len(ctx.data["train"]) + len(ctx.data["val"])
    seconds = time.perf_counter() - t
    state.seconds["features"] = seconds
    log(f"features of {n_img} images in {seconds:.1f} s ({n_img / max(seconds, 1e-9):.0f} images/s)")
    with ctx.strategy.scope():
        head = build_head(dim, ctx.num_classes, cfg.dropout, ctx.objective.activation)
        head.get_layer("predictions").set_weights(ctx.model.get_layer("predictions").get_weights())
    ctx.compile(head, cfg.lr, _steps(ctx) * cfg.epochs, _steps(ctx) * start)

    def sync() -> None:
        ctx.model.get_layer("predictions").set_weights(head.get_layer("predictions").get_weights())

    ctx.fit(head, ctx.inputs("train", feats["train"], first_epoch=start, views=views), ctx.inputs("val", feats["val"]),
            cfg.epochs, start, ctx.checkpointer(1, total, sync))
    for split in feats.values():
        split.store.close()


def _checkpoint_whole_model(ctx: RunContext) -> None:
    """Stage 2 changes the base, so from here on a checkpoint holds the whole model: the head-only
    stage-1 checkpoints are written again in full (the model holds the last epoch's weights, and
    its base is still the pretrained one the best head was trained on)."""
    from edgetl.training.stages import load_checkpoint, save_checkpoint

    if not ctx.base_frozen:
        return
    save_checkpoint(ctx.model.weights, RunFolder(ctx.work).checkpoint("last"))
    load_checkpoint(ctx.model, RunFolder(ctx.work).checkpoint("best"))
    save_checkpoint(ctx.model.weights, RunFolder(ctx.work).checkpoint("best"))


def _features_of(extractor, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Backbone features of one batch. A short last batch is padded to the full size: a new batch
    shape costs a new trace of the whole network (0.8 s for MobileNetV2), more than the padding."""
    n = len(x)
    if n < batch_size:
        x = np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), x.dtype)])
    return np.asarray(extractor.predict_on_batch(x))[:n]


def _stage2(ctx: RunContext, spec) -> None:
    """Fine-tune the top of the base, BatchNorm frozen, at a lower learning rate, from the best
    stage-1 weights."""
    from edgetl.models.backbones import freeze_for_fine_tuning
    from edgetl.training.stages import load_checkpoint

    cfg, state = ctx.cfg, ctx.state
    if state.stage == 1:  # start fine-tuning from the best stage-1 weights
        load_checkpoint(ctx.model, RunFolder(ctx.work).checkpoint("best"))
        state.wait = 0
    n_layers = len(ctx.base.layers)
    at = cfg.fine_tune_at if cfg.fine_tune_at is not None else (
        int(round(n_layers * (1 - cfg.unfreeze))) if cfg.unfreeze else spec.fine_tune_at(n_layers))
    if not 0 <= at < n_layers:
        raise EdgetlError(f"--fine-tune-at {at} is outside the {n_layers} layers of {spec.name}")
    with ctx.strategy.scope():
        trainable = freeze_for_fine_tuning(ctx.base, at)
    lr2 = cfg.fine_tune_lr or cfg.lr / 10
    end = state.stage1_epochs + cfg.fine_tune_epochs
    start = state.epoch + 1
    trainer = _trainer(ctx)
    ctx.compile(trainer, lr2, _steps(ctx) * cfg.fine_tune_epochs, _steps(ctx) * (start - state.stage1_epochs))
    ctx.log(f"stage 2: fine-tuning {trainable} layers from layer {at} of {n_layers} at lr {lr2:g}, BatchNorm frozen")
    ctx.fit(trainer, ctx.inputs("train", first_epoch=start), ctx.inputs("val"), end, start, ctx.checkpointer(2, end))


def _trainer(ctx: RunContext):
    """The model to train: the saved model itself, or wrapped in the augmentation layers."""
    from edgetl.training.stages import with_augmentation

    with ctx.strategy.scope():
        return with_augmentation(ctx.model, ctx.cfg.size, ctx.cfg.seed) if ctx.cfg.augment else ctx.model
