"""`edgetl train`: check the settings, make the run folder, run the stages, say what went wrong.

The jobs are in modules of their own: :mod:`cluster` (who this process is among several),
:mod:`resume` (the settings of an interrupted run), :mod:`loop` (audit -> cached images -> stage 1
-> stage 2), :mod:`answer_rules` (calibration and the "unknown" rule), :mod:`folder` (writing the run)."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from edgetl import runs
from edgetl.data.audit import AuditOptions, audit
from edgetl.errors import EdgetlError
from edgetl.models.backbones import check_weights
from edgetl.runs import RunFolder
from edgetl.training import stop
from edgetl.training.config import Strategy, TrainConfig
from edgetl.training.results import TrainResult
from edgetl.training.distribute import worker_role
from edgetl.training.runlog import RunLog
from edgetl.training.failures import DiskFull, Interrupted, PeerLost, disk_full, has_finished_epoch, peer_lost
from edgetl.training.checks import check_tensorboard, unknown_files
from edgetl.training.cluster import make_run_strategy, train_as_worker, worker_folder
from edgetl.training.resume import resumed_config
from edgetl.training.loop import run_stages
from edgetl.training.warm_start import apply_model_shape, check_classes, read_warm_start
from edgetl.training.warm_start import describe as describe_warm_start

logger = logging.getLogger(__name__)


def train(config: TrainConfig | None = None, resume: str | Path | None = None, **overrides) -> TrainResult:
    """Train a classifier on ``config.data`` (or continue an interrupted run) and return the run.

    ``edgetl.train(data="photos/", epochs=10)`` works as well as passing a :class:`TrainConfig`.
    Every setting is checked before a run folder is made; a run that fails before its first
    epoch is finished is removed again (there is nothing to resume)."""
    said: list[str] = []
    """Lines said on the console before the run folder existed, for its train.log."""
    if resume is not None:
        source = runs.resume_path(resume)
        cfg = resumed_config(source, config, overrides)
        role = worker_role(cfg.strategy)
        strategy = make_run_strategy(cfg, role, said)
        work = source if role.chief else worker_folder(role, source)
        if role.chief:
            cfg.save(RunFolder(work).config)
    else:
        cfg = (config or TrainConfig(**overrides)).validate()
        warm = read_warm_start(cfg.from_run) if cfg.from_run else None
        if not cfg.data and warm:
            cfg.data = warm.config.data  # the same dataset, now with the labelled frames
        if not cfg.data:
            raise EdgetlError("no dataset given", fix="edgetl train DATA")
        from edgetl.models.backbones import check_backbone, check_weights_load

        taken = apply_model_shape(cfg, warm) if warm else []
        spec = check_backbone(cfg.backbone, cfg.size, cfg.alpha)
        if not warm:  # a warm start's weights are all in RUN's model
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
        if cfg.strategy != Strategy.MULTIWORKER and not warm:  # (multi-worker: no TensorFlow before its strategy)
            check_weights_load(spec, cfg.size, cfg.alpha, cfg.weights)
        # The audit runs before the run folder exists, so bad data leaves nothing behind.
        pre = audit(cfg.data, AuditOptions(val_split=cfg.val_split, seed=cfg.seed, class_depth=cfg.class_depth,
                                           keep_splits=warm.splits if warm else None))
        pre.require_trainable()
        if cfg.multi_label:
            pre = pre.as_multi_label()
        if warm:
            said.append(describe_warm_start(warm, pre, taken, check_classes(warm, pre.classes, cfg.data)))
            logger.info("%s", said[-1])
        said.append(pre.describe())
        logger.info("%s", said[-1])
        n_train = len(pre.split("train"))
        if cfg.batch_size > n_train:
            # A batch larger than the split only pads: every feature pass and step would compute
            # (and hold in memory) the padding, 7 GB for --batch-size 512 on 30 photos.
            logger.warning(f"--batch-size {cfg.batch_size} is larger than the {n_train} training images; using {n_train}")
            cfg.batch_size = n_train
        strategy = make_run_strategy(cfg, role, said)
        if cfg.strategy == Strategy.MULTIWORKER and not warm:
            check_weights_load(spec, cfg.size, cfg.alpha, cfg.weights)
        work = runs.new_run(cfg.project, cfg.name, cfg.out) if role.chief else worker_folder(role)
        cfg.save(RunFolder(work).config)
        pre.save(RunFolder(work).audit)
    if not role.chief:
        return train_as_worker(cfg, work, resume is not None, role, runs.final_path(source) if resume else Path(cfg.out),
                                strategy)
    with runs.locked(work, "this training run"):
        log = RunLog(RunFolder(work).log)
        for line in said:  # said on the console already, before the folder existed
            log.file.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        log(f"run folder: {runs.final_path(work)} (in progress at {work})")
        try:
            with stop.on_signals():
                return run_stages(cfg, work, resume is not None, log, role, strategy)
        except BaseException as e:
            e = peer_lost(disk_full(e, work), cfg)
            if not has_finished_epoch(work):
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
