"""`edgetl train`: audit -> cached images -> stage 1 -> stage 2 -> run folder."""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from edgetl import runs
from edgetl.data.audit import Audit, AuditOptions, audit
from edgetl.data.cache import open_images
from edgetl.errors import EdgetlError
from edgetl.models.backbones import check_weights
from edgetl.native_logs import quiet_import
from edgetl.runs import RunFolder
from edgetl.runtime.confidence import (Confidence, calibrate, reliability, risk_coverage, threshold_rule,
                                       with_temperature)
from edgetl.runtime.folder_manifest import ArtifactEntry, RunManifest
from edgetl.runtime.labels import write_labels
from edgetl.runtime.manifest import ModelManifest, file_sha256
from edgetl.versions import package_versions
from edgetl.yamlfile import load_yaml
from edgetl.training import stop
from edgetl.training.config import ClassWeight, Strategy, TrainConfig
from edgetl.training.progress import epoch_bar
from edgetl.training.results import BestEpoch, ClassFigures, RunMetrics, TrainResult
from edgetl.training.distribute import DistributedFit, WorkerRole, is_multiworker, make_strategy, shard, worker_role
from edgetl.training.inputs import Split, class_weights, dataset, steps_per_epoch

logger = logging.getLogger(__name__)


class Interrupted(EdgetlError):
    """Ctrl-C or SIGTERM during training (exit 130); the run can be resumed."""

    exit_code = 130


class RunLog:
    """Status lines to the log (INFO) and to RUN/train.log."""

    def __init__(self, path: Path, prefix: str = ""):
        self.file = path.open("a", encoding="utf-8")
        self.prefix = prefix

    def __call__(self, message: str) -> None:
        if message.startswith("warning: "):
            logger.warning("%s%s", self.prefix, message.removeprefix("warning: "))
        else:
            logger.info("%s%s", self.prefix, message)
        if not self.file.closed:
            self.file.write(f"{time.strftime('%H:%M:%S')} {message}\n")
            self.file.flush()

    def close(self) -> None:
        """Stop writing train.log (the folder is about to go)."""
        self.file.close()


