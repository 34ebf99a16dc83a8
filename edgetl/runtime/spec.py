"""The contract a model carries: what pixels it wants and what its output means."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class PixelSpec:
    """How RGB pixels 0..255 become the model's input, before any quantization.

    The model sees ``(pixel - mean) / std``. edgetl's own models normalise inside the graph, so
    they declare mean 0, std 1 (they take 0..255). ``None`` means the model did not say.
    """

    height: int
    width: int
    mean: float | None = None
    std: float | None = None
    resize: str = "resize"
    """"resize" (squash the frame) or "center_crop"; see :mod:`edgetl.runtime.preprocess`."""

    def to_dict(self) -> dict:
        """JSON-ready form, as written into manifests and model metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PixelSpec":
        """Read what :meth:`to_dict` wrote (unknown keys ignored)."""
        return cls(**{k: d[k] for k in ("height", "width", "mean", "std", "resize") if k in d})


@dataclass
class TensorSpec:
    """One input or output tensor as the runtime sees it."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float = 0.0
    """Quantization scale; 0 for a float tensor."""
    zero_point: int = 0
    layout: str = "NHWC"

    @property
    def quantized(self) -> bool:
        """True for an integer tensor with a quantization scale."""
        return self.scale > 0 and np.issubdtype(self.dtype, np.integer)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """Real values of this tensor's contents, as float32."""
        if self.quantized:
            return (values.astype(np.float32) - self.zero_point) * np.float32(self.scale)
        return values.astype(np.float32, copy=False)


@dataclass
class ModelInfo:
    """What a backend tells about a loaded model."""

    input: TensorSpec
    output: TensorSpec
    labels: list[str] | None = None
    pixels: dict = field(default_factory=dict)
    """Embedded or side-car :class:`PixelSpec` fields (may be partial)."""
    output_kind: str | None = None
    """"probabilities" when the model says so (edgetl's own end in softmax); None to detect from the
    values (softmax is applied unless they already form a distribution)."""
