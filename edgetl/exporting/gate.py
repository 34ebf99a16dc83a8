"""The export gate: does an artifact lose accuracy against the Keras model, on the evidence?

A drop of two images out of 153 is 1.31 points, over a 1-point limit, yet no test can tell it from
chance: the two models answer the same image differently on only a handful of images, and what
decides is how those split. The gate therefore judges the images where the two disagree, with the
exact McNemar test (a binomial test on the discordant pairs), together with the point estimates:

- **passed**: the accuracy drop and the top-1 agreement are within the limits;
- **refused**: a limit is missed *and* the evidence says so (one-sided p < ``alpha``);
- **not proven**: a limit is missed on these images but they cannot tell it from chance; the
  artifact is kept and the verdict says how many held-out images would decide it.

``strict`` is the old rule: the point estimates alone decide (passed or refused)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

ALPHA = 0.05
"""One-sided significance a refusal needs."""


class Status(StrEnum):
    """The gate's verdict on one artifact (a string in JSON and on screen)."""

    PASSED = "passed"
    NOT_PROVEN = "not proven"
    """A limit was missed on these images but not beyond chance: kept, and said so."""
    REFUSED = "refused"

    @property
    def kept(self) -> bool:
        """Shipped: passed, or not proven either way."""
        return self is not Status.REFUSED


PASSED, REFUSED, NOT_PROVEN = Status.PASSED, Status.REFUSED, Status.NOT_PROVEN


@dataclass(frozen=True)
class Evidence:
    """The paired outcome of Keras and an artifact on the same held-out images."""

    n: int
    lost: int
    """Images Keras classifies right and the artifact wrong."""
    gained: int
    """Images the artifact classifies right and Keras wrong."""
    disagree: int
    """Images whose top-1 class differs between the two (right or wrong)."""

    @classmethod
    def of(cls, labels: np.ndarray, reference: np.ndarray, artifact: np.ndarray) -> "Evidence":
        """From true labels and the two models' top-1 predictions."""
        ref_ok, art_ok = reference == labels, artifact == labels
        return cls(int(len(labels)), int((ref_ok & ~art_ok).sum()), int((~ref_ok & art_ok).sum()),
                   int((reference != artifact).sum()))

    @property
    def drop_points(self) -> float:
        """Accuracy lost, in points (negative when the artifact is better)."""
        return 100.0 * (self.lost - self.gained) / max(self.n, 1)

    @property
    def agreement(self) -> float:
        """Share of images on which the two give the same top-1 class."""
        return 1.0 - self.disagree / max(self.n, 1)

    def counts(self) -> str:
        """The evidence in words."""
        return (f"{self.disagree} of {self.n} images answered differently: {self.lost} lost, {self.gained} gained")


@dataclass(frozen=True)
class Verdict:
    """What the gate decided, and why."""

    status: Status
    reason: str = ""
    p_value: float | None = None
    """One-sided p of the failed limit (None when no limit was missed)."""
    images_to_decide: int | None = None
    """For "not proven": about how many held-out images, at the rates seen, would decide it."""

    @property
    def ships(self) -> bool:
        """Kept as an artifact (passed, or not proven either way)."""
        return self.status != REFUSED


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq, ln = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    # in log space: math.comb(n, i) * p ** i overflows a float past a few hundred images
    return min(1.0, sum(math.exp(ln - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq)
                        for i in range(k, n + 1)))


def mcnemar_p(lost: int, gained: int) -> float:
    """One-sided exact McNemar p-value that the artifact loses more images than it gains."""
    return binomial_tail(lost, lost + gained, 0.5)


def images_to_decide(n: int, lost: int, gained: int) -> int | None:
    """Images that would make the same split of ``lost`` and ``gained`` (of ``n`` images) significant
    in the direction it leans, or None when the split is even (no number of such images decides it)."""
    discordant = lost + gained
    if discordant == 0 or lost == gained:
        return None
    share = max(lost, gained) / discordant
    for m in _growing(discordant, 100 * discordant):
        big = math.ceil(share * m)
        if mcnemar_p(big, m - big) < ALPHA:
            return math.ceil(m * n / discordant)
    return None


def _images_for_drop(e: Evidence) -> int | None:
    """Held-out images that would make the same split of discordant pairs significant (a loss only)."""
    return images_to_decide(e.n, e.lost, e.gained) if e.lost > e.gained else None


def _growing(start: int, stop: int):
    """start, then about 5 % more each step, up to stop: a search over sizes in a few dozen tries."""
    n = start
    while n <= stop:
        yield n
        n = max(n + 1, math.ceil(n * 1.05))


