"""`load(path) -> Classifier`: one way to run any image classifier, whatever its format."""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.image import DecodeError, decode, resize
from edgetl.runtime.confidence import is_unknown
from edgetl.runtime.labels import check_label_list, resolve_labels
from edgetl.runtime.manifest import MANIFEST, ModelManifest, entry_for, split_embedded
from edgetl.runtime.spec import ModelInfo, PixelSpec, TensorSpec
from edgetl.runtime.task import DECISION, Task
from edgetl.registry import Registry


def _litert(path: Path, **kw):
    from edgetl.runtime.litert import LiteRTBackend

    return LiteRTBackend(path, **kw)


def _onnx(path: Path, **kw):
    from edgetl.runtime.onnxrt import OnnxBackend

    return OnnxBackend(path, **kw)


def _keras(path: Path, **kw):
    from edgetl.runtime.keras_backend import KerasBackend

    return KerasBackend(path, **kw)


# File suffix -> backend factory. A new format is one entry here and one module.
BACKENDS: Registry[Callable] = Registry("runtime backend", [(".tflite", _litert), (".onnx", _onnx), (".keras", _keras)])


@dataclass(frozen=True)
class Category:
    """One class and its score."""

    index: int
    label: str
    score: float


def _sidecar(path: Path) -> dict:
    """labels and pixel spec from a manifest.json beside the model (edgetl run and export folders)."""
    file = path.parent / MANIFEST
    try:
        side = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
    except (OSError, ValueError) as e:
        raise EdgetlError(f"cannot read the manifest beside the model ({e})", path=file,
                          fix="re-export the model, or move it out of this folder") from None
    if not isinstance(side, dict):
        raise EdgetlError("the manifest is not a JSON object", path=file, fix="re-export the model")
    return side


