"""The golden check: a handful of held-out images at the model's input size and what each exported
artifact answered on them at export time, kept beside the artifacts (``golden.npy`` and the
manifest's ``golden`` entry). Running them again, here or on a device, shows that the model there
answers as it did on the workstation: same preprocessing contract, a runtime that computes the
same, an uncorrupted copy.

numpy and a runtime only: this runs on the device."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.runtime.folder_manifest import ExportManifest
from edgetl.runtime.manifest import MANIFEST

GOLDEN_FILE = "golden.npy"
GOLDEN_IMAGES = 8
FLOAT_TOLERANCE = 2e-3
"""Float models: runtimes and versions agree to about 1e-4; a wrong model is off by far more."""
QUANTIZED_STEPS = 2.5
"""Quantized outputs: the same int8 model scores up to two output steps apart under different
runtime versions (LiteRT 2.3 vs tflite-runtime 2.14), measured; a wrong model is off by far more."""


def pick(labels: np.ndarray, n: int = GOLDEN_IMAGES, clear: np.ndarray | None = None) -> list[int]:
    """Indices of up to ``n`` held-out images, the classes taking turns (every class is seen).

    ``clear`` (bool per image) puts first the images clear of the "unknown" rule's threshold: its
    steep factor turns the rounding of another CPU's kernels into score changes larger than any
    tolerance for an image right at the threshold, and the golden check is there to prove the
    model is the same one, not to probe a decision boundary."""
    by_class: dict[int, list[int]] = {}
    order_of = (lambda i: (not clear[i], i)) if clear is not None else (lambda i: i)
    for i in sorted(range(len(labels)), key=order_of):
        by_class.setdefault(int(labels[i]), []).append(i)
    order: list[int] = []
    while len(order) < min(n, len(labels)):
        for items in by_class.values():
            if items and len(order) < n:
                order.append(items.pop(0))
    return order


def tolerance(clf) -> float:
    """How far a probability may move between runtimes for this model and still be the same model."""
    return QUANTIZED_STEPS * clf.output.scale + 1e-6 if clf.output.quantized else FLOAT_TOLERANCE


def probabilities(clf, pixels: np.ndarray) -> np.ndarray:
    """The model's probabilities for the golden images (already at the model's size, so the
    shared resize leaves them as they are)."""
    return clf.scores(list(pixels))


def expected(clf, pixels: np.ndarray) -> dict:
    """What to store for one artifact: its probabilities on the golden images and its tolerance."""
    return {"probabilities": np.round(probabilities(clf, pixels), 6).tolist(), "tolerance": tolerance(clf)}


@dataclass
class GoldenResult:
    """One golden image compared."""

    image: str
    expected_top1: str
    expected_score: float
    got_top1: str
    got_score: float
    max_diff: float
    ok: bool

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return self.__dict__.copy()


@dataclass
class Golden:
    """A model's golden set: the images and what the model answered at export."""

    pixels: np.ndarray
    names: list[str]
    labels: list[str]
    probabilities: np.ndarray
    tolerance: float
    sha256: str | None = None
    """The model's sha256 as its export recorded it, from the same manifest (None: none recorded)."""

    @classmethod
    def beside(cls, model: Path) -> "Golden":
        """The golden set stored with ``model`` in its export folder."""
        folder = model.parent
        where = "verify a model from an `edgetl export` folder (RUN/export/), or export again"
        if not (folder / MANIFEST).is_file():
            raise EdgetlError(f"no golden set beside the model ({MANIFEST} is missing)", path=model, fix=where)
        manifest = ExportManifest.beside(model)
        golden = manifest.golden
        if golden is None:
            raise EdgetlError("this export has no golden set (it was made before edgetl kept one)",
                              path=folder / MANIFEST, fix="export the run again: edgetl export RUN")
        entry = golden.expected.get(model.name)
        if entry is None:
            raise EdgetlError("the golden set beside it holds no answers of this model", path=model,
                              fix="verify a model this export made, or export again")
        try:
            pixels = np.load(folder / golden.file, allow_pickle=False)
            probs = np.asarray(entry.probabilities, np.float32)
        except FileNotFoundError:
            raise EdgetlError(f"no golden set beside the model ({golden.file} is missing)", path=model,
                              fix=where) from None
        except (OSError, ValueError) as e:
            raise EdgetlError(f"the golden set cannot be read ({type(e).__name__}: {e})", path=folder / golden.file,
                              fix="export again") from None
        names = golden.images
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or not len(pixels) == len(probs) == len(names) or not names:
            raise EdgetlError("the golden images do not match the manifest", path=folder / golden.file,
                              fix="export again")
        return cls(pixels, names, manifest.labels, probs, entry.tolerance, manifest.sha256(model.name))

    def compare(self, got) -> list[GoldenResult]:
        """Each image: same top-1 class, and every probability within the tolerance. An image
        without an answer (a device that answered fewer, or nothing) fails, as does an answer
        that is not a table of numbers: nothing passes unchecked."""
        try:
            have_all = np.asarray(got, np.float32)
        except (ValueError, TypeError):
            have_all = np.empty((0, 0), np.float32)
        if have_all.ndim != 2:
            have_all = np.empty((0, 0), np.float32)
        out = []
        for i, (name, want) in enumerate(zip(self.names, self.probabilities)):
            if i >= len(have_all):
                w = int(want.argmax())
                out.append(GoldenResult(name, self.labels[w], float(want[w]), "(no answer)", 0.0, float("inf"), False))
                continue
            have = have_all[i]
            w, h = int(want.argmax()), int(have.argmax()) if have.size else -1
            diff = float(np.abs(want - have).max()) if want.shape == have.shape else float("inf")
            out.append(GoldenResult(name, self.labels[w], float(want[w]), self.labels[h] if 0 <= h < len(self.labels)
                                    else str(h), float(have[h]) if have.size else 0.0, diff,
                                    w == h and diff <= self.tolerance))
        for extra in range(len(self.names), len(have_all)):  # more answers than images: not this golden set
            out.append(GoldenResult(f"(answer {extra + 1} of {len(have_all)})", "(no image)", 0.0, "?", 0.0,
                                    float("inf"), False))
        return out
