"""A model.keras scored through ONNX Runtime: the same network, converted in memory the way export
converts it, for evaluations of many images on a CPU (where ONNX Runtime runs it faster than
TensorFlow), used only when the two agree on a sample of the images."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgetl.data.cache import decode_all
from edgetl.exporting import onnx as onnx_export
from edgetl.runtime.classifier import Classifier
from edgetl.runtime.keras_backend import KerasBackend
from edgetl.runtime.onnxrt import OnnxBackend


ONNX_FROM = 1000
"""Images from which a model.keras is scored through ONNX Runtime: converting it costs about 3 s
and ONNX Runtime runs MobileNetV2 224 at about 390 images/s where Keras runs 150 (2 cores, side
by side), so it pays from about 750 images; 1,000 leaves a margin."""
AGREE = 1e-4
"""Largest difference of any probability between Keras and ONNX Runtime on the sample for the
conversion to be used."""
SAMPLE = 16
"""Images of the set both runtimes score before the conversion is used."""


def for_many_images(clf: Classifier, paths: list[str], threads: int | None = None) -> Classifier:
    """The classifier that scores ``paths`` fastest with ``clf``'s answers: for a model.keras and
    at least :data:`ONNX_FROM` images on a machine where TensorFlow sees no GPU (where TensorFlow
    is the faster one), the same network converted to ONNX in memory (tf2onnx, as export does)
    and run by ONNX Runtime, when its probabilities on the first :data:`SAMPLE` images agree with
    Keras's within :data:`AGREE`; else ``clf`` itself. The runtime name says which ran and how
    close the two were."""
    import tensorflow as tf

    if (not isinstance(clf.backend, KerasBackend) or len(paths) < ONNX_FROM
            or tf.config.list_physical_devices("GPU")):
        return clf
    return through_onnx_runtime(clf, decode_all(paths[:SAMPLE], clf.pixels, quiet=True), threads)


def through_onnx_runtime(clf: Classifier, sample: np.ndarray, threads: int | None = None) -> Classifier:
    """``clf`` (a model.keras) converted to ONNX in memory and run by ONNX Runtime, when the two
    agree within :data:`AGREE` on ``sample`` (model-sized uint8 pixels); else ``clf``."""
    try:
        proto = onnx_export.fp32(clf.backend.model)
        with tempfile.TemporaryDirectory(prefix="edgetl-keras-onnx-") as tmp:
            path = Path(tmp) / clf.path.with_suffix(".onnx").name
            path.write_bytes(proto.SerializeToString())
            backend = OnnxBackend(path, threads=threads)  # the session holds the model: the file can go
    except Exception:  # a network tf2onnx cannot convert stays with Keras, which runs it
        return clf
    x = clf.to_input(sample)
    gap = float(np.abs(clf.probabilities(backend.run(x)) - clf.probabilities(clf.infer(x))).max())
    if not gap <= AGREE:
        return clf
    backend.runtime += f", {clf.path.name} converted in memory: within {gap:.0e} of {clf.runtime} on {len(x)} images"
    twin = Classifier(clf.path, backend, clf.labels, clf.pixels, clf.output_kind, clf.labelled, clf.manifest)
    twin.threshold = clf.threshold
    return twin