def train(config: TrainConfig | None = None, resume: str | Path | None = None, **overrides) -> TrainResult:
    """Train a classifier on ``config.data`` (or continue an interrupted run) and return the run.

    ``edgetl.train(data="photos/", epochs=10)`` works as well as passing a :class:`TrainConfig`.
    Every setting is checked before a run folder is made; a run that fails before its first
    epoch is finished is removed again (there is nothing to resume)."""
    said: list[str] = []
    """Lines said on the console before the run folder existed, for its train.log."""
    if resume is not None:
        source = runs.resume_path(resume)
        cfg = _resumed_config(source, config, overrides)
        role = worker_role(cfg.strategy)
        strategy = _strategy(cfg, role, said)
        work = source if role.chief else _worker_folder(role, source)
        if role.chief:
            cfg.save(RunFolder(work).config)
    else:
        cfg = (config or TrainConfig(**overrides)).validate()
        if not cfg.data:
            raise EdgetlError("no dataset given", fix="edgetl train DATA")
        from edgetl.models.backbones import check_backbone, check_weights_load

        spec = check_backbone(cfg.backbone, cfg.size, cfg.alpha)
        check_weights(cfg.weights)
        check_tensorboard(cfg.tensorboard)
        if cfg.unknown:
            unknown_files(cfg.unknown)  # a wrong folder is said now, not after the training
        role = worker_role(cfg.strategy)
        if cfg.strategy == Strategy.MULTIWORKER and not cfg.out:
            raise EdgetlError("--strategy multiworker needs --out: every worker must name the same run folder",
                              fix="add --out runs/NAME to the command on every worker")
        if role.chief:
            runs.check_new_run(cfg.out)
        if cfg.strategy != Strategy.MULTIWORKER:  # (multi-worker: no TensorFlow before its strategy; checked below)
            check_weights_load(spec, cfg.size, cfg.alpha, cfg.weights)
        # The audit runs before the run folder exists, so bad data leaves nothing behind.
        pre = audit(cfg.data, AuditOptions(val_split=cfg.val_split, seed=cfg.seed, class_depth=cfg.class_depth))
        pre.require_trainable()
        said.append(pre.describe())
        logger.info("%s", said[-1])
        n_train = len(pre.split("train"))
        if cfg.batch_size > n_train:
            # A batch larger than the split only pads: every feature pass and step would compute
            # (and hold in memory) the padding, 7 GB for --batch-size 512 on 30 photos.
            logger.warning(f"--batch-size {cfg.batch_size} is larger than the {n_train} training images; using {n_train}")
            cfg.batch_size = n_train
        strategy = _strategy(cfg, role, said)
        if cfg.strategy == Strategy.MULTIWORKER:
            check_weights_load(spec, cfg.size, cfg.alpha, cfg.weights)
        work = runs.new_run(cfg.project, cfg.name, cfg.out) if role.chief else _worker_folder(role)
        cfg.save(RunFolder(work).config)
        pre.save(RunFolder(work).audit)
    if not role.chief:
        return _train_as_worker(cfg, work, resume is not None, role, runs.final_path(source) if resume else Path(cfg.out),
                                strategy)
    with runs.locked(work, "this training run"):
        log = RunLog(RunFolder(work).log)
        for line in said:  # said on the console already, before the folder existed
            log.file.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        log(f"run folder: {runs.final_path(work)} (in progress at {work})")
        try:
            with stop.on_signals():
                return _train(cfg, work, resume is not None, log, role, strategy)
        except BaseException as e:
            e = _peer_lost(_disk_full(e, work), cfg)
            if not _has_finished_epoch(work):
                log.close()
                shutil.rmtree(work, ignore_errors=True)
                if isinstance(e, DiskFull):
                    raise EdgetlError(f"{e.message}; nothing was kept (no epoch had finished)", path=e.path,
                                      fix="free some space (or choose --out elsewhere) and train again") from None
                if isinstance(e, KeyboardInterrupt):
                    raise Interrupted("training stopped before its first epoch finished; nothing to resume, "
                                      "the run folder was removed") from None
                if isinstance(e, PeerLost):
                    raise EdgetlError(f"{e.message}; nothing to resume (no epoch had finished)",
                                      fix="start every worker again") from None
                raise
            if isinstance(e, KeyboardInterrupt):
                log("interrupted")
                raise Interrupted(f"training stopped; resume with: edgetl train --resume {runs.final_path(work)}") from None
            if isinstance(e, DiskFull):
                raise EdgetlError(e.message, path=e.path, fix=f"free some space, then continue with: edgetl train "
                                                                f"--resume {runs.final_path(work)}") from None
            if isinstance(e, PeerLost):
                raise EdgetlError(e.message, fix=f"start every worker again with: edgetl train --resume "
                                                 f"{runs.final_path(work)}") from None
            if isinstance(e, EdgetlError):
                e.args = (f"{e.args[0]} (the run can be resumed: edgetl train --resume {runs.final_path(work)})",)
            raise


def _worker_folder(role: WorkerRole, source: Path | None = None) -> Path:
    """A worker other than the chief writes its checkpoints and logs to a temporary folder of its
    own (TensorFlow's rule for multi-worker training: only the chief writes the real one); when
    resuming, it starts from a copy of the run's state."""
    from edgetl.training.stages import CHECKPOINTS

    folder = Path(tempfile.mkdtemp(prefix=f"edgetl-worker{role.index}-"))
    if source:
        theirs, mine = RunFolder(source), RunFolder(folder)
        pairs = [(theirs.config, mine.config), (theirs.audit, mine.audit), (theirs.state, mine.state)]
        for a, b in pairs + [(theirs.checkpoint(w), mine.checkpoint(w)) for w in CHECKPOINTS]:
            if a.exists():
                shutil.copy2(a, b)
    return folder


class PeerLost(EdgetlError):
    """Another worker of a multi-worker run stopped answering."""


class DiskFull(EdgetlError):
    """No space left (or over quota) while a run was being written."""


