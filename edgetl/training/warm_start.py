"""`edgetl train DATA --from RUN`: start from RUN's model instead of ImageNet's, keep RUN's split.

What comes from RUN: the model's shape (backbone, width, size, resize: a different one is
refused, since its weights would not fit), every weight (the head's rows by class name, a new
class's rows start from zero), and the split of every image RUN saw, matched by content (a frame
moved or renamed keeps its split). New images are split by the seed rule among themselves, so
RUN's validation images stay validation and the two runs can be compared on the same images
(:mod:`edgetl.comparison`). A class RUN had and DATA lacks is refused: the new model would
silently stop answering it."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgetl import runs
from edgetl.data.audit import Audit
from edgetl.errors import EdgetlError
from edgetl.runs import RunFolder
from edgetl.runtime.labels import read_labels
from edgetl.text import clean
from edgetl.training.config import TrainConfig
from edgetl.yamlfile import load_yaml

logger = logging.getLogger(__name__)

MODEL_SHAPE = ("backbone", "alpha", "size", "resize")
"""Settings the warm start takes from RUN: its weights fit only this shape."""
WARM_EPOCHS = {"epochs": 6, "fine_tune_epochs": 5}
"""A warm start's defaults for the two stages (a fresh run's are 15 and 10)."""


@dataclass
class WarmStart:
    """What a new run takes from an earlier one."""

    run: Path
    config: TrainConfig
    classes: list[str]
    splits: dict[str, str] = field(repr=False, default_factory=dict)
    """sha256 of each image RUN trained or validated on -> its split."""

    @property
    def model(self) -> Path:
        return RunFolder(self.run).model


def read_warm_start(run: str | Path) -> WarmStart:
    """RUN's settings, classes and split, read without TensorFlow; one error naming what is
    missing when RUN is not a finished run."""
    folder = runs.check_run_folder(run)
    saved = _settings(folder)
    try:
        audit = Audit.load_file(folder.audit)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise EdgetlError(f"cannot read the run's split ({type(e).__name__})", path=folder.audit,
                          fix="give a run folder `edgetl train` finished") from None
    if not folder.model.exists():
        raise EdgetlError("the run has no model.keras", path=folder.path, fix="give a finished run folder")
    splits = {r.sha256: r.split for r in audit.records if r.sha256}
    return WarmStart(folder.path, saved, read_labels(folder.labels), splits)


def _settings(folder: RunFolder) -> TrainConfig:
    """RUN's config.yaml, typed."""
    try:
        return TrainConfig(**(load_yaml(folder.config) or {}))
    except (OSError, ValueError, TypeError, yaml.YAMLError) as e:
        raise EdgetlError(f"cannot read the run's settings ({type(e).__name__})", path=folder.config,
                          fix="give a run folder `edgetl train` finished") from None


def data_of(run: str | Path) -> str:
    """The dataset RUN was trained on (``train --from RUN`` without DATA trains on it again);
    its settings alone are read."""
    return _settings(runs.check_run_folder(run)).data


def apply_model_shape(cfg: TrainConfig, ws: WarmStart) -> list[str]:
    """Take RUN's backbone, width, size and resize where ``cfg`` has the defaults; refuse a
    different one given on purpose. Returns what was taken, for the first line."""
    default = TrainConfig()
    taken = []
    for key in MODEL_SHAPE:
        mine, theirs = getattr(cfg, key), getattr(ws.config, key)
        if mine == theirs:
            continue
        if mine != getattr(default, key):
            raise EdgetlError(f"--from keeps the run's model: its {key} is {theirs}, not {mine}", path=ws.run,
                              fix=f"leave out --{key.replace('_', '-')}, or train without --from")
        setattr(cfg, key, theirs)
        taken.append(f"{key} {theirs}")
    if cfg.weights == default.weights and ws.config.weights != cfg.weights:
        cfg.weights = ws.config.weights  # says whether stage 1 freezes a pretrained base, as RUN did
    # The head and the base start trained: a warm start needs fewer epochs than a fresh run
    # (measured on hymenoptera: see README, "The field loop"); given ones are kept.
    for key, fewer in WARM_EPOCHS.items():
        if getattr(cfg, key) == getattr(default, key):
            setattr(cfg, key, fewer)
            taken.append(f"{key.replace('_', ' ')} {fewer}")
    return taken


def check_classes(ws: WarmStart, classes: list[str], root: str) -> list[str]:
    """DATA's classes against RUN's: every class of RUN must still be there; returns the new ones."""
    gone = [c for c in ws.classes if c not in classes]
    if gone:
        raise EdgetlError(f"class {clean(gone[0])!r} of the run is not in the data"
                          + (f" (nor {len(gone) - 1} more)" if len(gone) > 1 else "")
                          + ": a warm start keeps every class", path=root,
                          fix="put that class's images back, or train without --from to drop it")
    return [c for c in classes if c not in ws.classes]


def describe(ws: WarmStart, audit: Audit, taken: list[str], new_classes: list[str]) -> str:
    """The first line of a warm-started run: what came from RUN and what is new."""
    kept = {"train": 0, "val": 0}
    new = {"train": 0, "val": 0}
    for r in audit.records:
        if r.split not in kept:
            continue
        (kept if ws.splits.get(r.sha256) == r.split else new)[r.split] += 1
    moved = sum(1 for r in audit.records if r.sha256 in ws.splits and ws.splits[r.sha256] != r.split)
    return (f"warm start from {ws.run.name}: its model ({ws.config.backbone} {ws.config.alpha:g} at {ws.config.size} px"
            + (f"; {', '.join(taken)}" if taken else "") + f"), {len(ws.classes)} classes"
            + (f" + new {', '.join(repr(clean(c)) for c in new_classes)}" if new_classes else "")
            + f"; {kept['train']} train and {kept['val']} val images keep their split, new: {new['train']} train, "
              f"{new['val']} val" + (f"; {moved} image(s) the data's own split folders moved to another split" if moved else ""))


def load_into(model, ws: WarmStart, classes: list[str]) -> None:
    """Copy RUN's weights into ``model`` (built for ``classes``): every layer of the same name and
    shapes, and the head's rows by class name (a new class's rows start at zero)."""
    from edgetl.native_logs import quiet_import

    keras = quiet_import("keras")
    old = keras.saving.load_model(str(ws.model), compile=False)
    for layer in model.layers:
        if not layer.weights or layer.name == "predictions":
            continue
        try:
            source = old.get_layer(layer.name)
        except ValueError:
            raise EdgetlError(f"the run's model has no layer {clean(layer.name)}: it is not the model this run builds",
                              path=ws.model, fix="train without --from") from None
        theirs = source.get_weights()
        if [w.shape for w in theirs] != [tuple(w.shape) for w in layer.weights]:
            raise EdgetlError(f"the run's layer {clean(layer.name)} does not fit", path=ws.model, fix="train without --from")
        layer.set_weights(theirs)
    kernel, bias = old.get_layer("predictions").get_weights()
    new_kernel, new_bias = (w.numpy() * 0 for w in model.get_layer("predictions").weights)
    for j, c in enumerate(classes):
        if c in ws.classes:
            i = ws.classes.index(c)
            new_kernel[:, j], new_bias[j] = kernel[:, i], bias[i]
    model.get_layer("predictions").set_weights([new_kernel, new_bias])
    logger.debug("warm start: %d layers from %s", len(model.layers), ws.model)
