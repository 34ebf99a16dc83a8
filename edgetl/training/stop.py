"""Stopping a training run cleanly on Ctrl-C or SIGTERM.

Training input comes from a Python generator that tf.data runs inside TensorFlow's own calls, on
whichever thread runs them; a KeyboardInterrupt raised there by Python's default handler is turned
into an input error and lost, and training carries on. So while training runs, the signals only
set a flag, and edgetl raises KeyboardInterrupt itself between steps, on the main thread, where the
run folder is left resumable. A second Ctrl-C interrupts at once."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_requested = threading.Event()


def check() -> None:
    """Raise KeyboardInterrupt when a stop was requested (call between steps)."""
    if _requested.is_set():
        raise KeyboardInterrupt


def _handler(signum, frame) -> None:
    if _requested.is_set():
        raise KeyboardInterrupt  # asked twice: stop wherever it is
    _requested.set()


@contextlib.contextmanager
def on_signals() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM request a stop instead of interrupting wherever
    the main thread is (only from the main thread: elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    saved = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
        _requested.clear()


def callback():
    """A Keras callback that raises KeyboardInterrupt between steps of ``fit`` once a stop was
    requested (Keras imported only when training)."""
    import keras

    class StopWhenAsked(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            check()

        def on_test_batch_end(self, batch, logs=None):
            check()

    return StopWhenAsked()
