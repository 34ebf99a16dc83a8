"""The contract a model carries: what pixels it wants and what its output means."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.image import RESIZE_METHODS
from edgetl.text import finite_number, shown


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
    """"resize" (squash the frame) or "center_crop"; see :mod:`edgetl.image`."""

    def to_dict(self) -> dict:
        """JSON-ready form, as written into manifests and model metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: object, source: str | Path = "the model") -> "PixelSpec":
        """Read what :meth:`to_dict` wrote (unknown keys ignored), checking every field's type and
        value: a crafted or damaged contract is an error naming ``source`` and the field."""
        values = cls.check_fields(d, source)
        missing = [k for k in ("height", "width") if k not in values]
        if missing:
            raise EdgetlError(f"input contract has no {' or '.join(missing)}", path=source,
                              fix="re-export the model with edgetl")
        return cls(**values)

    @staticmethod
    def check_fields(d: object, source: str | Path = "the model") -> dict:
        """The known fields of a possibly partial contract, each checked (see :meth:`from_dict`)."""
        def bad(field: str, why: str) -> EdgetlError:
            return EdgetlError(f"input contract field '{field}' {why}", path=source,
                               fix="re-export the model with edgetl, or give a model without this metadata")

        if not isinstance(d, dict):
            raise bad("input", "is not a mapping")
        values: dict = {}
        for key in ("height", "width"):
            if key in d:
                v = d[key]
                if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= 16384:
                    raise bad(key, f"is {shown(v)}, not a size in pixels")
                values[key] = v
        for key in ("mean", "std"):
            if d.get(key) is not None:
                v = d[key]
                number = finite_number(v)
                if number is None:
                    raise bad(key, f"is {shown(v)}, not a number")
                values[key] = number
        if values.get("std") == 0:
            raise bad("std", "is 0 (pixels would be divided by zero)")
        if "resize" in d:
            if d["resize"] not in RESIZE_METHODS:
                raise bad("resize", f"is {d['resize']!r}, not one of {', '.join(RESIZE_METHODS)}")
            values["resize"] = d["resize"]
        return values


def guess_layout(shape: tuple[int, ...]) -> str:
    """NCHW for a 4-D tensor with 3 channels second (and not last), else NHWC: what PyTorch-born
    ONNX and TFLite models look like, told apart without metadata."""
    return "NCHW" if len(shape) == 4 and shape[1] == 3 and shape[3] != 3 else "NHWC"


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
