"""TensorFlow's int8 calibration in a process of its own, beside the rest of the export.

The calibrator runs every calibration image through the float model on one core: 18.6 s of a
hymenoptera export's 56 (245 images), its largest single stage; in a thread it would share
Python's lock with the export's own work (a pure-Python loop beside it ran at about half speed).
When a core is idle as export starts, export starts it in a child process as soon as the
SavedModel is written and converts and verifies the other formats meanwhile; the
int8 formats then take the calibrated model it wrote. The child runs the same converter on the
same SavedModel and images, so the calibrated model is the same file, byte for byte (a test
holds this). If the child fails, export calibrates in its own process, as it would on one core.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class BackgroundCalibration:
    """A calibration running in a child process, and where it writes its model and its log."""

    process: subprocess.Popen
    out: Path
    log: Path

    @classmethod
    def start(cls, saved_model: Path, calib: np.ndarray, scratch: Path) -> "BackgroundCalibration":
        """Start calibrating ``saved_model`` on ``calib`` (RGB uint8 at the model's size); files go
        to ``scratch``, a folder private to this export."""
        images, out, log = scratch / "calibration.npy", scratch / "calibrated.tflite", scratch / "calibration.log"
        np.save(images, calib)
        # TFLite calibrates on the CPU: the child must not take a GPU's memory from the export.
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        with log.open("wb") as sink:
            process = subprocess.Popen([sys.executable, "-m", __name__, str(saved_model), str(images), str(out)],
                                       stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env)
        return cls(process, out, log)

    def result(self) -> tuple[bytes | None, str]:
        """Wait for the child: the calibrated model (None if it failed) and the last line it
        logged (how long calibrating took, or what went wrong)."""
        code = self.process.wait()
        lines = self.log.read_text(errors="replace").strip().splitlines() if self.log.is_file() else []
        said = lines[-1] if lines else f"exit code {code}"
        return (self.out.read_bytes() if code == 0 and self.out.is_file() else None), said

    def stop(self) -> None:
        """End the child if it still runs (the export failed or was interrupted)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def main(argv: list[str]) -> None:
    """The child: calibrate, and write the model under a temporary name, then rename it, so a
    half-written file is never taken for a result."""
    import time

    from edgetl.exporting.tflite import calibrated

    saved_model, images, out = argv
    calib = np.load(images)
    start = time.perf_counter()
    data = calibrated(Path(saved_model), calib)
    partial = Path(out + ".partial")
    partial.write_bytes(data)
    os.replace(partial, out)
    print(f"calibrated on {len(calib)} images in {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
