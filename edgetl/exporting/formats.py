"""The export formats: one registry entry each, with its file, its builder and its fallbacks.

A new format is one :class:`Format` in :data:`FORMATS` and a builder function (Keras model ->
bytes of the finished file, manifest embedded). The CLI's ``--format`` choices, the manifest's
``format``/``precision`` and bench's columns all come from here."""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgetl.exporting import onnx as onnx_export
from edgetl.registry import Registry

if TYPE_CHECKING:  # the builders import what they need: the CLI reads this registry at start-up
    import numpy as np

    from edgetl.exporting.background import Background
    from edgetl.exporting.bias_correction import BiasCorrection
    from edgetl.exporting.layer_error import LayerError
    from edgetl.runtime.manifest import ModelManifest


@dataclass
class Gates:
    """What an artifact must reach against the Keras model to be accepted (every format)."""

    max_drop: float = 1.0
    """Largest accuracy loss vs Keras, in percentage points."""
    min_agreement: float = 0.98
    """Smallest share of images whose top-1 class equals Keras's."""
    strict: bool = False
    """The point estimates alone decide; by default a missed limit refuses an artifact only when
    the held-out images prove it (see :mod:`edgetl.exporting.gate`), else it is "not proven"."""


@dataclass(frozen=True)
class Int8Settings:
    """How int8 artifacts are made: calibration (shared by TFLite and ONNX), the TFLite model's
    input/output type and bias correction, the ONNX model's target CPU preset."""

    calib_samples: int = 300
    """Training images (stratified) the activation ranges are calibrated on."""
    io: str = "uint8"
    """Input/output type of the int8 TFLite model: uint8 (pixels 0..255), int8 or float."""
    bias_correction: bool = True
    """Correct the int8 TFLite model's depthwise biases on the calibration images."""
    target: str = onnx_export.DEFAULT_TARGET
    """The int8 ONNX preset: "x86" (U8S8) or "arm64" (S8S8); see :data:`onnx.INT8_TARGETS`."""


@dataclass
class Build:
    """What a builder gets: the Keras model, the calibration images, the settings, the manifest to
    embed, and where to note what it did."""

    model: object
    calib: np.ndarray
    int8: Int8Settings
    opset: int
    new_manifest: Callable[["Format"], ModelManifest]
    scratch: Path
    """A private folder for the export's intermediate files, removed when the export ends."""
    manifests: dict[str, ModelManifest] = field(default_factory=dict)
    """The manifest embedded in each file made, by format name (what export writes beside it)."""
    corrections: list[BiasCorrection] = field(default_factory=list)
    log: Callable[[str], None] = print
    onnx_fp32: bytes | None = None
    """The float ONNX graph, converted once for both ONNX formats."""
    tflite_fp32: bytes | None = None
    """The float TFLite model, converted once (a format, and the reference of int8's corrections)."""
    tflite_calibrated: bytes | None = None
    """The calibrated float TFLite model, made once for int8 and every selective-float rung."""
    layers: list[LayerError] | None = None
    """Each layer's error in the int8 TFLite model (its report, and what the rungs keep in float)."""
    saved_model: Path | None = None
    """The model's inference call as a SavedModel, written once for every TFLite conversion."""
    background: Background | None = None
    """The child process writing the SavedModel, the fp16 model and the calibrated one on another
    core (:mod:`edgetl.exporting.background`); its owner ends it."""
    calibration: str | None = None
    """Where the TFLite calibration ran and how long it took, once it has (the export report's)."""

    def manifest(self, fmt: "Format") -> ModelManifest:
        """The manifest to embed in ``fmt``'s file, made once: embedding fills in its ``io``."""
        if fmt.name not in self.manifests:
            self.manifests[fmt.name] = self.new_manifest(fmt)
        return self.manifests[fmt.name]

    def float_onnx(self):
        """A fresh copy of the float ONNX model (tf2onnx runs once per export)."""
        import onnx

        if self.onnx_fp32 is None:
            self.onnx_fp32 = onnx_export.fp32(self.model, self.opset).SerializeToString()
        return onnx.load_from_string(self.onnx_fp32)

    def tflite_source(self) -> Path:
        """What every TFLite conversion starts from: the SavedModel, the background's when it
        wrote one, else written here on first use."""
        if self.saved_model is None and self.background is not None:
            self.saved_model = self.background.saved_model()
        if self.saved_model is None:
            self.saved_model = _tflite_module().saved_model(self.model, self.scratch / "saved_model")
        return self.saved_model

    def float_tflite(self) -> bytes:
        """The float TFLite model, without metadata."""
        if self.tflite_fp32 is None:
            self.tflite_fp32 = _tflite_module().fp32(self.tflite_source())
        return self.tflite_fp32

    def from_background(self, product: str) -> tuple[bytes | None, str | None]:
        """``product`` as the background made it (waiting for it) and what it said, or None when
        there is none or it failed (said here: the caller makes it itself)."""
        if self.background is None or product not in self.background.products:
            return None, None
        data, said = self.background.take(product)
        if data is None:
            self.log(f"{product} in a second process failed ({said}); making it here")
        return data, said

    def fp16_tflite(self) -> bytes:
        """The fp16 TFLite model, without metadata: the background's, else converted here."""
        data, _ = self.from_background("fp16")
        return data if data is not None else _tflite_module().fp16(self.tflite_source())

    def calibrated_tflite(self) -> bytes:
        """The calibrated float TFLite model (calibration is most of an int8 conversion's time):
        the background's when one was started and succeeded, else made here."""
        if self.tflite_calibrated is not None:
            return self.tflite_calibrated
        self.tflite_calibrated, said = self.from_background("calibrated")
        if self.tflite_calibrated is not None:
            self.calibration = f"in a second process: {said}"
        else:
            start = time.perf_counter()
            self.tflite_calibrated = _tflite_module().calibrated(self.tflite_source(), self.calib)
            self.calibration = f"in this process: calibrated on {len(self.calib)} images in {time.perf_counter() - start:.1f} s"
        self.log(f"int8 calibration {self.calibration}")
        return self.tflite_calibrated

    def int8_layers(self) -> list[LayerError]:
        """Each layer's error in the int8 model (the "unknown" rule's layers in float, as every int8
        export keeps them, so they are neither measured nor ranked), on the held-back calibration images."""
        if self.layers is None:
            from edgetl.exporting.layer_error import layer_errors

            tflite = _tflite_module()
            rule = tflite.rule_tensors(self.calibrated_tflite())
            plain = tflite.quantized(self.calibrated_tflite(), self.int8.io, rule)
            self.layers = [e for e in layer_errors(plain, self.float_tflite(), held_back(self.calib)[:LAYER_ERROR_IMAGES])
                           if e.tensor not in rule]
        return self.layers