def _images_for_agreement(e: Evidence, limit: float) -> int | None:
    """Held-out images that would make the disagreement rate seen significantly above 1 - limit."""
    rate = e.disagree / max(e.n, 1)
    if rate <= 1 - limit:
        return None
    for n in _growing(e.n, 100 * e.n):
        if binomial_tail(math.ceil(rate * n), n, 1 - limit) < ALPHA:
            return n
    return None


def judge(e: Evidence, max_drop: float, min_agreement: float, strict: bool = False) -> Verdict:
    """The gate's verdict on one artifact (see the module docstring)."""
    misses: list[tuple[str, float, int | None]] = []
    if e.drop_points > max_drop + 1e-9:
        misses.append((f"accuracy drop {e.drop_points:.2f} points > {max_drop:g}", mcnemar_p(e.lost, e.gained),
                       _images_for_drop(e)))
    if e.agreement < min_agreement - 1e-9:
        misses.append((f"agreement {e.agreement:.1%} < {min_agreement:.0%}",
                       binomial_tail(e.disagree, e.n, 1 - min_agreement), _images_for_agreement(e, min_agreement)))
    if not misses:
        return Verdict(PASSED, e.counts())
    if strict:
        return Verdict(REFUSED, f"{misses[0][0]} (strict gates; {e.counts()})", misses[0][1])
    proven = [m for m in misses if m[1] < ALPHA]
    if proven:
        what, p, _ = proven[0]
        return Verdict(REFUSED, f"{what}, and the evidence says so ({e.counts()}; p = {p:.2g})", p)
    what, p, need = misses[0]
    decide = f"; about {need} held-out images would decide it" if need else ""
    return Verdict(NOT_PROVEN, f"{what} on these images, but not beyond chance ({e.counts()}; p = {p:.2g}){decide}",
                   p, need)


def no_better_than_chance(labels: np.ndarray, correct: int, classes: int) -> str | None:
    """Why a model's held-out accuracy does not beat always answering the most common class (an
    exact one-sided binomial test at 5 %), or None when it does. Every artifact of such a model
    matches it faithfully: the gates compare artifacts with the model, not the model with chance."""
    n = len(labels)
    if n == 0:
        return None
    majority = int(np.bincount(labels, minlength=classes).max())
    if binomial_tail(correct, n, majority / n) <= 0.05 and correct > majority:
        return None
    return (f"the model itself is no better than chance: {correct} of {n} held-out images right "
            f"({correct / n:.3f}), while always answering its most common class gets {majority / n:.3f}; "
            "its artifacts are faithful copies of a model not worth shipping (train longer, check the data, "
            "or try another backbone)")


_SEVERITY = {PASSED: 0, NOT_PROVEN: 1, REFUSED: 2}


def worse(first: Verdict, second: Verdict, second_what: str) -> Verdict:
    """The more severe of two verdicts on one artifact (``second_what`` names the second in its reason)."""
    if _SEVERITY[second.status] > _SEVERITY[first.status]:
        return Verdict(second.status, f"{second_what}: {second.reason}", second.p_value, second.images_to_decide)
    return first


def judge_label_sets(truth: np.ndarray, reference: np.ndarray, artifact: np.ndarray, labels: list[str],
                     max_drop: float, min_agreement: float, strict: bool = False) -> tuple[Evidence, Verdict]:
    """A multi-label artifact's verdict from 0/1 (N, labels) decisions: each image's set of labels
    judged as a class is (right when the whole set is), then each label's own decisions by the
    same rule, the most severe verdict kept. A label can lose on the evidence while the sets do not
    (its flips land on images whose set was already wrong), and then it decides."""
    from edgetl.data.audit import set_codes

    evidence = Evidence.of(*set_codes(truth, reference, artifact))
    verdict = judge(evidence, max_drop, min_agreement, strict)
    for i, label in enumerate(labels):
        per = Evidence.of(truth[:, i], reference[:, i], artifact[:, i])
        verdict = worse(verdict, judge(per, max_drop, min_agreement, strict), f"label {label!r}")
    return evidence, verdict


def decisions(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Each image's answer as a number: its top class, or -1 for "unknown" (top score under ``threshold``)."""
    return np.where(probs.max(1) < threshold, -1, probs.argmax(1))


MARKS = {PASSED: "✓", NOT_PROVEN: "?", REFUSED: "✗"}
"""One character per verdict, for tables and logs."""
COLOURS = {PASSED: "green", NOT_PROVEN: "yellow", REFUSED: "red"}


def mark(verdict: str, markup: bool = True) -> str:
    """The verdict's mark (✓, ? or ✗; anything unknown is ✗), in rich markup by default."""
    status = verdict if verdict in MARKS else REFUSED
    return f"[{COLOURS[status]}]{MARKS[status]}[/]" if markup else MARKS[status]
