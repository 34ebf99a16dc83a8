"""The export gate's three verdicts, on the evidence (exact McNemar on the images the models disagree on)."""
from __future__ import annotations

import json

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


def test_a_model_no_better_than_chance_is_named():
    """Three balanced classes: 50 of 150 right is what always answering one class gets; 70 of 150 is
    not proven better either (p > 5 %); 90 is. A 90 % majority class makes 135 of 150 chance too."""
    from edgetl.exporting.gate import no_better_than_chance

    balanced = np.repeat([0, 1, 2], 50)
    assert "no better than chance: 50 of 150" in no_better_than_chance(balanced, 50, 3)
    assert no_better_than_chance(balanced, 58, 3) is not None
    assert no_better_than_chance(balanced, 90, 3) is None
    skewed = np.array([0] * 135 + [1] * 15)
    assert "gets 0.900" in no_better_than_chance(skewed, 135, 2)


def test_the_report_ships_nothing_from_a_model_at_chance(tmp_path):
    from edgetl.report import write_report

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "config.yaml").write_text("backbone: efficientnet_b0\nsize: 48\nalpha: null\n")
    (run / "metrics.json").write_text(json.dumps({"val_accuracy": 0.333}))
    check = {"file": "model_fp32.tflite", "format": "tflite", "precision": "fp32", "passed": True, "verdict": "passed",
             "accuracy": 0.333, "drop_points": 0.0, "agreement": 1.0, "max_prob_diff": 0.0, "size_bytes": 1000,
             "latency_ms": 1.0}
    (run / "export" / "report.json").write_text(json.dumps({"checks": [check], "chance_warning": "the model itself is "
                                                            "no better than chance: 16 of 48"}))
    html = write_report(run).read_text()
    ship = html.split('id="ship-this">', 1)[1].split("</div>", 1)[0]
    assert ship.startswith("Nothing to ship: the model itself is no better than chance") and "model_fp32" not in ship
    settings = html.split("Settings and versions", 1)[1]
    assert "None" not in settings and "<td>alpha</td><td>—</td>" in settings.replace(' data-v=""', "")


def test_delta_points_are_never_negative_zero():
    from edgetl.exporting.verify import Check

    check = Check("m", "tflite", "int8", 1, 0.9, 1e-12, 1.0, 0.0, 1.0, "x", True)
    assert f"{check.delta_points:+.2f}" == "+0.00"


def test_tiny_held_out_set_is_called_too_small():
    from edgetl.exporting.formats import Gates
    from edgetl.exporting.verify import too_few_images

    assert "only 6 held-out images" in too_few_images(6, Gates()) and "about 150 images" in too_few_images(6, Gates())
    assert too_few_images(153, Gates()) is None


def test_too_few_held_out_images_to_prove_the_gates_is_said():
    """36 held-out images (a shrunk demo) cannot prove 98 % agreement or a 1-point drop: said, with the count that would."""
    from edgetl.exporting.formats import Gates
    from edgetl.exporting.verify import too_few_images

    why = too_few_images(36, Gates())
    assert why is not None and "one image moves accuracy by 2.8 points" in why and "about 150 images would" in why
    assert too_few_images(400, Gates()) is None


def test_a_label_that_loses_on_the_evidence_refuses_even_when_the_sets_hold_up():
    """Multi-label, 300 images: on 5 whose set Keras already gets wrong (label b), the artifact
    also flips label a from right to wrong. The sets: 98.3 % agreement, no set lost (wrong before,
    wrong after), so they pass; label a alone loses 5 images and gains none (1.67 points, p = 0.03),
    and its own verdict refuses the artifact."""
    from edgetl.exporting.gate import judge_label_sets

    n = 300
    truth = np.zeros((n, 2), bool)
    truth[:, 0] = True
    reference = truth.copy()
    reference[:5, 1] = True  # Keras wrong on label b for the first 5 images
    artifact = reference.copy()
    artifact[:5, 0] = False  # the artifact loses label a on exactly those
    evidence, verdict = judge_label_sets(truth, reference, artifact, ["a", "b"], max_drop=1.0, min_agreement=0.98)
    assert evidence.lost == 0 and evidence.gained == 0 and evidence.agreement > 0.98  # the sets hold up
    assert verdict.status == "refused" and "label 'a'" in verdict.reason, verdict
    same, ok = judge_label_sets(truth, reference, reference.copy(), ["a", "b"], 1.0, 0.98)
    assert ok.status == "passed" and same.agreement == 1.0