Builder = Callable[[Build, "Format"], bytes]

LAYER_ERROR_IMAGES = 32
"""Calibration images the per-layer error is measured on: each layer's error is a mean over
every value of its output, so a few dozen images give stable rankings."""


def held_back(calib: np.ndarray) -> np.ndarray:
    """The held-back calibration images (:func:`edgetl.exporting.bias_correction.held_back_mask`)."""
    from edgetl.exporting.bias_correction import held_back_mask

    return calib[held_back_mask(len(calib))]


@dataclass(frozen=True)
class Format:
    """One artifact kind."""

    name: str
    file: str
    kind: str
    """The file's format: "tflite" or "onnx"."""
    precision: str
    build: Builder
    needs_calibration: bool = False
    fallbacks: tuple[str, ...] = ()
    """Formats tried in turn when this one misses its gate, until one passes (the one to ship)."""
    in_all: bool = True
    """Made by ``--all``; False for a format made on request or as another's fallback."""


def _tflite(convert: Callable[[Build], bytes]) -> Builder:
    """A TFLite builder: convert, then embed the metadata and the manifest."""
    def build(b: Build, fmt: Format) -> bytes:
        from edgetl.exporting import metadata

        manifest = b.manifest(fmt)
        return metadata.embed_tflite(convert(b), f"{manifest.backbone or 'model'} {fmt.name}", manifest)
    return build


def _int8_corrected(b: Build) -> bytes:
    from edgetl.exporting import tflite

    data, correction = tflite.int8(b.calibrated_tflite(), b.float_tflite(), b.calib, b.int8.io, b.int8.bias_correction)
    from edgetl.exporting.layer_error import most_added

    worst = most_added(b.int8_layers(), 3)
    b.log(f"int8 per-layer error: output {b.int8_layers()[-1].error:.3f} of the float output's spread; most added by "
          + ", ".join(f"{e.name} ({e.added:+.3f})" for e in worst))
    if correction:
        b.corrections.append(correction)
        b.log(f"int8 bias correction of {correction.layers} depthwise layers: mean output difference from float on "
              f"held-back calibration images {correction.error_before:.4f} -> {correction.error_after:.4f} "
              f"({'kept' if correction.kept else 'not kept'})")
    return data