def _disk_full(e: BaseException, work: Path) -> BaseException:
    """A full disk as one line naming where (the file, else the run folder), anything else as it is."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = e.filename or work
        return DiskFull(f"no space left on the disk while writing the run ({e.strerror})", path=where)
    return e


def _peer_lost(e: BaseException, cfg: TrainConfig) -> BaseException:
    """Another worker died: TensorFlow's heartbeat notices within about ten seconds and aborts the
    collective with a page of text; say it in one line (the run stays resumable)."""
    if cfg.strategy == Strategy.MULTIWORKER and type(e).__name__ in ("UnavailableError", "AbortedError"):
        text = str(e)
        which = text.split("stopped sending heartbeats):")[-1].split()[0] \
            if "stopped sending heartbeats" in text else "another worker"
        return PeerLost(f"{which} stopped answering (TensorFlow's heartbeat); training cannot go on without it")
    return e


def _strategy(cfg: TrainConfig, role: WorkerRole, said: list[str]):
    """The tf.distribute strategy, made before the run folder: a worker that waits for the others,
    and gives up or is stopped while waiting, leaves nothing behind. What it says goes to the
    console and into ``said`` (for train.log)."""
    prefix = "" if role.chief else f"{role.name}: "

    def tell(message: str) -> None:
        logger.info("%s%s", prefix, message)
        said.append(message)

    return make_strategy(cfg.strategy, tell, cfg.worker_timeout)


def _train_as_worker(cfg: TrainConfig, work: Path, resuming: bool, role: WorkerRole, run: Path,
                     strategy) -> TrainResult:
    """Train as a non-chief worker: the same steps as the chief, in a temporary folder removed at the end."""
    log = RunLog(RunFolder(work).log, prefix=f"{role.name}: ")
    log(f"{role.name} of {role.count}: the chief writes {run}; this worker's checkpoints go to {work} (removed at the end)")
    try:
        with stop.on_signals():
            _train(cfg, work, resuming, log, role, strategy)
    except KeyboardInterrupt:
        raise Interrupted(f"{role.name} stopped") from None
    except Exception as e:
        lost = _peer_lost(e, cfg)
        if lost is e:
            raise
        raise EdgetlError(lost.message, fix="start every worker again with --resume") from None
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    return TrainResult(run, worker=role.index)


def _has_finished_epoch(work: Path) -> bool:
    return RunFolder(work).checkpoint("last").exists()


# Settings a resumed run may change: they do not alter what was already trained.
RESUMABLE = ("weights", "epochs", "fine_tune_epochs", "patience", "cache", "strategy", "tensorboard", "worker_timeout")


def _resumed_config(work: Path, config: TrainConfig | None, overrides: dict) -> TrainConfig:
    """The run's saved settings, with the few a resume can honour taken from the caller; any
    other setting given is an error rather than silently ignored. Reads only: the chief writes
    the result back to the run folder."""
    try:
        saved = TrainConfig(**load_yaml(RunFolder(work).config))
    except (OSError, yaml.YAMLError, TypeError) as e:
        raise EdgetlError(f"cannot read the run's settings ({type(e).__name__})", path=RunFolder(work).config,
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
    return cfg


def check_tensorboard(wanted: bool) -> None:
    """TensorBoard logs need the tensorboard package (the optional extra), checked up front."""
    import importlib.util

    if wanted and importlib.util.find_spec("tensorboard") is None:
        raise EdgetlError("--tensorboard needs the tensorboard package", fix='pip install "edgetl[tensorboard]"')


@dataclass
class _Context:
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
                                  self.cfg.label_smoothing)
            loop.fit(train_ds, val_ds, epochs, initial_epoch, [callback])
        else:
            steps = self.batches_per_epoch("train") or -(-self.sizes["train"] // self.cfg.batch_size)
            bar = epoch_bar(steps, self.cfg.batch_size)
            trainer.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch,
                        callbacks=[callback, stop.callback(), bar], verbose=0, shuffle=False)  # the dataset shuffles

    def compile(self, trainer, lr: float, steps: int, done_steps: int) -> None:
        import keras

        from edgetl.training.stages import loss_fn, optimizer

        with self.strategy.scope():
            # ROC AUC per epoch, one class against the rest, macro over classes (the labels are
            # one-hot): what the EfficientNet tutorials watch, and the report's figure at the end.
            auc = keras.metrics.AUC(multi_label=True, num_labels=self.num_classes, name="auc")
            trainer.compile(optimizer(lr, self.cfg.schedule, steps, done_steps), loss_fn(self.cfg.label_smoothing),
                            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"), auc])
            # Every variable made now, not in the first training step: a variable made there (the
            # optimizer's slots, a metric named by a string) makes TensorFlow trace the step twice
            # (measured: the first epoch of a 0.35 MobileNetV2 at 32 px, 18.2 s -> 10.3 s).
            trainer.optimizer.build(trainer.trainable_variables)

    @property
    def base_frozen(self) -> bool:
        """Stage 1 on a pretrained base: only the head changes."""
        return not self.state.stage1_done and self.cfg.weights != "none"

    def checkpointer(self, stage: int, total: int, sync=lambda: None):
        from edgetl.training.stages import Checkpointer, trained_variables

        return Checkpointer(self.work, self.state, stage, trained_variables(self.model, self.base_frozen),
                            self.cfg.patience, total, sync=sync, log=self.log,
                            tensorboard=self.cfg.tensorboard and self.role.chief)


def _open_split(records: list, cfg: TrainConfig, quiet: bool = False) -> Split:
    """A split's images decoded at the model's size into the disk cache, and its labels."""
    p = cfg.pixels
    store = open_images([r.path for r in records], p, use_cache=cfg.cache,
                        hashes=[r.sha256 for r in records], quiet=quiet)
    return Split(store, np.array([r.label for r in records], np.int64))


def _train(cfg: TrainConfig, work: Path, resuming: bool, log: RunLog, role: WorkerRole, strategy) -> TrainResult:
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
    data = {s: _open_split(recs, cfg) for s, recs in mine.items()}
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
    with strategy.scope():
        base = build_base(spec, cfg.size, cfg.alpha, cfg.weights)
        model, features = build_classifier(spec, base, cfg.size, n, cfg.dropout)
    base.trainable = False
    if state.epoch >= 0:
        load_checkpoint(model, RunFolder(work).checkpoint("last"))
    train_labels = np.array([r.label for r in records["train"]], np.int64)
    ctx = _Context(cfg, work, state, log, strategy, role, data, n,
                   class_weights(train_labels, n) if cfg.class_weight == ClassWeight.AUTO else None, model, base, features,
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
    return _finish(cfg, work, state, model, records, data, classes, log, load_s, len(skipped), ctx.multiworker)


def _steps(ctx: _Context) -> int:
    return steps_per_epoch(ctx.sizes["train"], ctx.cfg.batch_size)


def _stage1(ctx: _Context, spec) -> None:
    """A new head on the frozen base: on backbone features computed once when nothing changes the
    images between epochs, else through the base every epoch (or the whole network, from scratch)."""
    cfg, state = ctx.cfg, ctx.state
    start = state.epoch + 1
    total = cfg.epochs + cfg.fine_tune_epochs
    if cfg.weights != "none" and cfg.feature_cache and not ctx.multiworker and (not cfg.augment or cfg.augment_views):
        return _stage1_on_features(ctx, spec, start, total)
    if cfg.weights == "none":
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


def _stage1_on_features(ctx: _Context, spec, start: int, total: int) -> None:
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
        head = build_head(dim, ctx.num_classes, cfg.dropout)
        head.get_layer("predictions").set_weights(ctx.model.get_layer("predictions").get_weights())
    ctx.compile(head, cfg.lr, _steps(ctx) * cfg.epochs, _steps(ctx) * start)

    def sync() -> None:
        ctx.model.get_layer("predictions").set_weights(head.get_layer("predictions").get_weights())

    ctx.fit(head, ctx.inputs("train", feats["train"], first_epoch=start, views=views), ctx.inputs("val", feats["val"]),
            cfg.epochs, start, ctx.checkpointer(1, total, sync))
    for split in feats.values():
        split.store.close()


def _checkpoint_whole_model(ctx: _Context) -> None:
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


def _stage2(ctx: _Context, spec) -> None:
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


def _trainer(ctx: _Context):
    """The model to train: the saved model itself, or wrapped in the augmentation layers."""
    from edgetl.training.stages import with_augmentation

    with ctx.strategy.scope():
        return with_augmentation(ctx.model, ctx.cfg.size, ctx.cfg.seed) if ctx.cfg.augment else ctx.model


def _predict(model, batches) -> np.ndarray:
    """Probabilities of a Keras model over float32 batches."""
    return np.concatenate([np.asarray(model.predict_on_batch(b)) for b in batches])


def unknown_files(folder: str | Path) -> list[Path]:
    """The image files of ``train --unknown``: images that are none of the classes."""
    from edgetl.evaluation import image_files

    if not Path(folder).is_dir():
        raise EdgetlError("--unknown needs a folder of images that are none of the classes", path=folder,
                          fix="give a folder (its sub-folders are read too)")
    return image_files([folder])


def _unknown_probs(model, cfg: TrainConfig, log) -> np.ndarray:
    """The model's probabilities on the --unknown images, decoded a batch at a time; a file that
    cannot be read is skipped and counted."""
    from edgetl.image import DecodeError, load

    files, out, bad = unknown_files(cfg.unknown), [], 0
    for start in range(0, len(files), cfg.batch_size):
        batch = []
        for path in files[start:start + cfg.batch_size]:
            try:
                batch.append(load(path, cfg.pixels.height, cfg.pixels.width, cfg.pixels.resize))
            except (DecodeError, EdgetlError, OSError):
                bad += 1
        if batch:
            out.append(np.asarray(model.predict_on_batch(np.stack(batch).astype(np.float32))))
    if bad:
        log(f"--unknown: {bad} of {len(files)} file(s) could not be read as images and were left out")
    if not out:
        raise EdgetlError("none of the --unknown files could be read as an image", path=cfg.unknown,
                          fix="give a folder of jpg, png, bmp, gif or webp files")
    return np.concatenate(out)


def _confidence(cfg: TrainConfig, work: Path, model, probs: np.ndarray, labels: np.ndarray, classes: list[str],
                log) -> tuple[Confidence, dict]:
    """Fit the temperature on the validation split and fold it into ``model``'s last layer (saved
    over model.keras), then choose the "unknown" threshold; returns the manifest's
    :class:`Confidence` and metrics.json's figures (reliability before/after, risk-coverage, AUC)."""
    from edgetl.metrics import roc_auc
    from edgetl.training.plots import plot_reliability

    unknown = _unknown_probs(model, cfg, log) if cfg.unknown else None
    conf, why = calibrate(probs, labels, cfg.min_precision, unknown)
    if conf.temperature != 1.0:
        # softmax(Wx + b) -> softmax((Wx + b) / T): every artifact made from model.keras carries
        # calibrated scores, so MediaPipe and any runtime compare them with the threshold as they are.
        head = model.get_layer("predictions")
        kernel, bias = head.get_weights()
        head.set_weights([kernel / conf.temperature, bias / conf.temperature])
        tmp = RunFolder(work).model.with_suffix(".tmp.keras")
        model.save(tmp)
        os.replace(tmp, RunFolder(work).model)
    after = with_temperature(probs, conf.temperature)
    bins_before, bins_after = reliability(probs, labels), reliability(after, labels)
    plot_reliability(bins_before, bins_after, RunFolder(work).reliability_plot)
    rule = threshold_rule(conf.threshold)
    said = (f"confidence: {why}; calibration error {conf.ece_before:.3f} -> {conf.ece_after:.3f}; {rule}: precision "
            f"{conf.precision:.3f} with {conf.coverage:.1%} of the {conf.images} val images answered")
    if conf.unknown_images:
        said += f", {conf.unknown_rejected:.1%} of the {conf.unknown_images} --unknown images rejected"
    if not conf.reached:
        said += f" (no threshold reaches --min-precision {cfg.min_precision}: this is the most precise one)"
    if not cfg.unknown:
        said += ("; no --unknown images were given, so nothing shows how sure the model is of things that are none "
                 "of the classes (train --unknown DIR chooses the threshold with them)")
    log(said)
    figures = {"manifest": conf.to_dict(), "reliability_before": bins_before,
               "reliability_after": bins_after, "risk_coverage": risk_coverage(after, labels),
               "roc_auc": roc_auc(after, labels, len(classes))}
    return conf, figures


