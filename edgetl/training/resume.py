"""Continuing an interrupted run: its saved settings, with what may change on resume."""
from __future__ import annotations

from pathlib import Path

import yaml

from edgetl import runs
from edgetl.errors import EdgetlError
from edgetl.models.backbones import check_weights
from edgetl.runs import RunFolder
from edgetl.yamlfile import load_yaml
from edgetl.training.config import TrainConfig
from edgetl.training.failures import has_finished_epoch
from edgetl.training.checks import check_tensorboard


# Settings a resumed run may change: they do not alter what was already trained.
RESUMABLE = ("weights", "epochs", "fine_tune_epochs", "patience", "cache", "strategy", "tensorboard", "worker_timeout")


def resumed_config(work: Path, config: TrainConfig | None, overrides: dict) -> TrainConfig:
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
    if "weights" in changed and has_finished_epoch(work):
        changed.pop("weights")  # trained weights are in the checkpoint; the backbone file no longer matters
    cfg = TrainConfig(**(saved.to_dict() | changed)).validate()
    check_weights(cfg.weights)
    check_tensorboard(cfg.tensorboard)
    return cfg