def _int8_keeping(n: int) -> Callable[[Build], bytes]:
    """A selective-float rung: int8 with the ``n`` layers that add most error kept in float."""
    def convert(b: Build) -> bytes:
        from edgetl.exporting.layer_error import most_added

        keep = [layer.tensor for layer in most_added(b.int8_layers(), n)]
        keep += _tflite_module().rule_tensors(b.calibrated_tflite())  # always float, as in int8
        model = _tflite_module().quantized(b.calibrated_tflite(), b.int8.io, keep)
        if not b.int8.bias_correction:
            return model
        from edgetl.exporting.bias_correction import correct_biases

        model, correction = correct_biases(model, b.float_tflite(), b.calib)
        b.log(f"int8 with {n} layer(s) in float: bias correction {'kept' if correction.kept else 'not kept'} "
              f"({correction.error_before:.4f} -> {correction.error_after:.4f})")
        return model
    return convert


def _onnx_bytes(proto, manifest: ModelManifest) -> bytes:
    from edgetl.exporting import metadata

    metadata.embed_onnx(proto, manifest)
    return proto.SerializeToString()


def _onnx_fp32(b: Build, fmt: Format) -> bytes:
    return _onnx_bytes(b.float_onnx(), b.manifest(fmt))


def _onnx_int8(b: Build, fmt: Format) -> bytes:
    """Static QDQ quantization of the float ONNX model by the target's preset."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        source, quantized = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(b.float_onnx(), str(source))
        onnx_export.int8(source, quantized, b.calib, onnx_export.INT8_TARGETS[b.int8.target])
        return _onnx_bytes(onnx.load(str(quantized)), b.manifest(fmt))


def _tflite_module():
    from edgetl.exporting import tflite

    return tflite


def _register(*formats: Format) -> Registry[Format]:
    return Registry("export format", [(f.name, f) for f in formats])


# Every artifact edgetl can make, in the order they are made: the int8 TFLite formats last, so the
# calibration they wait for runs beside the others (Build.background).
FORMATS: Registry[Format] = _register(
    Format("fp32", "model_fp32.tflite", "tflite", "fp32", _tflite(lambda b: b.float_tflite())),
    Format("fp16", "model_fp16.tflite", "tflite", "fp16", _tflite(lambda b: b.fp16_tflite())),
    Format("dynamic", "model_dynamic.tflite", "tflite", "dynamic", _tflite(lambda b: _tflite_module().dynamic(b.tflite_source()))),
    Format("onnx", "model.onnx", "onnx", "fp32", _onnx_fp32),
    Format("onnx_int8", "model_int8.onnx", "onnx", "int8", _onnx_int8, needs_calibration=True),
    Format("int8", "model_int8.tflite", "tflite", "int8", _tflite(_int8_corrected), needs_calibration=True,
           fallbacks=("int8_float1", "int8_float3", "int8_mixed", "dynamic", "fp16")),
    # The selective-float ladder, int8's fallbacks in order of speed: the layers that add most
    # error (measured on the int8 model) kept in float, one, three, then ten of them.
    Format("int8_float1", "model_int8_float1.tflite", "tflite", "int8+float", _tflite(_int8_keeping(1)),
           needs_calibration=True, in_all=False),
    Format("int8_float3", "model_int8_float3.tflite", "tflite", "int8+float", _tflite(_int8_keeping(3)),
           needs_calibration=True, in_all=False),
    Format("int8_mixed", "model_int8_mixed.tflite", "tflite", "int8+float", _tflite(_int8_keeping(10)),
           needs_calibration=True, in_all=False),
)
ALL = tuple(name for name, f in FORMATS.items() if f.in_all)
"""What ``--all`` makes."""


def needs_tflite_calibration(names: list[str]) -> bool:
    """Whether any of these formats is made from the calibrated TFLite model."""
    return any(FORMATS[n].kind == "tflite" and FORMATS[n].needs_calibration for n in names)


def plan(wanted: list[str]) -> list[str]:
    """The formats to make, in registry order; fp32 always (it is the reference every other
    artifact is compared with, and what a device can always run)."""
    return [name for name in FORMATS if name in wanted or name == "fp32"]


def chosen_formats(names: list[str], *, fp16: bool = False, dynamic: bool = False, int8: bool = False,
                   onnx: bool = False, every: bool = False) -> list[str]:
    """Format names from ``--format NAME`` and the shorthand flags: each flag adds its format,
    ``--int8`` with ``--onnx`` the int8 ONNX model too, ``--all`` everything in :data:`ALL`."""
    flags = {"fp16": fp16, "dynamic": dynamic, "int8": int8, "onnx": onnx, "onnx_int8": int8 and onnx}
    wanted = set(names) | {name for name, on in flags.items() if on} | (set(ALL) if every else set())
    return [name for name in FORMATS if name in wanted] + sorted(wanted - set(FORMATS))