def _features(model, split: Split, batch_size: int):
    """(features, labels) batches of ``split`` through ``model`` (a feature model), as they come."""
    start = 0
    for b in split.store.batches(batch_size):
        yield np.asarray(model.predict_on_batch(b.astype(np.float32))), split.labels[start:start + len(b)]
        start += len(b)


def _unknown_rule(cfg: TrainConfig, work: Path, model, train_records: list, val: Split, val_probs: np.ndarray,
                  conf: Confidence, num_classes: int, log) -> Confidence:
    """Choose the "unknown" rule from the classes' own images (at ``cfg.answer_rate`` of the
    validation split), fold it into model.keras, and return the confidence with it: the score
    threshold raised to the rule's floor, coverage and precision of the folded scores."""
    from dataclasses import replace

    from edgetl.runtime.confidence import choose_threshold
    from edgetl.runtime.unknown_rule import score_floor
    from edgetl.training import unknown_rule

    cut = unknown_rule.feature_model(model)
    per_class: dict[int, int] = {}
    sample = []
    for r in train_records:  # the first PER_CLASS of each class: a mean needs no more
        if per_class.get(r.label, 0) < unknown_rule.PER_CLASS:
            per_class[r.label] = per_class.get(r.label, 0) + 1
            sample.append(r)
    means, counts = unknown_rule.class_means(_features(cut, _open_split(sample, cfg, quiet=True), cfg.batch_size),
                                             num_classes)
    val_features = np.concatenate([f for f, _ in _features(cut, val, cfg.batch_size)])
    choice = unknown_rule.choose(val_features, val.labels, val_probs, means, counts, cfg.answer_rate)
    log(f"unknown rule: {choice.why}")
    if choice.rule is None:
        return conf
    folded = unknown_rule.with_rule(model, choice.means, choice.rule)
    tmp = RunFolder(work).model.with_suffix(".tmp.keras")
    folded.save(tmp)
    os.replace(tmp, RunFolder(work).model)
    g = unknown_rule.gate(unknown_rule.nearest_similarity(val_features, choice.means), choice.rule.threshold)
    scores = val_probs * g[:, None]
    softmax_t, rejected = conf.threshold, conf.unknown_rejected
    if cfg.unknown:  # both rules against the --unknown images: the softmax threshold chosen on the folded scores
        unknown_scores = _unknown_probs(folded, cfg, log)
        softmax_t, _, _, reached, rejected = choose_threshold(scores, val.labels, cfg.min_precision, unknown_scores)
        conf = replace(conf, reached=reached)
    threshold = max(softmax_t, score_floor(num_classes))
    answered = scores.max(1) >= threshold
    right = scores.argmax(1) == val.labels
    if cfg.unknown:
        rejected = float((unknown_scores.max(1) < threshold).mean())
    conf = replace(conf, threshold=threshold, softmax_threshold=softmax_t if softmax_t != threshold else None,
                   coverage=float(answered.mean()), precision=float(right[answered].mean()) if answered.any() else 1.0,
                   unknown_rejected=rejected, feature_rule=choice.rule)
    log(f"with both rules: answers under {threshold:.3f} are \"unknown\": {conf.coverage:.1%} of the "
        f"{len(val.labels)} val images answered, precision {conf.precision:.3f}"
        + (f", {rejected:.1%} of the --unknown images rejected" if cfg.unknown else ""))
    return conf


