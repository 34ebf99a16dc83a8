"""A progress bar within each training epoch: step, images/s and time left. A first epoch through
a frozen base can take minutes; without it the console said nothing in between. Drawn by whatever
:mod:`edgetl.progress` has installed (the `edgetl` command: a rich bar on a terminal; through the
API: nothing); the run log's line per epoch is the record."""
from __future__ import annotations

import time

from edgetl import progress


def epoch_bar(steps: int, images_per_step: int):
    """A Keras callback advancing one bar per epoch (Keras imported only when training)."""
    import keras

    class EpochBar(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.bar: progress.Bar | None = None

        def on_epoch_begin(self, epoch, logs=None):
            self.bar = progress.bar(f"epoch {epoch + 1}", steps)
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if self.bar is None:
                return
            rate = (batch + 1) * images_per_step / max(time.perf_counter() - self.start, 1e-9)
            self.bar.update(batch + 1, f"{rate:.0f} images/s")

        def on_epoch_end(self, epoch, logs=None):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

        def on_train_end(self, logs=None):
            self.on_epoch_end(0)

    return EpochBar()
