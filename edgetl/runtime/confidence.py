"""When the model does not know: calibrated scores and the top score below which the answer is
"unknown". TensorFlow-free: training chooses, every runtime applies.

Training fits a temperature on the held-out images (one scalar dividing the logits: the standard
post-hoc calibration of Guo et al., "On Calibration of Modern Neural Networks", 2017) and folds it
into the classifier's last layer, so every exported file, MediaPipe included, gives calibrated
scores and no runtime has to know about it. It then chooses the threshold that keeps a target
precision on the held-out images and, when the user gives some, on images of none of the classes
(every one of those accepted counts as a mistake)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.text import finite_number, shown
from edgetl.runtime.unknown_rule import FeatureRule

UNKNOWN = "unknown"
"""What edgetl answers when the top score is under the threshold."""
DEFAULT_MIN_PRECISION = 0.95
TEMPERATURES = np.exp(np.linspace(np.log(0.2), np.log(10.0), 241))
"""Temperatures tried (1.6 % apart): a grid, as the loss in one scalar is cheap to evaluate and a
grid cannot diverge."""
BINS = 10
"""Equal-width confidence bins of the expected calibration error and the reliability diagram."""


@dataclass(frozen=True)
class Confidence:
    """How far a model's top score can be trusted, as training measured it: part of the artifact
    contract (the manifest; the threshold also in TFLite's score-threshold metadata)."""

    threshold: float
    """Top score below which the answer is "unknown"."""
    min_precision: float
    """The precision the threshold was chosen to keep."""
    precision: float
    """Of the answers given at the threshold, the share that was right (held-out images, plus the
    unknown images when there were some, each accepted one a mistake)."""
    coverage: float
    """Share of held-out images answered (not "unknown") at the threshold."""
    reached: bool
    """Whether some threshold kept ``min_precision`` (else the one with the best precision)."""
    images: int
    """Held-out images it was chosen on."""
    temperature: float = 1.0
    """Folded into the model's last layer at training (1.0: none)."""
    ece_before: float | None = None
    """Expected calibration error of the held-out scores before the temperature."""
    ece_after: float | None = None
    unknown_images: int = 0
    """Images of none of the classes it was chosen with (``train --unknown DIR``)."""
    unknown_rejected: float | None = None
    """Share of those answered "unknown" at the threshold."""
    feature_rule: FeatureRule | None = None
    """The rule from the classes' own images, folded into the model's scores (None: a run from
    before it, or one trained with ``--answer-rate 1``); :attr:`threshold` is then at least
    :func:`edgetl.runtime.unknown_rule.score_floor`."""
    softmax_threshold: float | None = None
    """The threshold chosen on the softmax scores alone, when the feature rule raised it."""

    def to_dict(self) -> dict:
        """JSON-ready form."""
        out = {k: v for k, v in asdict(self).items() if v is not None and k != "feature_rule"}
        return out | ({"feature_rule": self.feature_rule.to_dict()} if self.feature_rule else {})

    @classmethod
    def from_dict(cls, d: object, source: object) -> "Confidence":
        """Read :meth:`to_dict`'s form, each number checked (a crafted manifest is one error)."""
        def bad(why: str) -> EdgetlError:
            return EdgetlError(f"manifest field 'confidence' {why}", path=source, fix="re-export the model with edgetl")

        if not isinstance(d, dict):
            raise bad("is not a mapping")
        values: dict = {}
        for name in ("threshold", "min_precision", "precision", "coverage", "temperature", "ece_before", "ece_after",
                     "unknown_rejected", "softmax_threshold"):
            v = d.get(name)
            if v is None and name not in ("threshold", "min_precision", "precision", "coverage"):
                continue
            number = finite_number(v)
            if number is None:
                raise bad(f"has {name} {shown(v)}, not a number")
            if name == "temperature" and not 0 < number <= 1000:
                raise bad(f"has temperature {shown(v)}: a temperature divides the logits, so it is above 0")
            if name != "temperature" and not 0 <= number <= 1:
                raise bad(f"has {name} {shown(v)}, outside 0..1")
            values[name] = number
        for name in ("images", "unknown_images"):
            v = d.get(name, 0)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2 ** 63:
                raise bad(f"has {name} {shown(v)}, not a count")
            values[name] = v
        reached = d.get("reached", True)
        if not isinstance(reached, bool):
            raise bad(f"has reached {shown(reached)}, not true or false")
        rule = FeatureRule.from_dict(d["feature_rule"], source) if d.get("feature_rule") is not None else None
        return cls(reached=reached, feature_rule=rule, **values)


def threshold_rule(threshold: float) -> str:
    """The softmax threshold's rule in words, the same in the log, the summary and the report."""
    return f"answers under {threshold:.3f} are \"unknown\"" if threshold > 0 else "no answer is \"unknown\" (threshold 0)"


def is_unknown(top_score: float, threshold: float) -> bool:
    """The answer for a top score: unknown when it is under the threshold."""
    return top_score < threshold


def _logits(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax probabilities at ``temperature``: what folding it into the last layer makes of them."""
    z = _logits(probs) / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _nll(probs: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = with_temperature(probs, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())


MIN_IMAGES = 50
"""Held-out images a temperature is fitted on at the least: on 30 a fitted temperature once made the
calibration error 0.043 -> 0.101."""


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> tuple[float, str]:
    """The temperature with the least negative log-likelihood of ``labels`` (a grid from 0.2 to 10),
    and what was decided in words. The scores stay as trained (temperature 1) on fewer than
    :data:`MIN_IMAGES` images, when every held-out image is right (the likelihood then only grows
    as scores sharpen, which says nothing about how sure a mistake is), and when the fitted
    temperature would not lower the calibration error."""
    labels = np.asarray(labels)
    n = len(labels)
    if n < MIN_IMAGES:
        return 1.0, f"{n} held-out images are too few to fit a temperature on ({MIN_IMAGES} or more): scores left as trained"
    if np.all(probs.argmax(1) == labels):
        return 1.0, "every held-out image was right, so nothing shows how sure a mistake is: scores left as trained"
    losses = [_nll(probs, labels, t) for t in TEMPERATURES]
    best = float(TEMPERATURES[int(np.argmin(losses))])
    before, after = expected_calibration_error(probs, labels), expected_calibration_error(with_temperature(probs, best), labels)
    if after > before:
        return 1.0, (f"the fitted temperature {best:.3f} would raise the calibration error on the {n} held-out images "
                     f"({before:.3f} -> {after:.3f}): scores left as trained")
    return best, f"temperature {best:.3f} fitted on {n} held-out images"


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per confidence bin (top score in equal-width bins): the mean top score, the accuracy and
    the image count (bins with no image left out): the reliability diagram's points."""
    top, right = probs.max(1), probs.argmax(1) == np.asarray(labels)
    which = np.minimum((top * bins).astype(int), bins - 1)
    return [{"low": b / bins, "high": (b + 1) / bins, "confidence": float(top[which == b].mean()),
             "accuracy": float(right[which == b].mean()), "count": int((which == b).sum())}
            for b in range(bins) if (which == b).any()]


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Mean gap between confidence and accuracy, bins weighted by their share of images."""
    n = len(labels)
    return float(sum(abs(b["confidence"] - b["accuracy"]) * b["count"] for b in reliability(probs, labels, bins)) / max(n, 1))


def choose_threshold(probs: np.ndarray, labels: np.ndarray, min_precision: float = DEFAULT_MIN_PRECISION,
                     unknown_probs: np.ndarray | None = None) -> tuple[float, float, float, bool, float | None]:
    """The lowest threshold whose precision (right answers over answers given, each unknown image
    answered a mistake) is at least ``min_precision``: the most images answered at that precision.
    When none reaches it, the threshold with the best precision. Returns (threshold, precision,
    coverage, reached, share of unknown images rejected)."""
    known = probs.max(1)
    right = probs.argmax(1) == np.asarray(labels)
    unknown = unknown_probs.max(1) if unknown_probs is not None and len(unknown_probs) else np.zeros(0)
    candidates = np.unique(np.concatenate([[0.0], known, unknown]))
    best = None
    for t in candidates:  # ascending: the first that reaches the precision answers the most images
        accepted = known >= t
        answered = accepted.sum() + (unknown >= t).sum()
        if not answered:
            break
        precision = float((right & accepted).sum() / answered)
        if precision >= min_precision:
            best = (float(t), precision, True)
            break
        if best is None or precision > best[1]:
            best = (float(t), precision, False)
    if best is None:  # no image at all
        return 0.0, 0.0, 0.0, False, None
    t, precision, reached = best
    rejected = float((unknown < t).mean()) if len(unknown) else None
    return t, precision, float((known >= t).mean()), reached, rejected


def calibrate(probs: np.ndarray, labels: np.ndarray, min_precision: float = DEFAULT_MIN_PRECISION,
              unknown_probs: np.ndarray | None = None) -> tuple[Confidence, str]:
    """Temperature and threshold from uncalibrated held-out probabilities (and, optionally, the
    model's probabilities on images of none of the classes). Returns the :class:`Confidence` and
    the temperature's reason in words."""
    temperature, why = fit_temperature(probs, labels)
    after = with_temperature(probs, temperature)
    unknown_after = with_temperature(unknown_probs, temperature) if unknown_probs is not None else None
    t, precision, coverage, reached, rejected = choose_threshold(after, labels, min_precision, unknown_after)
    return Confidence(t, min_precision, precision, coverage, reached, len(labels), temperature,
                      expected_calibration_error(probs, labels), expected_calibration_error(after, labels),
                      0 if unknown_probs is None else len(unknown_probs), rejected), why


def risk_coverage(probs: np.ndarray, labels: np.ndarray, points: int = 20) -> list[dict]:
    """Accuracy of the answers given against the share of images answered, as the threshold rises:
    ``points`` evenly spaced coverages from 1 down (the report's risk-coverage curve)."""
    top, right = probs.max(1), probs.argmax(1) == np.asarray(labels)
    order = np.argsort(-top, kind="stable")
    hits = np.cumsum(right[order])
    n = len(top)
    out = []
    for k in sorted({max(1, int(round(n * (i + 1) / points))) for i in range(points)}, reverse=True):
        out.append({"coverage": k / n, "accuracy": float(hits[k - 1] / k), "threshold": float(top[order][k - 1])})
    return out