def _finish(cfg, work, state, model, records: dict, data: dict, classes, log, load_s, skipped: int,
            multiworker: bool) -> TrainResult:
    """Write the run folder: the best model, its held-out figures, plots, manifest and metrics."""
    import keras

    from edgetl.metrics import plot_confusion, report
    from edgetl.training.plots import plot_history
    from edgetl.training.stages import CHECKPOINTS, load_checkpoint

    load_checkpoint(model, RunFolder(work).checkpoint("best"))
    best = next(h for h in state.history if h["epoch"] == state.best_epoch)
    log(f"best epoch {state.best_epoch + 1} (stage {best['stage']}): val_loss {best['val_loss']:.4f} "
        f"val_acc {best['val_accuracy']:.4f}")
    tmp = RunFolder(work).model.with_suffix(".tmp.keras")
    model.save(tmp)
    os.replace(tmp, RunFolder(work).model)
    # The saved model, loaded outside any distribution strategy: a model built under a multi-worker
    # strategy would wait for the other workers' collectives when predicting, and one built under
    # MirroredStrategy returns every replica's copy of a batch from predict_on_batch.
    plain = keras.saving.load_model(str(RunFolder(work).model), compile=False)
    probs, labels, opened = {}, {}, {}
    for split in [s for s in ("val", "test") if s in records]:
        # A worker's data is its shard; the figures are for the whole split.
        whole = opened[split] = (data[split] if split in data and not multiworker
                                 else _open_split(records[split], cfg, quiet=True))
        # Batches of the training batch size: a batch's activations are most of the memory at 224
        # (about 0.5 GB for 32 images through MobileNetV2), and the user sized it to fit.
        probs[split] = _predict(plain, (b.astype(np.float32) for b in whole.store.batches(cfg.batch_size)))
        labels[split] = whole.labels
    conf, calibration = _confidence(cfg, work, plain, probs["val"], labels["val"], classes, log)
    conf = _unknown_rule(cfg, work, plain, records["train"], opened["val"],
                         with_temperature(probs["val"], conf.temperature), conf, len(classes), log)
    calibration["manifest"] = conf.to_dict()
    evals, predictions = {}, {}
    for split, p_split in probs.items():
        p_split = with_temperature(p_split, conf.temperature).astype(np.float32)
        y = labels[split]
        evals[split] = report(y, p_split.argmax(1), classes)
        predictions[split] = [{"path": r.path, "true": int(t), "pred": int(p.argmax()), "score": float(p.max()),
                               "true_score": float(p[t])} for r, t, p in zip(records[split], y, p_split)]
    plot_confusion(evals["val"], str(RunFolder(work).confusion_plot), title="val")
    stage2_start = next((h["epoch"] for h in state.history if h["stage"] == 2), None)
    plot_history(state.history, RunFolder(work).history_plot, stage2_start)
    RunFolder(work).history.write_text(json.dumps(state.history, indent=1))
    # Per held-out image: what the report shows as mistakes, without running the model again.
    RunFolder(work).predictions.write_text(json.dumps(predictions))
    contract = ModelManifest(classes, cfg.pixels, "keras", "fp32", backbone=cfg.backbone,
                             split={"val_split": cfg.val_split, "seed": cfg.seed},
                             versions=package_versions(("tensorflow", "tensorflow-cpu", "keras")),
                             sha256=file_sha256(RunFolder(work).model), confidence=conf)
    # The run's own fields (what export reads), and model.keras's manifest as its one artifact.
    RunFolder(work).write_manifest(RunManifest(
        contract.labels, contract.input, contract.backbone, contract.split, contract.versions, contract.confidence,
        cfg.alpha, [ArtifactEntry(RunFolder.model.name, contract)]))
    s1 = [h for h in state.history if h["stage"] == 1]
    s2 = [h for h in state.history if h["stage"] == 2]
    metrics = RunMetrics(
        val_accuracy=evals["val"].accuracy,
        best=BestEpoch(state.best_epoch + 1, best["stage"], best["val_loss"], best["val_accuracy"]),
        # Epochs are counted from 1 here, as in the log (history.json keeps Keras's 0-based index).
        final_epoch={k: state.history[-1][k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
        | {"epoch": state.history[-1]["epoch"] + 1},
        per_class={c.label: ClassFigures(c.precision, c.recall, c.support) for c in evals["val"].per_class},
        confusion=evals["val"].confusion,
        test_accuracy=evals["test"].accuracy if "test" in evals else None,
        epochs={"stage1": len(s1), "stage2": len(s2)},
        seconds={"load": load_s, **state.seconds},
        images_per_s={f"stage{i}": len(h) * len(records["train"]) / state.seconds[f"stage{i}"] if h else None
                      for i, h in ((1, s1), (2, s2))},
        stage1_path=state.path_taken,
        images={s: len(v) for s, v in records.items()},
        skipped_files=skipped,
        confidence=calibration,
    )
    RunFolder(work).metrics.write_text(json.dumps(metrics.to_dict(), indent=1))
    for which in CHECKPOINTS:  # model.keras holds the best weights now
        RunFolder(work).checkpoint(which).unlink(missing_ok=True)
    final = runs.finish(work)
    from edgetl.report import refresh

    page = refresh(final)
    log(f"val accuracy {metrics.val_accuracy:.4f}; run saved to {final}" + (f"; report: {page}" if page else ""))
    return TrainResult(final, metrics)
