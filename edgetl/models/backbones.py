"""Backbone registry: each spec says the input sizes, pixel range and preprocessing of a Keras
application, and how to build the classifier on top of it.

Every built model takes RGB pixels 0..255 (float32) and normalises inside the graph, so every
exported artifact inherits the same contract."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.native_logs import debugging, quiet_import
from edgetl.registry import Registry


@dataclass(frozen=True)
class BackboneSpec:
    """What edgetl needs to know about one Keras application."""

    name: str
    application: str
    """Constructor in ``keras.applications``."""
    default_size: int
    min_size: int
    base_range: tuple[float, float]
    """Pixel range the backbone was trained on (what its first conv layer must see)."""
    normalises_itself: bool
    """True when the Keras application rescales 0..255 inside itself (EfficientNet); else edgetl
    adds a Rescaling layer mapping 0..255 to ``base_range``."""
    fine_tune_at: Callable[[int], int]
    """Default first layer to unfreeze in stage 2, from the base's layer count."""
    alphas: tuple[float, ...] = (1.0,)
    weight_file: Callable[[float, int], str] = lambda alpha, size: ""
    """File name of the ImageNet no-top weights in Keras's cache (``~/.keras/models``)."""
    weight_url: str = ""
    """Where Keras downloads that file from (the folder; the file name is appended)."""


def _mobilenet_file(alpha: float, size: int) -> str:
    rows = size if size in (96, 128, 160, 192, 224) else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


BACKBONES: Registry[BackboneSpec] = Registry("backbone", [
    ("mobilenet_v2", BackboneSpec(
        name="mobilenet_v2", application="MobileNetV2", default_size=224, min_size=32,
        base_range=(-1.0, 1.0), normalises_itself=False,
        fine_tune_at=lambda n: 100 * n // 154,  # block_12 onwards, as in the Keras transfer-learning guide
        alphas=(0.35, 0.5, 0.75, 1.0, 1.3, 1.4), weight_file=_mobilenet_file,
        weight_url="https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/")),
    ("efficientnet_b0", BackboneSpec(
        name="efficientnet_b0", application="EfficientNetB0", default_size=224, min_size=32,
        base_range=(0.0, 255.0), normalises_itself=True,
        fine_tune_at=lambda n: n - 20,  # the top 20 layers, as in the Keras EfficientNet guide
        weight_file=lambda alpha, size: "efficientnetb0_notop.h5",
        weight_url="https://storage.googleapis.com/keras-applications/")),
    ("mobilenet_v3_small", BackboneSpec(
        name="mobilenet_v3_small", application="MobileNetV3Small", default_size=224, min_size=32,
        base_range=(0.0, 255.0), normalises_itself=True,  # Keras's include_preprocessing rescales inside
        fine_tune_at=lambda n: n - 50,  # the last two inverted-residual blocks and the final 1x1 conv
        alphas=(0.75, 1.0),
        weight_file=lambda alpha, size: f"weights_mobilenet_v3_small_224_{float(alpha)}_float_no_top_v2.h5",
        weight_url="https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/")),
])


def get_backbone(name: str) -> BackboneSpec:
    """The spec of a registered backbone, or a clear error listing the choices."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise EdgetlError(f"unknown backbone '{name}'", fix=f"choose one of {', '.join(BACKBONES)}") from None


def keras_cache_dir() -> Path:
    """Keras's download cache for application weights ($KERAS_HOME/models or ~/.keras/models)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def imagenet_cached(spec: BackboneSpec, alpha: float = 1.0, size: int = 224) -> Path | None:
    """The cached ImageNet weights file for this backbone, or None."""
    path = keras_cache_dir() / spec.weight_file(alpha, size)
    return path if path.is_file() else None


def root_cause(e: BaseException) -> str:
    """The innermost reason in an exception chain, in words ("[Errno -2] Name or service not known")."""
    seen = set()
    while (e.__cause__ or e.__context__) is not None and id(e) not in seen:
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


class Pretrained(StrEnum):
    """The two values of ``--weights`` that are not a file."""

    IMAGENET = "imagenet"
    """Keras's ImageNet weights (its cache, or a download)."""
    NONE = "none"
    """Random weights: the whole network trains from scratch."""


def from_scratch(weights: str) -> bool:
    """True when ``weights`` asks for no pretrained weights."""
    return weights == Pretrained.NONE


def check_weights(weights: str) -> None:
    """A backbone weights file must exist ("imagenet" and "none" need none): checked by train
    before anything is made, and here for callers of build_base."""
    if weights not in set(Pretrained) and not Path(weights).is_file():
        raise EdgetlError("no such weights file", path=weights,
                          fix="give a Keras backbone weights file (.weights.h5), or --weights imagenet / none")


def check_backbone(name: str, size: int, alpha: float) -> BackboneSpec:
    """The backbone's spec, with ``size`` and ``alpha`` checked against it (no Keras needed: train
    calls this before anything is read)."""
    spec = get_backbone(name)
    if size < spec.min_size:
        raise EdgetlError(f"--size {size} is below the {spec.name} minimum of {spec.min_size}",
                          fix=f"choose --size {spec.min_size} or more ({spec.default_size} is the backbone's own)")
    if alpha not in spec.alphas:
        raise EdgetlError(f"--alpha {alpha} is not available for {spec.name}",
                          fix=f"choose one of {', '.join(map(str, spec.alphas))}")
    return spec


