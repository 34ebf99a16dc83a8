"""The SavedModel, the fp16 model and TensorFlow's int8 calibration in a process of their own,
beside the export.

The calibrator runs every calibration image through the float model on one core: 18.6 s of a
hymenoptera export's 56 (245 images), its largest single stage; in a thread it would share
Python's lock with the export's own work (a pure-Python loop beside it ran at about half speed).
When a core is idle as export starts, export starts a child process before it imports
TensorFlow itself. The child loads model.keras and writes the SavedModel every TFLite conversion
starts from (about 5 s of tracing, done while the export computes its Keras reference), then
makes what it was asked for, in order: the fp16 model (converted while the export converts fp32),
then the calibrated model (while the export makes the dynamic and ONNX models). The export takes
each when it needs it. The child runs the same code on the same model file and images, so what
it makes is what the export would have made itself, byte for byte (a test holds this); if the
child fails, the export makes what it had not made.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.atomic import replacing
from edgetl.registry import Registry

SAVED_MODEL, IMAGES, LOG = "saved_model", "calibration.npy", "background.log"
"""What the child reads and writes in the export's private folder (and a ``PRODUCT.tflite`` each)."""

POLL_S = 0.05

PARENT = "EDGETL_EXPORT_PID"
"""The export's process id, for the child to end with it."""


def _fp16(saved_model: Path, calib: np.ndarray) -> tuple[bytes, str]:
    from edgetl.exporting.tflite import fp16

    start = time.perf_counter()
    return fp16(saved_model), f"converted in {time.perf_counter() - start:.1f} s"


def _calibrated(saved_model: Path, calib: np.ndarray) -> tuple[bytes, str]:
    from edgetl.exporting.tflite import calibrated

    start = time.perf_counter()
    return calibrated(saved_model, calib), f"calibrated on {len(calib)} images in {time.perf_counter() - start:.1f} s"


PRODUCTS: Registry[Callable[[Path, np.ndarray], tuple[bytes, str]]] = Registry(
    "background product", [("fp16", _fp16), ("calibrated", _calibrated)])
"""What the child can make from the SavedModel, by name: the model and how it went."""


@dataclass
class Background:
    """A child process writing the SavedModel, then each of ``products``; the folder it writes into."""

    process: subprocess.Popen
    scratch: Path
    products: tuple[str, ...]

    @classmethod
    def start(cls, model_file: Path, calib: np.ndarray, scratch: Path, products: tuple[str, ...]) -> "Background":
        """Start the child on ``model_file`` (a Keras model) and ``calib`` (RGB uint8 at the
        model's size); its files go to ``scratch``, a folder private to this export."""
        np.save(scratch / IMAGES, calib)
        # TFLite converts on the CPU: the child must not take a GPU's memory from the export.
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", **{PARENT: str(os.getpid())})
        with (scratch / LOG).open("wb") as sink:
            process = subprocess.Popen([sys.executable, "-m", __name__, str(model_file), str(scratch), *products],
                                       stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env)
        return cls(process, scratch, products)

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_for(self, path: Path) -> bool:
        while not path.exists() and self.process.poll() is None:
            time.sleep(POLL_S)
        return path.exists()

    def saved_model(self) -> Path | None:
        """The SavedModel, once the child has written it (waits); None if the child ended without."""
        folder = self.scratch / SAVED_MODEL
        return folder if self._wait_for(folder) else None

    def take(self, product: str) -> tuple[bytes | None, str]:
        """One of :attr:`products`, once the child has made it (waits), and what the child said of
        it (how long it took); None and the child's last line (what went wrong) if it ended without."""
        model = self.scratch / f"{product}.tflite"
        if self._wait_for(model):
            return model.read_bytes(), model.with_suffix(".said").read_text()
        log = self.scratch / LOG
        lines = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
        return None, lines[-1] if lines else f"exit code {self.process.wait()}"

    def stop(self) -> None:
        """End the child if it still runs (the export failed, was interrupted or needs no more)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _rename_when_written(write: Callable[[Path], object], final: Path) -> None:
    """Write under a temporary name, then rename: a half-written file is never taken for a result."""
    with replacing(final) as partial:
        write(partial)


def _end_with_parent() -> None:
    """Ask Linux to kill this process when the export's ends, however it ends: an export killed
    outright (SIGKILL, the OOM killer) runs no cleanup that could stop it. Elsewhere, or if the
    export has already gone, the child ends here."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: a finished export still ends the child (Background.stop)
    if str(os.getppid()) != os.environ.get(PARENT):
        sys.exit("the export that started this process has ended")


def main(argv: list[str]) -> None:
    """The child: the SavedModel, then each product named, in order."""
    _end_with_parent()
    from edgetl.exporting.tflite import saved_model
    from edgetl.runtime.keras_backend import load_keras_model

    model_file, scratch, products = Path(argv[0]), Path(argv[1]), argv[2:]
    start = time.perf_counter()
    model = load_keras_model(model_file)  # as export loads it
    _rename_when_written(lambda partial: saved_model(model, partial), scratch / SAVED_MODEL)
    print(f"{SAVED_MODEL}: written in {time.perf_counter() - start:.1f} s", flush=True)
    calib = np.load(scratch / IMAGES)
    for product in products:
        data, said = PRODUCTS[product](scratch / SAVED_MODEL, calib)
        (scratch / f"{product}.said").write_text(said)  # before the model: what the export reads once it is there
        _rename_when_written(lambda partial: partial.write_bytes(data), scratch / f"{product}.tflite")
        print(f"{product}: {said}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
