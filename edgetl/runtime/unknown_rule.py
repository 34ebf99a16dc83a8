"""The "unknown" rule every edgetl model carries from its classes' own images: how far an image's
features stand from the nearest class.

Training keeps, per class, the mean direction of the pooled backbone features of its training
images (class statistics: one vector per class, whatever the number of images). An image whose
features point away from every class (cosine similarity to the nearest mean under ``threshold``)
is none of the classes. The decision is folded into the model's own scores, so every runtime
reads it with the score threshold it already applies::

    scores = softmax(logits) * sigmoid(sharpness * (nearest_similarity - threshold))

Known images keep their scores (the factor is 1 to three decimals a few hundredths above the
threshold); an image under the threshold has every class scaled towards 0, under the manifest's
score threshold (at least :func:`score_floor`), which MediaPipe and every consumer of the TFLite
metadata apply as they are. Bottom layer: no TensorFlow.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from edgetl.errors import EdgetlError
from edgetl.text import finite_number, shown

KIND = "nearest-class-cosine"
"""Cosine similarity of the unit-normalised pooled features to the nearest class mean."""
LAYER_PREFIX = "unknown_"
"""Every layer of the folded rule is named with this prefix; the int8 exports keep those layers in
float by it (a sum of 1,280 squares and a steep gate lose too much in 8 bits; they are a few
hundred operations against the backbone's millions)."""
SHARPNESS = 150.0
"""Slope of the folded gate, per unit of cosine similarity: 0.02 above the threshold keeps 95 % of
a score, 0.04 above it 99.8 %."""


def score_floor(num_classes: int) -> float:
    """The least score threshold a model with the rule inside carries: half the lowest top score a
    softmax over ``num_classes`` can give (1/K), so a known image always clears it, while the gate
    takes an image under the rule's threshold below it."""
    return 0.5 / max(num_classes, 1)


@dataclass(frozen=True)
class FeatureRule:
    """The feature-distance rule as it was chosen (the manifest's typed record of it)."""

    threshold: float
    """Cosine similarity to the nearest class mean under which an image is "unknown"."""
    answer_rate: float
    """The share of validation images it was chosen to answer (``--answer-rate``)."""
    answered: float
    """The share of validation images it answers (the rule alone)."""
    accuracy_answered: float
    """Accuracy on those answered validation images."""
    accuracy_all: float
    """Accuracy on every validation image, for comparison: what answering everything gives."""
    images: int
    """Validation images it was chosen on."""
    class_images: int
    """Training images whose features made the class means."""
    sharpness: float = SHARPNESS
    kind: str = KIND

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: object, source: object) -> "FeatureRule":
        """Read :meth:`to_dict`'s form, every field checked (a crafted manifest is one error)."""
        def bad(why: str) -> EdgetlError:
            return EdgetlError(f"manifest field 'confidence.feature_rule' {why}", path=source,
                               fix="re-export the model with edgetl")

        if not isinstance(d, dict):
            raise bad("is not a mapping")
        if d.get("kind", KIND) != KIND:
            raise bad(f"has kind {shown(d.get('kind'))}; this edgetl knows {KIND!r}")
        values: dict = {}
        for name, low, high in (("threshold", -1.0, 1.0), ("answer_rate", 0.0, 1.0), ("answered", 0.0, 1.0),
                                ("accuracy_answered", 0.0, 1.0), ("accuracy_all", 0.0, 1.0),
                                ("sharpness", 1e-6, 1e6)):
            number = finite_number(d.get(name, SHARPNESS if name == "sharpness" else None))
            if number is None or not low <= number <= high:
                raise bad(f"has {name} {shown(d.get(name))}, not a number from {low:g} to {high:g}")
            values[name] = number
        for name in ("images", "class_images"):
            v = d.get(name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2 ** 53:
                raise bad(f"has {name} {shown(v)}, not a count")
            values[name] = v
        return cls(**values)

    def said(self) -> str:
        """The rule in one line, for the log, the summary and the report."""
        return (f"features farther from every class than cosine similarity {self.threshold:.3f} are \"unknown\" "
                f"(chosen on {self.images} val images to answer {self.answer_rate:.0%}: answers {self.answered:.1%}, "
                f"accuracy {self.accuracy_answered:.4f} on those against {self.accuracy_all:.4f} on all; class means "
                f"from {self.class_images} training images)")
