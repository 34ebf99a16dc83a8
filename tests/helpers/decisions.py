"""What edgetl guarantees when the same model answers on two CPUs, runtimes or formats.

Training is not bit-exact across x86 CPUs and int8 kernels differ by an output step from one CPU
to another, so which images sit near a decision boundary moves from machine to machine. What
holds everywhere: every score agrees within the stated tolerance, and the top label agrees on
every image whose reference margin (top score minus the runner-up) is wider than twice that
tolerance. An image inside that band may go either way; the agreement floor bounds how many do.

The same holds for the "unknown" rule folded into the scores (softmax x a steep gate on the
features' distance to the nearest class): where the gate is saturated the scores sum to 1 and the
guarantee above applies; an image whose features sit at the rule's threshold has its scores
scaled by a factor the steep gate amplifies from the CPUs' rounding, so it is borderline too.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """One image's answer as predict/live --json give it: labels and scores, best first."""

    label: str
    margin: float
    scores: dict[str, float]
    gated: bool = False
    """The scores (every class listed) sum to clearly under 1: the "unknown" rule's gate scaled them."""

    @classmethod
    def from_doc(cls, doc: dict, classes: int | None = None) -> "Answer":
        top = doc["top"]
        margin = top[0]["score"] - top[1]["score"] if len(top) > 1 else 1.0
        gated = classes is not None and len(top) == classes and sum(t["score"] for t in top) < 0.97
        return cls(top[0]["label"], margin, {t["label"]: t["score"] for t in top}, gated)


def assert_answers_agree(reference: list[dict], other: list[dict], tolerance: float | None, *,
                         band: float | None = None, floor: float = 0.9, what: str = "", classes: int | None = None) -> int:
    """Assert `other` answers as `reference` does, within what edgetl guarantees.

    tolerance: the largest score difference allowed (None: scores are not compared).
    band: a reference margin at or under it lets the top label differ; default twice the tolerance.
    floor: the fraction of images whose top label must agree, borderline ones included.
    classes: the model's class count, when the answers list every class: an image the "unknown"
        rule's gate scaled (on either side) is then borderline.
    Returns how many images were borderline (so a caller can bound other counts by it).
    """
    assert len(reference) == len(other) and reference, (what, len(reference), len(other))
    band = 2 * (tolerance or 0.0) if band is None else band
    borderline = same = 0
    for ref_doc, doc in zip(reference, other):
        ref, got = Answer.from_doc(ref_doc, classes), Answer.from_doc(doc, classes)
        same += ref.label == got.label
        if ref.gated or got.gated:
            borderline += 1
            continue
        if ref.margin <= band:
            borderline += 1
        else:
            assert ref.label == got.label, (what, "a clear answer changed", ref_doc, doc)
        if tolerance is not None:
            shared = ref.scores.keys() & got.scores.keys()
            assert shared and max(abs(ref.scores[k] - got.scores[k]) for k in shared) <= tolerance, (
                what, f"scores differ by more than {tolerance}", ref_doc, doc)
    assert same >= floor * len(reference), (what, f"top-1 agreement {same}/{len(reference)} under {floor:.0%}")
    return borderline