def _construct(spec: BackboneSpec, size: int, alpha: float, weights: str | None):
    """The Keras application, quietly: Keras prints download progress on stdout (which holds only
    results; shown under --debug) and a warning per layer a weights file does not fill."""
    keras = quiet_import("keras")  # the first TensorFlow import may happen here: keep its C++ banners quiet
    kwargs = {"alpha": alpha} if len(spec.alphas) > 1 else {}
    ctor = getattr(keras.applications, spec.application)
    with contextlib.redirect_stdout(sys.stderr if debugging() else io.StringIO()), warnings.catch_warnings():
        if not debugging():
            warnings.simplefilter("ignore")
        return ctor(input_shape=(size, size, 3), include_top=False, weights=weights, pooling="avg", **kwargs)


def _fits_instead(path: str, tried: BackboneSpec, size: int) -> str | None:
    """The registered backbone and alpha a weights file fits, when it is not ``tried`` (built
    here only to name the fix; an error path)."""
    for spec in BACKBONES.values():
        for alpha in spec.alphas:
            if spec is tried and alpha in tried.alphas:
                continue
            try:
                _construct(spec, max(size, spec.min_size), alpha, path)
            except Exception:
                continue
            return f"--backbone {spec.name}" + (f" --alpha {alpha}" if len(spec.alphas) > 1 else "")
    return None


def check_weights_load(spec: BackboneSpec, size: int, alpha: float, weights: str) -> None:
    """Build the backbone once with ``weights`` when that could fail (a weights file that may not
    fit, ImageNet weights not yet in Keras's cache), so train says so before it reads any image."""
    check_weights(weights)
    if from_scratch(weights) or (weights == Pretrained.IMAGENET and imagenet_cached(spec, alpha, size)):
        return
    build_base(spec, size, alpha, weights)


def build_base(spec: BackboneSpec, size: int, alpha: float, weights: str):
    """The Keras application without its top, global-average-pooled, with ``weights``:
    "imagenet" (Keras's download and cache), "none", or a weights file."""
    check_backbone(spec.name, size, alpha)
    check_weights(weights)
    w = None if from_scratch(weights) else str(weights)
    if w == Pretrained.IMAGENET and imagenet_cached(spec, alpha, size) is None:
        logging.getLogger(__name__).info(f"fetching ImageNet weights for {spec.name} through Keras (once; kept in {keras_cache_dir()})")
    try:
        base = _construct(spec, size, alpha, w)
    except Exception as e:
        if w == "imagenet" and imagenet_cached(spec, alpha, size) is None:
            name = spec.weight_file(alpha, size)
            raise EdgetlError(
                f"ImageNet weights for {spec.name} are not in Keras's cache ({keras_cache_dir() / name}) and could not "
                f"be downloaded ({root_cause(e)})",
                fix=f"download {spec.weight_url}{name} on a machine with internet access and copy it there; or give "
                    "a backbone weights file (weights=PATH; on the command line --weights PATH); or train from "
                    "scratch (weights=\"none\")") from e
        if w not in (None, "imagenet"):
            other = _fits_instead(w, spec, size)
            raise EdgetlError(f"these weights do not fit {spec.name}" + (f" (alpha {alpha})" if len(spec.alphas) > 1 else "")
                              + (f"; they fit {other}" if other else ""), path=w,
                              fix=f"train with {other}" if other else
                              "give weights saved from the same backbone without its top") from e
        raise
    if w is None:
        keras = quiet_import("keras")
        # From scratch on a small dataset, Keras's BatchNorm momentum (0.999) leaves the moving
        # statistics at their initial values for thousands of steps, so inference sees garbage.
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    return base


def build_classifier(spec: BackboneSpec, base, size: int, num_classes: int, dropout: float,
                     activation: str = "softmax"):
    """Input 0..255 -> (rescale) -> base -> dropout -> dense ``activation`` (softmax: one class;
    sigmoid: independent labels). Returns the full model and the feature extractor (input ->
    pooled base features), which share their layers."""
    keras = quiet_import("keras")

    inputs = keras.Input((size, size, 3), dtype="float32", name="image")
    x = inputs
    if not spec.normalises_itself:
        lo, hi = spec.base_range
        x = keras.layers.Rescaling((hi - lo) / 255.0, offset=lo, name="normalise")(x)
    # No training=False here: Keras 3 runs a BatchNormalization layer whose `trainable` is False in
    # inference mode anyway (frozen transfer learning, and stage 2 where edgetl freezes every BN),
    # while a from-scratch base must run BN in training mode so its moving statistics are learnt.
    features = base(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(features)
    outputs = keras.layers.Dense(num_classes, activation=activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"edgetl_{spec.name}"), keras.Model(inputs, features, name="features")


def build_head(features: int, num_classes: int, dropout: float, activation: str = "softmax"):
    """The head alone (for training on cached backbone features); its layers share names with the
    full model's so weights copy across."""
    keras = quiet_import("keras")

    inputs = keras.Input((features,), name="features")
    x = keras.layers.Dropout(dropout, name="head_dropout")(inputs)
    outputs = keras.layers.Dense(num_classes, activation=activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="head")


def freeze_for_fine_tuning(base, fine_tune_at: int) -> int:
    """Unfreeze base layers from ``fine_tune_at`` on, keeping every BatchNormalization layer frozen
    (Keras then runs them in inference mode). Returns how many layers are trainable."""
    keras = quiet_import("keras")

    base.trainable = True
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= fine_tune_at and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(layer.trainable for layer in base.layers)
