"""The two stages of transfer learning and the callback that makes them resumable.

Stage 1 trains a new head on a frozen base: on backbone features computed once when there is no
augmentation, through the base otherwise. Stage 2 unfreezes the top of the base (BatchNorm kept
frozen) at a lower learning rate, continuing the epoch count. Across both stages the weights with
the lowest validation loss are kept and restored at the end."""
from __future__ import annotations

import json
import logging
import math
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from edgetl.atomic import replacing, write_atomic
from edgetl.errors import EdgetlError
from edgetl.runs import RunFolder
from edgetl.text import clean
from edgetl.training.results import Epoch

logger = logging.getLogger(__name__)


@dataclass
class RunState:
    """What a resumed run needs: where each stage is, the best epoch so far, the history."""

    stage: int = 1
    epoch: int = -1
    """Last completed epoch (global count across stages)."""
    stage1_done: bool = False
    stage1_epochs: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = -1
    wait: int = 0
    history: list[Epoch] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    path_taken: str = ""

    def save(self, work: Path) -> None:
        """Write state.json atomically."""
        state = asdict(self) | {"history": [e.to_dict() for e in self.history]}
        write_atomic(RunFolder(work).state, json.dumps(state, indent=1), leftover_ok=True)

    @classmethod
    def load(cls, work: Path) -> "RunState":
        """Read state.json, or a fresh state."""
        f = RunFolder(work).state
        if not f.exists():
            return cls()
        try:
            saved = json.loads(f.read_text(encoding="utf-8"))
            return cls(**saved | {"history": [Epoch.from_dict(e) for e in saved.get("history", [])]})
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise EdgetlError(f"the run's state is damaged ({type(e).__name__})", path=f,
                              fix="this run cannot be resumed: start a new run (or restore the file from a backup)") from None


CHECKPOINTS = ("last", "best")
"""The weights a run keeps while it trains (:meth:`edgetl.runs.RunFolder.checkpoint`), gone when it completes."""


def save_checkpoint(variables: list, path: Path) -> None:
    """The variables' values by their path in the model, written under a temporary name then renamed.

    A plain .npz rather than Keras's .weights.h5: it saves in a quarter of the time, and while the
    base is frozen only the head's variables are written (a few KB instead of the whole network),
    which is what makes a checkpoint per epoch cheap next to an epoch on cached features."""
    with replacing(path) as tmp, tmp.open("wb") as f:
        np.savez(f, **{v.path: np.asarray(v.numpy()) for v in variables})


def load_checkpoint(model: keras.Model, path: Path) -> None:
    """Assign a checkpoint's values to the model's variables of the same path (the others keep
    theirs), or say which file is damaged or does not fit (a crash or a full disk during a save)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            values = {name: saved[name] for name in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise EdgetlError(f"the checkpoint cannot be read ({type(e).__name__})", path=path,
                          fix="this run cannot be resumed from it: start a new run") from None
    variables = {v.path: v for v in model.weights}
    misfits = [name for name, value in values.items()
               if name not in variables or tuple(variables[name].shape) != value.shape]
    if misfits:
        raise EdgetlError(f"the checkpoint does not fit this model ({clean(misfits[0])} and {len(misfits) - 1} more)",
                          path=path, fix="this run cannot be resumed from it: start a new run")
    for name, value in values.items():
        variables[name].assign(value)


def trained_variables(model: keras.Model, base_frozen: bool) -> list:
    """What a checkpoint must hold: the head alone while the pretrained base is frozen (it is
    rebuilt from the same backbone weights on resume), else every variable of the model."""
    return list(model.get_layer("predictions").weights) if base_frozen else list(model.weights)


class Checkpointer(keras.callbacks.Callback):
    """After every epoch: record history, keep the best (lowest val loss) weights, save the last
    weights and the state, and stop the stage after ``patience`` epochs without progress."""

    def __init__(self, work: Path, state: RunState, stage: int, variables: list, patience: int,
                 total_epochs: int, sync: Callable[[], None] = lambda: None, log: Callable[[str], None] = logger.info,
                 tensorboard: bool = False):
        super().__init__()
        self.work, self.state, self.stage, self.variables = work, state, stage, variables
        self.patience, self.total, self.sync, self.log = patience, total_epochs, sync, log
        self._t0 = 0.0
        # One TensorBoard run per stage (RUN/tensorboard/stage1, stage2), on the global epoch axis.
        self.writer = tf.summary.create_file_writer(str(RunFolder(work).tensorboard / f"stage{stage}")) if tensorboard else None

    def _scalars(self, epoch: int, values: dict[str, float]) -> None:
        lr = getattr(self.model.optimizer, "learning_rate", None)
        with self.writer.as_default(step=epoch + 1):
            for name, value in values.items():
                tf.summary.scalar(name, value)
            if lr is not None:
                tf.summary.scalar("learning_rate", float(np.asarray(lr)))
        self.writer.flush()

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        s = self.state
        self.sync()
        entry = Epoch(self.stage, epoch, time.perf_counter() - self._t0, logs["loss"], logs["accuracy"],
                      logs["val_loss"], logs["val_accuracy"], logs.get("val_auc"))
        s.history.append(entry)
        if self.writer is not None:
            self._scalars(epoch, {k: entry.figure(k) for k in Epoch.FIGURES if entry.figure(k) is not None})
        better = logs["val_loss"] < s.best_val_loss - 1e-4
        if better:
            s.best_val_loss, s.best_epoch, s.wait = logs["val_loss"], epoch, 0
            save_checkpoint(self.variables, RunFolder(self.work).checkpoint("best"))
        else:
            s.wait += 1
        save_checkpoint(self.variables, RunFolder(self.work).checkpoint("last"))
        s.stage, s.epoch = self.stage, epoch
        s.save(self.work)
        self.log(f"stage {self.stage} epoch {epoch + 1}/{self.total}: loss {logs['loss']:.4f} "
                 f"acc {logs['accuracy']:.4f} val_loss {logs['val_loss']:.4f} val_acc {logs['val_accuracy']:.4f} "
                 + (f"val_auc {logs['val_auc']:.4f} " if "val_auc" in logs else "")
                 + f"({entry.seconds:.1f} s){' *best*' if better else ''}")
        if s.wait >= self.patience:
            self.log(f"stage {self.stage}: no better val loss for {self.patience} epochs, stopping the stage")
            self.model.stop_training = True


def optimizer(lr: float, schedule: str, steps: int, done_steps: int = 0) -> keras.optimizers.Optimizer:
    """Adam with a cosine or constant learning rate over ``steps`` optimizer steps."""
    rate = keras.optimizers.schedules.CosineDecay(lr, max(steps, 1), alpha=0.01) if schedule == "cosine" else lr
    opt = keras.optimizers.Adam(rate)
    if done_steps:
        opt.iterations.assign(done_steps)
    return opt


def augmenter(seed: int) -> keras.Sequential:
    """Random flip, rotation, zoom and contrast: active only when called with training=True."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.1, seed=seed + 1),
        keras.layers.RandomZoom(0.15, seed=seed + 2),
        keras.layers.RandomContrast(0.1, seed=seed + 3),
    ], name="augment")


def with_augmentation(model: keras.Model, size: int, seed: int) -> keras.Model:
    """A training wrapper that augments its input before ``model`` (which is what gets saved)."""
    inp = keras.Input((size, size, 3), dtype="float32")
    return keras.Model(inp, model(augmenter(seed)(inp)))
