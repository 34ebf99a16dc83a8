"""edgetl: a folder of labelled photos to a fast, verified image classifier on the edge.

The API is plain functions that import their stage on first call, so ``import edgetl`` stays
light on a device (no TensorFlow until :func:`train` or :func:`export` runs):

    import edgetl
    report = edgetl.audit("photos/")
    run = edgetl.train(data="photos/", epochs=10)
    result = edgetl.export(run.path)
    clf = edgetl.load(result.folder / "model_fp32.tflite")
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the annotations only: importing these at run time would load TensorFlow
    from edgetl.benchmark.harness import BenchOptions, BenchResult
    from edgetl.calibration import CalibrateOptions, CalibrateResult
    from edgetl.evaluation import EvalResult
    from edgetl.exporting.formats import Gates
    from edgetl.exporting.pipeline import ExportOptions, ExportResult
    from edgetl.golden_check import ModelCheck
    from edgetl.runtime import Classifier
    from edgetl.training.config import TrainConfig
    from edgetl.training.results import TrainResult
    from edgetl.tuning import TuneOptions, TuneResult

__version__ = "0.1.0"

# A library logs and the program decides what is shown (logging's "configuring logging for a
# library"): without this, Python's last-resort handler would print edgetl's warnings on stderr.
logging.getLogger("edgetl").addHandler(logging.NullHandler())

# Classes and functions re-exported as they are, imported on first use.
_API = {
    "audit": "edgetl.data.audit",
    "AuditOptions": "edgetl.data.audit",
    "load": "edgetl.runtime",
    "Classifier": "edgetl.runtime",
    "TrainConfig": "edgetl.training.config",
    "ExportOptions": "edgetl.exporting.pipeline",
    "Gates": "edgetl.exporting.formats",
    "BenchOptions": "edgetl.benchmark.harness",
    "BenchResult": "edgetl.benchmark.harness",
    "CalibrateOptions": "edgetl.calibration",
    "compare": "edgetl.comparison",
    "label": "edgetl.labelling",
    "TuneOptions": "edgetl.tuning",
    "Target": "edgetl.tuning",
    "Grid": "edgetl.tuning",
}


__all__ = ["train", "tune", "export", "verify", "bench", "evaluate", "calibrate", *_API]


def train(config: TrainConfig | None = None, resume: str | Path | None = None, **overrides: Any) -> TrainResult:
    """Train a classifier (``edgetl train``): ``edgetl.train(data="photos/", epochs=10)`` or with a
    :class:`TrainConfig`, or continue the interrupted run ``resume``.

    Args:
        config: every setting (default: :class:`TrainConfig`'s defaults).
        resume: an interrupted run folder to continue (its own settings; ``config`` may change
            only what a resume allows).
        **overrides: any :class:`TrainConfig` field by name, when no ``config`` is given (the
            fields are the parameters; a test holds them equal to the CLI's options).

    Returns:
        A :class:`~edgetl.training.results.TrainResult`: the run folder and its typed metrics.

    Raises:
        EdgetlError: a setting or the data is wrong (before anything is written), the disk is full,
            or a worker of a cluster was lost (the run stays resumable after its first epoch).
    """
    from edgetl.training.run import train as run

    return run(config, resume, **overrides)


def tune(options: TuneOptions, config: TrainConfig | None = None, **overrides: Any) -> TuneResult:
    """Search for the most accurate model within a latency budget on a device (``edgetl tune``):
    ``edgetl.tune(edgetl.TuneOptions(budget_ms=33, target=edgetl.Target("rpi", "mypi")), data="photos/")``.

    Args:
        options: the budget, the device (:class:`~edgetl.tuning.Target`), the grid
            (:class:`~edgetl.tuning.Grid`), the statistic the budget reads, finalists, ``max_hours``,
            the folder and ``resume``.
        config: the training recipe every finalist follows (its backbone, alpha and size are the
            candidates'); default :class:`TrainConfig`'s.
        **overrides: any :class:`TrainConfig` field by name, when no ``config`` is given.

    Returns:
        A :class:`~edgetl.tuning.TuneResult`: the folder (tune.json, tune.png, tune.html), the typed
        record, and the chosen run (a normal run folder, exported and verified; None when the
        search stopped at ``max_hours`` before a finalist was trained).

    Raises:
        EdgetlError: a setting or the data is wrong, no candidate has weights here, no candidate
            meets the budget (the fastest is named), or the device cannot be reached.
    """
    from edgetl.training.config import TrainConfig as Config
    from edgetl.tuning import tune as run_tune

    return run_tune(config or Config(**overrides), options)


def export(run: str | Path | None = None, options: ExportOptions | None = None) -> ExportResult:
    """Convert a run's model to the formats in ``options``, each verified against Keras, into
    RUN/export/ (``edgetl export``).

    Args:
        run: a finished run folder (default: the latest under runs/).
        options: formats, int8 settings, ONNX opset, gates, threads (:class:`ExportOptions`).

    Returns:
        An :class:`~edgetl.exporting.pipeline.ExportResult`: each artifact's check and verdict;
        ``ok`` when every requested one was kept.

    Raises:
        EdgetlError: the run is not finished or is being written, a conversion failed.
    """
    from edgetl.exporting.pipeline import export as run_export

    return run_export(run, options)


def verify(target: str | Path | None = None, hosts: list[str] | None = None, threads: int | None = None,
           gates: Gates | None = None, *, remote_python: str = "python3", ssh_config: str | Path | None = None,
           timeout: float = 900.0) -> ExportResult | ModelCheck:
    """Check again what export verified (``edgetl verify``).

    Args:
        target: a run folder (default: the latest): its artifacts against the Keras model; or one
            exported model file: its golden images replayed, and its sha256 against export's.
        hosts: with a model file, SSH hosts to replay it on (default: here).
        threads: inference threads.
        gates: a run's limits (default: export's).
        remote_python: the device's Python (SSH).
        ssh_config: an ssh_config file (SSH).
        timeout: seconds a device may take.

    Returns:
        An :class:`~edgetl.exporting.pipeline.ExportResult` for a run, a
        :class:`~edgetl.golden_check.ModelCheck` for a model file; both have ``ok``.

    Raises:
        EdgetlError: the run or model cannot be read, or ``hosts`` with a folder.
    """
    from edgetl.errors import EdgetlError

    if target is not None and Path(target).is_file():
        from edgetl.golden_check import verify_model

        return verify_model(target, threads, hosts, remote_python, str(ssh_config) if ssh_config else None, timeout)
    if hosts:
        raise EdgetlError("--host verifies one model file on a device", fix="give RUN/export/model_int8.tflite, not a folder")
    from edgetl.exporting.verify_run import verify_run

    return verify_run(target, gates, threads)


def bench(models: list[str | Path], threads: list[int | None] | None = None, device: str = "local",
          hosts: list[str] | None = None, options: BenchOptions | None = None, *, remote_python: str = "python3",
          ssh_config: str | Path | None = None, timeout: float | None = None, serial: str | None = None,
          benchmark_binary: str | None = None, use_gpu: bool = False, use_nnapi: bool = False) -> list[BenchResult]:
    """Latency of each model at each thread count on a device (``edgetl bench``).

    Args:
        models: .tflite or .onnx files (.keras too, locally).
        threads: thread counts to measure (None: the runtime's default).
        device: "local", "rpi" (any Linux board over SSH, with ``hosts``) or "android" (adb).
        hosts: SSH hosts or ~/.ssh/config aliases, for "rpi".
        options: runs, warm-up, minimum seconds, an image for end-to-end timing.
        remote_python: the device's Python (SSH).
        ssh_config: an ssh_config file (SSH).
        timeout: seconds a device may take (default 900).
        serial: the adb device serial (Android).
        benchmark_binary: LiteRT's benchmark_model, a local file (pushed) or a path on the phone.
        use_gpu: Android's GPU delegate.
        use_nnapi: Android's NNAPI delegate.

    Returns:
        One :class:`~edgetl.benchmark.harness.BenchResult` per (host,) model and thread count;
        a run's export is benched into its report page too.

    Raises:
        EdgetlError: a model is missing, the device cannot be reached, or it answered wrongly.
    """
    from edgetl.benchmark import bench as run_bench, export_run_of

    results = run_bench(models, threads, device, hosts, options, remote_python=remote_python, ssh_config=ssh_config,
                        timeout=timeout, serial=serial, benchmark_binary=benchmark_binary, use_gpu=use_gpu,
                        use_nnapi=use_nnapi)
    run = export_run_of(models)
    if run is not None:  # one rule: what changes a run leaves its page current (train and export do too)
        from edgetl.report import refresh

        refresh(run)
    return results


def evaluate(model: str | Path | Classifier, data: str | Path, split: str = "auto", threads: int | None = None,
             labels: str | Path | None = None, class_depth: int = 1, threshold: float | None = None,
             unknown: str | Path | None = None) -> EvalResult:
    """Accuracy, per-class figures and confusion matrix of a model over a dataset, and what its
    "unknown" rule does (``edgetl eval``).

    Args:
        model: a .tflite, .onnx or .keras file, or a loaded Classifier.
        data: a dataset folder or CSV (any layout ``edgetl data check`` accepts).
        split: "auto" (the test split, else validation, never an image the run trained on), or
            "train", "val", "test", "all".
        threads: inference threads (default: every usable core).
        labels: a labels file overriding the model's own.
        class_depth: 2 when classes are two folder levels deep.
        threshold: the "unknown" score threshold instead of the model's own.
        unknown: a folder of images that are none of the classes: the share answered "unknown"
            and AUROC known-vs-unknown.

    Returns:
        An :class:`~edgetl.evaluation.EvalResult`; ``selective`` holds the "unknown" figures.

    Raises:
        EdgetlError: the model or the data cannot be read, or their classes do not match.
    """
    from edgetl.evaluation import evaluate as run_eval

    return run_eval(model, data, split, threads, labels, class_depth, threshold, unknown)


def calibrate(run: str | Path | None = None, options: CalibrateOptions | None = None) -> CalibrateResult:
    """Choose a run's "unknown" rule again without retraining (``edgetl calibrate``).

    Args:
        run: a finished run folder (default: the latest).
        options: the answer rate, a folder of images that are none of the classes, the precision
            to reach with them, inference threads (:class:`~edgetl.calibration.CalibrateOptions`).

    Returns:
        A :class:`~edgetl.calibration.CalibrateResult`: the rule before and after, the files
        rewritten (model.keras, the manifests, each exported file), their verification.

    Raises:
        EdgetlError: the run is not finished, its model carries no rule, or an option is out of range.
    """
    from edgetl.calibration import calibrate as run_calibrate

    return run_calibrate(run, options)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'edgetl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
