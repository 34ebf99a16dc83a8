"""The export gate's three verdicts, on the evidence (exact McNemar on the images the models disagree on)."""
from __future__ import annotations

import numpy as np
import pytest

from edgetl.exporting.gate import NOT_PROVEN, PASSED, REFUSED, Evidence, binomial_tail, judge, mcnemar_p


def outcome(n: int, lost: int, gained: int, swapped: int = 0) -> Evidence:
    """Labels and two models' predictions on n images: ``lost`` that only Keras gets right,
    ``gained`` that only the artifact gets right, ``swapped`` wrong in both but differently."""
    labels = np.zeros(n, int)
    ref, art = labels.copy(), labels.copy()
    art[:lost] = 1
    ref[lost:lost + gained] = 1
    ref[lost + gained:lost + gained + swapped], art[lost + gained:lost + gained + swapped] = 1, 2
    return Evidence.of(labels, ref, art)


def test_exact_binomial_and_mcnemar():
    assert binomial_tail(2, 2, 0.5) == pytest.approx(0.25) and mcnemar_p(2, 0) == pytest.approx(0.25)
    assert mcnemar_p(5, 0) == pytest.approx(1 / 32) and mcnemar_p(0, 0) == 1.0
    assert binomial_tail(3, 10, 0.1) == pytest.approx(1 - sum(
        __import__("math").comb(10, i) * 0.1 ** i * 0.9 ** (10 - i) for i in range(3)))


def test_two_flips_on_153_images_are_not_proven_not_refused():
    """hymenoptera's int8 TFLite on an Intel Xeon: 2 of 153 images lost, none gained (-1.31 points)."""
    e = outcome(153, lost=2, gained=0)
    assert e.drop_points == pytest.approx(1.307, abs=1e-3) and e.agreement == pytest.approx(151 / 153)
    v = judge(e, max_drop=1.0, min_agreement=0.98)
    assert v.status == NOT_PROVEN and v.ships and v.p_value == pytest.approx(0.25)
    assert "2 lost, 0 gained" in v.reason and v.images_to_decide == 383, v.reason  # 5 discordant at that rate
    assert judge(e, 1.0, 0.98, strict=True).status == REFUSED  # the strict rule, when asked for


def test_a_model_that_truly_loses_accuracy_is_refused():
    v = judge(outcome(1000, lost=40, gained=5), max_drop=1.0, min_agreement=0.98)
    assert v.status == REFUSED and not v.ships and v.p_value < 1e-6 and "the evidence says so" in v.reason


def test_within_the_limits_passes_whatever_the_split():
    assert judge(outcome(1000, lost=8, gained=2), 1.0, 0.98).status == PASSED
    assert judge(outcome(153, lost=0, gained=1), 1.0, 0.98).status == PASSED


def test_agreement_is_judged_on_its_own_evidence():
    # as many gained as lost (no drop) but 6 % of answers changed: agreement is proven short of 98 %
    v = judge(outcome(1000, lost=30, gained=30), 1.0, 0.98)
    assert v.status == REFUSED and "agreement" in v.reason
    # 3 of 100 changed: short of 98 % on these images, not beyond chance
    assert judge(outcome(100, lost=0, gained=0, swapped=3), 1.0, 0.98).status == NOT_PROVEN
