"""A progress bar within each training epoch, on a terminal: step, images/s and time left. A first
epoch through a frozen base can take minutes; without it the console said nothing in between.
When stderr is not a terminal (a log file, CI) nothing is drawn: the run log's line per epoch is
the record there."""
from __future__ import annotations

import time

from edgetl.console import err


def epoch_bar(steps: int, images_per_step: int):
    """A Keras callback drawing the bar (Keras imported only when training)."""
    import keras
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    class EpochBar(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.progress = None

        def on_epoch_begin(self, epoch, logs=None):
            if not err.is_terminal:
                return
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=err,
                                     transient=True)
            self.progress.start()
            self.task = self.progress.add_task(f"epoch {epoch + 1}", total=steps, rate="")
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if self.progress is None:
                return
            rate = (batch + 1) * images_per_step / max(time.perf_counter() - self.start, 1e-9)
            self.progress.update(self.task, completed=batch + 1, rate=f"{rate:.0f} images/s")

        def on_epoch_end(self, epoch, logs=None):
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

        def on_train_end(self, logs=None):
            self.on_epoch_end(0)

    return EpochBar()