def input_transform(spec: PixelSpec, t: TensorSpec) -> Callable[[np.ndarray], np.ndarray]:
    """Map an (N, H, W, 3) uint8 pixel batch to the input tensor ``t`` of a model whose pixel
    contract is ``spec``, exactly: float normalisation, then the tensor's own scale and zero point,
    then the layout."""
    quantized = t.quantized
    if spec.mean is None or spec.std is None:
        # The model did not say: raw pixels for a quantized input, 0..255 floats otherwise.
        a, b = (1.0, float(-128 if t.dtype == np.int8 else 0)) if quantized else (1.0, 0.0)
    else:
        a, b = 1.0 / spec.std, -spec.mean / spec.std
        if quantized:
            a, b = a / t.scale, b / t.scale + t.zero_point
    nchw = t.layout == "NCHW"

    def layout(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x

    identity = abs(a - 1) < 1e-6
    if quantized:
        info = np.iinfo(t.dtype)
        if identity and abs(b) < 1e-6 and t.dtype == np.uint8:
            return layout
        if identity and abs(b + 128) < 1e-6 and t.dtype == np.int8:
            return lambda x: layout((x ^ np.uint8(0x80)).view(np.int8))
        return lambda x: layout(np.clip(np.rint(x * np.float32(a) + np.float32(b)), info.min, info.max)
                                .astype(t.dtype))
    dtype = t.dtype
    if identity and abs(b) < 1e-9:
        return lambda x: layout(x.astype(dtype))
    return lambda x: layout((x.astype(np.float32) * np.float32(a) + np.float32(b)).astype(dtype))


class Classifier:
    """A loaded model with its input contract, labels and output decoding.

    ``classify`` takes an RGB uint8 image of any size; ``infer`` takes an already prepared input
    batch and does nothing but run the model (what a benchmark should time)."""

    def __init__(self, path: Path, backend, labels: list[str], pixels: PixelSpec, output_kind: str | None,
                 labelled: bool = True, manifest: ModelManifest | None = None):
        self.path = path
        self.manifest = manifest
        """The model's own contract (embedded in it, else its entry in the manifest.json beside
        it) when edgetl made it; None for a model from elsewhere."""
        self.unlabelled_logits = False
        """Set once outputs were seen that are not probabilities while no labels name them."""
        self.labelled = labelled
        """False when no labels file or metadata named the classes (they are class_0, class_1, ...)."""
        self.backend = backend
        self.runtime: str = backend.runtime
        self.input: TensorSpec = backend.info.input
        self.output: TensorSpec = backend.info.output
        self.labels = labels
        self.pixels = pixels
        self.output_kind = output_kind
        self.infer = backend.run
        self.dynamic_batch: bool = getattr(backend, "dynamic_batch", False)
        """A batch of any size runs in one ``infer`` call (else one image per call)."""
        self.batch: int = getattr(backend, "batch", 1) if self.dynamic_batch else 1
        """Images per ``infer`` call that run a set of images fastest on this runtime."""
        self._to_input = input_transform(self.pixels, self.input)
        self.task: Task = manifest.task if manifest else Task.SINGLE_LABEL
        """What the scores mean (the manifest's task): one distribution, or independent labels."""
        self.threshold: float = manifest.confidence.threshold if manifest and manifest.confidence else 0.0
        """Top score below which the answer is "unknown": the model's own (chosen at training,
        see :mod:`edgetl.runtime.confidence`), 0 for a model without one; callers may set another."""

    @property
    def num_classes(self) -> int:
        """Number of model outputs."""
        return int(self.output.shape[-1])

    def resize(self, image: np.ndarray) -> np.ndarray:
        """The shared resize path at this model's input size."""
        return resize(image, self.pixels.height, self.pixels.width, self.pixels.resize)

    def prepare(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Model input for one RGB image (H, W, 3) or several, of any size."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        batch = np.stack([self.resize(im) for im in images])
        return self._to_input(batch)

    def to_input(self, pixels: np.ndarray) -> np.ndarray:
        """Model input for an already resized (N, H, W, 3) uint8 batch."""
        return self._to_input(pixels)

    @property
    def multi_label(self) -> bool:
        """Independent scores, one per label (several labels per image)."""
        return self.task == Task.MULTI_LABEL

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """Raw output batch -> (N, classes) float32 probabilities (multi-label: each label's own
        score, 0..1, independent of the others)."""
        out = self.output.dequantize(raw.reshape(raw.shape[0], -1))
        if self.multi_label:
            return np.clip(out, 0.0, 1.0).astype(np.float32)
        if self.output_kind == "probabilities" or (self.output_kind is None and self._is_distribution(out)):
            return out
        if not self.labelled:
            # Neither probabilities nor named classes: maybe a feature extractor, whose "top class" means nothing.
            self.unlabelled_logits = True
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def _is_distribution(self, out: np.ndarray) -> bool:
        tol = 0.01 + out.shape[1] * self.output.scale
        return bool(out.min() >= -1e-6 and out.max() <= 1 + 1e-6 and np.all(np.abs(out.sum(axis=1) - 1) <= tol))

    def scores(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """(N, classes) probabilities for one image or several."""
        x = self.prepare(images)
        if x.shape[0] == 1 or self.input.shape[0] != 1:
            return self.probabilities(self.infer(x))
        return np.concatenate([self.probabilities(self.infer(x[i:i + 1])) for i in range(x.shape[0])])

    def top(self, probs: np.ndarray, top_k: int | None = None) -> list[Category]:
        """Sorted categories of one probability row."""
        order = np.argsort(-probs, kind="stable")[: top_k or len(probs)]
        return [Category(int(i), self.labels[i], float(probs[i])) for i in order]

    def present(self, probs: np.ndarray) -> list[Category]:
        """Multi-label: the labels of one score row at or above the decision score (0.5, where each
        label's own threshold was folded), best first; empty when none is present."""
        return [c for c in self.top(probs) if c.score >= DECISION]

    def is_unknown(self, top: list[Category]) -> bool:
        """Whether the answer for these categories (best first) is "unknown" at :attr:`threshold`
        (never for a multi-label model: its answer may be the empty set, which is an answer)."""
        return not self.multi_label and is_unknown(top[0].score, self.threshold)

    def classify(self, image: np.ndarray, top_k: int | None = None) -> list[Category]:
        """Top categories for one RGB uint8 image, best first."""
        return self.top(self.scores(image)[0], top_k)

    def classify_batch(self, images: Sequence[np.ndarray], top_k: int | None = None) -> list[list[Category]]:
        """Top categories for each image of a batch."""
        return [self.top(p, top_k) for p in self.scores(images)]

    def classify_file(self, path: str | Path, top_k: int | None = None) -> list[Category]:
        """Decode an image file and classify it."""
        try:
            image = decode(path)
        except (DecodeError, OSError) as e:
            raise EdgetlError(f"cannot read image: {e}", path=path, fix="give a jpg, png, bmp, gif or webp file") from e
        return self.classify(image, top_k)


def load(path: str | Path, threads: int | None = None, labels: str | Path | None = None,
         provider: str | None = None, mean: float | None = None, std: float | None = None,
         threshold: float | None = None) -> Classifier:
    """Load a .tflite, .onnx or .keras classifier. Labels come from ``labels`` (a file), else the
    model's own metadata, else labels.txt beside it; the input contract from the model's metadata,
    else a manifest.json beside it, else defaults (0..255 pixels, squash resize), with ``mean``/``std``
    overriding the normalisation of float inputs, and ``threshold`` the model's own "unknown"
    threshold."""
    if threshold is not None and not 0 <= threshold <= 1:
        raise EdgetlError(f"--threshold {threshold} is not a score", fix="give a threshold from 0 to 1")
    path = Path(path)
    kinds = ", ".join(BACKENDS)
    if path.is_dir():
        raise EdgetlError("this is a folder, not a model file", path=path,
                          fix=f"give a {kinds} file (edgetl export writes them to RUN/export/)")
    factory = BACKENDS.get(path.suffix.lower())
    if factory is None:
        raise EdgetlError(f"'{path.suffix or path.name}' is not a model type edgetl runs", path=path,
                          fix=f"give a {kinds} file")
    if not path.is_file():
        raise EdgetlError("no such model file", path=path, fix="check the path (edgetl export writes RUN/export/)")
    backend = factory(path, threads=threads, provider=provider)
    info: ModelInfo = backend.info
    _check_image_input(path, info.input)
    _check_class_output(path, info.output)
    side = _sidecar(path)
    embedded_pixels, embedded = split_embedded(info.pixels)
    # Each source is checked on its own, then the model's own metadata wins over the side-car.
    fields = (PixelSpec.check_fields(side.get("input", {}), path.parent / MANIFEST)
              | PixelSpec.check_fields(embedded_pixels, path))
    if mean is not None and std is not None:
        fields |= {"mean": mean, "std": std}
    h, w = _input_hw(info.input)
    fields |= {k: v for k, v in (("height", h), ("width", w)) if v > 0}
    if "height" not in fields or "width" not in fields:
        raise EdgetlError("the model has a dynamic input size and no metadata saying which to use", path=path,
                          fix="export it with a fixed input size")
    pixels = PixelSpec.from_dict(fields, path)
    side_labels = check_label_list(side["labels"], path.parent / MANIFEST, "labels") if "labels" in side else None
    names, labelled = resolve_labels(int(info.output.shape[-1]), labels, info.labels or side_labels, path)
    beside = entry_for(side, path.name)
    manifest = (ModelManifest.from_dict(embedded, path) if embedded is not None
                else ModelManifest.from_dict(beside, path.parent / MANIFEST) if beside is not None else None)
    clf = Classifier(path, backend, names, pixels, info.output_kind, labelled, manifest)
    if threshold is not None:
        clf.threshold = threshold
    return clf


def _check_class_output(path: Path, t: TensorSpec) -> None:
    """A classifier's output is one score per class: (N, C), or (N, 1, 1, C) from a convolutional head."""
    shape = tuple(t.shape)
    if len(shape) < 2 or any(d != 1 for d in shape[1:-1]) or shape[-1] < 1:
        raise EdgetlError(f"output {shape} is not a vector of class scores: this is not an image classifier "
                          "(a detector, pose or segmentation model?)", path=path, fix="edgetl runs image classifiers")


def _input_hw(t: TensorSpec) -> tuple[int, int]:
    return (t.shape[2], t.shape[3]) if t.layout == "NCHW" else (t.shape[1], t.shape[2])


def _check_image_input(path: Path, t: TensorSpec) -> None:
    channels = t.shape[1] if t.layout == "NCHW" else t.shape[-1]
    if len(t.shape) != 4 or channels != 3:
        raise EdgetlError(f"the model's input {t.shape} is not an RGB image batch (N, H, W, 3)", path=path,
                          fix="edgetl runs image classifiers")
