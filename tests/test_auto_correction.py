"""ABC, PixBal, LCM, PLAR and the correction records, checked against values computed by hand.

The acquisition tests use the 2×3 image of ``test_engine.py`` (two classes, two superpixels)::

    probs  (0.9, 0.1) (0.6, 0.4)  (0.2, 0.8)     superpixels 0 0 1     labels 0 1 1
           (0.7, 0.3) (0.55, 0.45) (0.3, 0.7)                0 1 1            0 0 0

Representatives: (1, 0) = (0.7, 0.3) for superpixel 0 and (0, 2) = (0.2, 0.8) for superpixel 1.
Per pixel ``f(y_x; x)``: 0.9 0.4 0.8 / 0.7 0.55 0.3.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from tiny_image import LABELS, PROBS, REPRESENTATIVES, SUPERPIXELS

from alc_backend.engine.acquisition import (
    abc_class_weights,
    label_pixel_counts,
    pixel_class_weights,
    score_superpixels,
)
from alc_backend.engine.corrections import (
    AutoCorrection,
    apply_corrections,
    changed_runs,
    corrected_pixels,
    record_changes,
    relabel_superpixels,
    still_applies,
    undo_corrections,
)
from alc_backend.engine.lcm import (
    AnsweredSuperpixels,
    LCMConfig,
    LCMProposal,
    answered_class_ranks,
    held_out_precision,
    propose_corrections,
    rarest_answered_class,
    selection_criteria,
    tail_classes,
)
from alc_backend.engine.metrics import wilson_lower_bound
from alc_backend.engine.plar import (
    ClassStatistics,
    HeldOutChanges,
    PLARConfig,
    class_statistics,
    class_sums,
    error_map,
    held_out_changes,
    nearest_classes,
    refine_labels,
    statistics_from_sums,
)


def cos(a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] * b[0] + a[1] * b[1]) / (math.hypot(*a) * math.hypot(*b))


# cosines to the representatives, as in test_engine.py
COS_00, COS_01 = cos((0.7, 0.3), (0.9, 0.1)), cos((0.7, 0.3), (0.6, 0.4))  # 0.957024, 0.983282
COS_11, COS_12 = cos((0.2, 0.8), (0.55, 0.45)), cos((0.2, 0.8), (0.3, 0.7))  # 0.802043, 0.987236


# ---------------------------------------------------------------------------------------------
# ABC
# ---------------------------------------------------------------------------------------------


def test_abc_class_weights_uniform_over_present_classes() -> None:
    # P = (6/8, 2/8) over the two present classes, U = 1/2: KL = 0.75 ln 1.5 + 0.25 ln 0.5 = 0.130812
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kl == pytest.approx(0.130812, abs=1e-6)
    # w_0 = (min n / n_0) ^ KL^3 = (2/6) ^ 0.0022385 = 0.997544; w_1 = (2/2)^... = 1; absent class: 1
    weights = abc_class_weights(np.array([6, 2, 0]))
    assert weights == pytest.approx([(2 / 6) ** kl**3, 1.0, 1.0])
    assert weights[0] == pytest.approx(0.997544, abs=1e-6)
    assert weights.dtype == np.float64


def test_abc_class_weights_uniform_over_all_classes() -> None:
    # U = 1/3 over all three classes: KL = 0.75 ln(0.75 * 3) + 0.25 ln(0.25 * 3) = 0.536277
    kl = 0.75 * math.log(2.25) + 0.25 * math.log(0.75)
    assert kl == pytest.approx(0.536277, abs=1e-6)
    weights = abc_class_weights(np.array([6, 2, 0]), uniform_over="all")
    # (1/3) ^ 0.154229 = 0.844138: the larger divergence weighs the frequent class down harder
    assert weights == pytest.approx([(2 / 6) ** kl**3, 1.0, 1.0])
    assert weights[0] == pytest.approx(0.844138, abs=1e-6)


def test_abc_class_weights_balanced_or_empty_counts_give_ones() -> None:
    assert abc_class_weights(np.array([5, 5, 5])).tolist() == [1.0, 1.0, 1.0]  # KL = 0
    assert abc_class_weights(np.array([0, 0, 0])).tolist() == [1.0, 1.0, 1.0]
    assert abc_class_weights(np.array([0, 7, 0])).tolist() == [1.0, 1.0, 1.0]  # one class: KL = 0
    # balanced over the present classes, but not over all: "all" sees KL = ln(3/2) = 0.405465
    assert abc_class_weights(np.array([4, 4, 0])).tolist() == [1.0, 1.0, 1.0]
    kl = math.log(1.5)
    # min n / n_c = 1 for both present classes, so the weights stay 1 whatever the divergence
    assert abc_class_weights(np.array([4, 4, 0]), uniform_over="all") == pytest.approx([1.0, 1.0, 1.0])
    assert kl > 0


def test_abc_class_weights_rejects_bad_input() -> None:
    message = "counts must be a (C,) array of non-negative counts, got [ 6. -1.  0.]"
    with pytest.raises(ValueError, match=re.escape(message)):
        abc_class_weights(np.array([6, -1, 0]))
    with pytest.raises(ValueError, match=re.escape("counts must be a (C,) array of non-negative counts")):
        abc_class_weights(np.array([[1, 2], [3, 4]]))
    with pytest.raises(ValueError, match=re.escape("uniform_over must be 'present' or 'all', got 'some'")):
        abc_class_weights(np.array([1, 2]), uniform_over="some")  # type: ignore[arg-type]


def test_label_pixel_counts_skips_255_and_honours_the_include_mask() -> None:
    labels = np.array([[0, 1, 255], [2, 1, 1]], dtype=np.uint8)
    assert label_pixel_counts(labels, 3).tolist() == [1, 3, 1]
    assert label_pixel_counts(labels, 4).tolist() == [1, 3, 1, 0]
    include = np.array([[True, True, True], [False, False, True]])
    # kept: 0, 1, 255, 1 -> counts 1, 2, 0
    assert label_pixel_counts(labels, 3, include).tolist() == [1, 2, 0]
    assert label_pixel_counts(labels, 3, np.zeros((2, 3), dtype=bool)).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match=re.escape("labels hold values >= 2 classes other than 255")):
        label_pixel_counts(labels, 2)


def test_pixel_class_weights_gives_unlabelled_pixels_weight_one() -> None:
    labels = np.array([[0, 255, 1], [1, 0, 255]], dtype=np.uint8)
    weights = pixel_class_weights(labels, np.array([0.5, 0.25]))
    assert weights.tolist() == [[0.5, 1.0, 0.25], [0.25, 0.5, 1.0]]
    with pytest.raises(ValueError, match="labels hold values >= 1 classes"):
        pixel_class_weights(labels, np.array([0.5]))


def test_abc_score_weights_each_pixel_of_sim_by_its_class() -> None:
    weights = np.array([0.5, 1.0])
    # superpixel 0: labels 0 1 0 (w 0.5 1 0.5), 1 - f = 0.1 0.6 0.3, cos 0.957024 0.983282 1
    #   0.957024 * 0.5 * 0.1 + 0.983282 * 1 * 0.6 + 1 * 0.5 * 0.3 = 0.787820
    # superpixel 1: labels 1 0 0 (w 1 0.5 0.5), 1 - f = 0.2 0.45 0.7, cos 1 0.802043 0.987236
    #   1 * 1 * 0.2 + 0.802043 * 0.5 * 0.45 + 0.987236 * 0.5 * 0.7 = 0.725994
    expected = [
        COS_00 * 0.5 * 0.1 + COS_01 * 1.0 * 0.6 + 1.0 * 0.5 * 0.3,
        1.0 * 1.0 * 0.2 + COS_11 * 0.5 * 0.45 + COS_12 * 0.5 * 0.7,
    ]
    assert expected == pytest.approx([0.787820, 0.725994], abs=1e-6)
    scores = score_superpixels(
        "abc", PROBS, LABELS, SUPERPIXELS, class_weights=weights, representatives=REPRESENTATIVES
    )
    assert scores == pytest.approx(expected, abs=1e-5)
    # the representatives found by the pool are the same ones
    assert score_superpixels("abc", PROBS, LABELS, SUPERPIXELS, class_weights=weights) == pytest.approx(
        expected, abs=1e-5
    )
    # all weights 1: exactly sim (eq. 9)
    sim = [COS_00 * 0.1 + COS_01 * 0.6 + 0.3, 0.2 + COS_11 * 0.45 + COS_12 * 0.7]
    ones = score_superpixels("abc", PROBS, LABELS, SUPERPIXELS, class_weights=np.ones(2))
    assert ones == pytest.approx(sim, abs=1e-5)
    assert ones == pytest.approx(score_superpixels("sim", PROBS, LABELS, SUPERPIXELS), abs=1e-6)


def test_abc_score_unlabelled_pixel_weighs_one_and_counts_as_unreliable() -> None:
    labels = LABELS.copy()
    labels[0, 1] = 255  # superpixel 0, cos 0.983282: term cos * w(255) = 1 * (1 - 0) = 1
    scores = score_superpixels("abc", PROBS, labels, SUPERPIXELS, class_weights=np.array([0.5, 0.25]))
    expected = [
        COS_00 * 0.5 * 0.1 + COS_01 * 1.0 * 1.0 + 1.0 * 0.5 * 0.3,
        1.0 * 0.25 * 0.2 + COS_11 * 0.5 * 0.45 + COS_12 * 0.5 * 0.7,
    ]
    assert scores == pytest.approx(expected, abs=1e-5)


def test_abc_score_rejects_weights_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match=re.escape("class_weights must have shape (2,), got (3,)")):
        score_superpixels("abc", PROBS, LABELS, SUPERPIXELS, class_weights=np.ones(3))


def test_abc_score_defaults_to_the_image_label_counts() -> None:
    # labels hold 4 zeros and 2 ones: P = (2/3, 1/3), KL = 2/3 ln(4/3) + 1/3 ln(2/3) = 0.056633
    kl = 2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3)
    w0 = (2 / 4) ** kl**3  # 0.999874
    assert w0 == pytest.approx(0.999874, abs=1e-6)
    expected = [COS_00 * w0 * 0.1 + COS_01 * 0.6 + w0 * 0.3, 0.2 + COS_11 * w0 * 0.45 + COS_12 * w0 * 0.7]
    assert score_superpixels("abc", PROBS, LABELS, SUPERPIXELS) == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------------------------------------
# PixBal
# ---------------------------------------------------------------------------------------------

# p2/p1 per pixel: 1/9 4/6 2/8 / 3/7 45/55 3/7; top class 0 0 1 / 0 0 1
BVSB_0 = [1 / 9, 4 / 6, 3 / 7]  # superpixel 0 (top classes 0, 0, 0)
BVSB_1 = [2 / 8, 45 / 55, 3 / 7]  # superpixel 1 (top classes 1, 0, 1)


def test_pixbal_by_hand_with_an_explicit_prior() -> None:
    # prior (0.8, 0.2), nu = 5: class 0 pixels divided by (1 + 4)^2 = 25, class 1 by (1 + 1)^2 = 4
    scores = score_superpixels("pixbal", PROBS, LABELS, SUPERPIXELS, class_prior=np.array([0.8, 0.2]), nu=5.0)
    expected = [
        (BVSB_0[0] / 25 + BVSB_0[1] / 25 + BVSB_0[2] / 25) / 3,
        (BVSB_1[0] / 4 + BVSB_1[1] / 25 + BVSB_1[2] / 4) / 3,
    ]
    assert scores == pytest.approx(expected, rel=1e-6)
    # nu = 0: plain mean p2/p1
    plain = score_superpixels("pixbal", PROBS, LABELS, SUPERPIXELS, class_prior=np.array([0.8, 0.2]), nu=0.0)
    assert plain == pytest.approx([sum(BVSB_0) / 3, sum(BVSB_1) / 3], rel=1e-6)


def test_pixbal_falls_back_on_the_image_mean_softmax() -> None:
    # mean softmax: class 0 (0.9 + 0.6 + 0.2 + 0.7 + 0.55 + 0.3) / 6 = 3.25 / 6, class 1 2.75 / 6
    # nu = 12 (default): class 0 pixels / (1 + 6.5)^2 = 56.25, class 1 / (1 + 5.5)^2 = 42.25
    scores = score_superpixels("pixbal", PROBS, LABELS, SUPERPIXELS)
    expected = [
        sum(BVSB_0) / 56.25 / 3,
        (BVSB_1[0] / 42.25 + BVSB_1[1] / 56.25 + BVSB_1[2] / 42.25) / 3,
    ]
    assert scores == pytest.approx(expected, rel=1e-5)


def test_pixbal_rejects_bad_nu_and_prior() -> None:
    with pytest.raises(ValueError, match=re.escape("nu must be >= 0, got -1.0")):
        score_superpixels("pixbal", PROBS, LABELS, SUPERPIXELS, nu=-1.0)
    with pytest.raises(ValueError, match=re.escape("class_prior must have shape (2,), got (3,)")):
        score_superpixels("pixbal", PROBS, LABELS, SUPERPIXELS, class_prior=np.array([0.5, 0.3, 0.2]))


# ---------------------------------------------------------------------------------------------
# LCM: criteria
# ---------------------------------------------------------------------------------------------


def test_answered_class_ranks_break_ties_by_lower_class_index() -> None:
    # counts 3 5 3 0: order class 1 (5), class 0 (3), class 2 (3, tie -> after class 0), class 3 (0)
    assert answered_class_ranks(np.array([3, 5, 3, 0])).tolist() == [1, 0, 2, 3]
    assert answered_class_ranks(np.array([0, 0, 0])).tolist() == [0, 1, 2]
    assert answered_class_ranks(np.array([1, 5, 5, 2])).tolist() == [3, 0, 1, 2]


def test_tail_classes_are_the_alpha_share_with_fewest_answers() -> None:
    # |C| = 4, alpha = 0.5: rank >= 2 is the tail
    assert tail_classes(np.array([3, 5, 3, 0]), 0.5).tolist() == [False, False, True, True]
    assert tail_classes(np.array([1, 5, 5, 2]), 0.5).tolist() == [True, False, False, True]
    # alpha = 0.25: rank >= 3; alpha = 0: none; alpha = 1: all
    assert tail_classes(np.array([1, 5, 5, 2]), 0.25).tolist() == [True, False, False, False]
    assert not tail_classes(np.array([1, 5, 5, 2]), 0.0).any()
    assert tail_classes(np.array([1, 5, 5, 2]), 1.0).all()


def test_rarest_answered_class_ignores_unanswered_classes() -> None:
    # answered 0 (3), 1 (5), 2 (3): fewest 3, tie 0/2 goes to the higher rank, class 2; class 3 ignored
    assert rarest_answered_class(np.array([3, 5, 3, 0])) == 2
    assert rarest_answered_class(np.array([0, 4, 0, 0])) == 1
    assert rarest_answered_class(np.array([2, 9, 0, 1])) == 3
    assert rarest_answered_class(np.array([0, 0, 0])) is None


def test_each_selection_criterion_rejects_one_candidate_and_admits_another() -> None:
    counts = np.array([3, 5, 3, 0])  # tail (alpha 0.5): classes 2, 3; rarest answered: class 2
    confidence = np.array([0.95, 0.85, 0.95, 0.95, 0.95, 0.90])
    predicted = np.array([1, 1, 2, 0, 0, 1])
    current = np.array([0, 0, 0, 2, 255, 3])
    j1, j2, j3 = selection_criteria(confidence, predicted, current, counts, tau=0.9, alpha=0.5)
    # 0: all pass. 1: conf 0.85 < 0.9. 2: predicts tail class 2. 3: current label is the rarest (2).
    # 4: no label, passes. 5: conf exactly tau passes; current 3 is unanswered, not "rarest answered".
    assert j1.tolist() == [True, False, True, True, True, True]
    assert j2.tolist() == [True, True, False, True, True, True]
    assert j3.tolist() == [True, True, True, False, True, True]
    # with no answers at all nothing is the rarest answered class: J3 admits every candidate
    _, _, j3_none = selection_criteria(confidence, predicted, current, np.zeros(4, np.int64), 0.9, 0.5)
    assert j3_none.all()


# ---------------------------------------------------------------------------------------------
# LCM: propose_corrections
# ---------------------------------------------------------------------------------------------

FAST_LCM = LCMConfig(hidden=(32,), epochs=50, lr=1e-2, min_precision=0.8)


def clustered_answers() -> AnsweredSuperpixels:
    """32 answers over 3 classes (15, 12, 5): features one-hot of the answer plus noise 0.05.

    Labels before the answer were wrong and not the rarest class (answer 0 had label 1, the rest
    label 0), and the model agreed with the annotator, so every held-out decision can be made.
    """
    rng = np.random.default_rng(0)
    answers = np.array([0] * 15 + [1] * 12 + [2] * 5)
    features = np.eye(3)[answers] + rng.normal(0.0, 0.05, (answers.size, 3))
    labels = np.where(answers == 0, 1, 0)
    return AnsweredSuperpixels(features, answers, labels, model_probabilities(answers, 3))


def model_probabilities(classes: np.ndarray, num_classes: int, top: float = 0.9) -> np.ndarray:
    """``(M, C)`` mean probabilities: ``top`` for each row's class, the rest shared by the others."""
    rest = (1.0 - top) / (num_classes - 1)
    return np.where(np.eye(num_classes, dtype=bool)[classes], top, rest)


def test_propose_corrections_relabels_a_candidate_in_another_class_cluster() -> None:
    answered = clustered_answers()
    # counts 15 12 5: tail (alpha 0.5, |C| = 3, rank >= 1.5) = class 2, the rarest answered class
    candidates = np.array([[0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=float)
    current = np.array([0, 0, 0, 0, 2])
    model = model_probabilities(np.array([1, 0, 0, 2, 1]), 3)
    proposal = propose_corrections(answered, candidates, current, model, 3, FAST_LCM, seed=0)
    assert proposal.predicted.tolist() == [1, 0, 1, 2, 1]  # the cluster each candidate sits in
    assert (proposal.confidence >= 0.99).all()
    assert proposal.j1.all()
    assert proposal.j2.tolist() == [True, True, True, False, True]  # 3: class 2 is the tail
    assert proposal.j3.tolist() == [True, True, True, True, False]  # 4: label 2 is the rarest
    # J4: classes 0 and 1 are right every time held out; class 2 is never written (tail)
    assert proposal.j4.tolist() == [True, True, True, False, True]
    assert proposal.j5.tolist() == [True, True, False, True, True]  # 2: the model says 0 (0.9), psi 1 (0.05)
    # J5 asks the model's mean probability of psi's class to reach 0.8: 0.9 passes, 0.75 does not
    unsure = model_probabilities(np.array([1, 0, 0, 2, 1]), 3, top=0.75)
    assert not propose_corrections(answered, candidates, current, unsure, 3, FAST_LCM, seed=0).j5.any()
    # 0: label 0 in class 1's cluster, model 1 -> relabelled; 1: label 0 already the prediction
    assert proposal.selected.tolist() == [True, False, False, False, False]
    support, precision = held_out_precision(answered, 3, FAST_LCM, seed=0)
    assert support.tolist() == [15, 12, 0]
    assert precision.tolist() == [1.0, 1.0, 0.0]


def test_wilson_lower_bound_by_hand() -> None:
    # z = 1.645, z^2 = 2.706025. p = 1: the square root is z / 2n, so the bound is 1 / (1 + z^2 / n).
    # n = 3: 1 / 1.902008 = 0.525760; n = 12: 1 / 1.225502 = 0.815992.
    # p = 0.9, n = 20: (0.9 + 0.067651 - 1.645 sqrt(0.0045 + 0.0016913)) / 1.135301 = 0.738319.
    bounds = wilson_lower_bound(np.array([1.0, 1.0, 0.9, 0.5]), np.array([3, 12, 20, 0]), 1.645)
    np.testing.assert_allclose(bounds, [0.525760, 0.815992, 0.738319, 0.0], atol=1e-6)
    np.testing.assert_allclose(wilson_lower_bound(np.array([0.75]), np.array([4]), 0.0), [0.75])  # z = 0: the share


def test_propose_corrections_needs_two_answered_classes() -> None:
    answered = AnsweredSuperpixels(np.eye(3)[[1] * 6], np.full(6, 1), np.zeros(6, np.int64), np.eye(3)[[1] * 6])
    candidates = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    proposal = propose_corrections(answered, candidates, np.array([0, 0]), np.eye(3)[[1, 1]], 3, FAST_LCM)
    assert proposal.predicted.tolist() == [255, 255]
    assert not proposal.selected.any()
    empty = AnsweredSuperpixels(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)))
    assert not propose_corrections(empty, candidates, np.array([0, 0]), np.eye(3)[[1, 1]], 3, FAST_LCM).selected.any()


def test_j4_blocks_a_classifier_whose_answers_carry_no_information() -> None:
    rng = np.random.default_rng(1)
    answers = rng.integers(0, 2, 40)
    # random features, random answers; nothing labelled before, so every held-out case is decided
    answered = AnsweredSuperpixels(rng.normal(size=(40, 3)), answers, np.full(40, 255), np.eye(2)[answers])
    # every other criterion made lenient: with 2 classes the confidence is always >= 0.5
    config = LCMConfig(hidden=(32,), epochs=100, lr=1e-2, tau=0.5, alpha=0.0, model_confidence=0.0, min_precision=0.8)
    candidates = rng.normal(size=(8, 3))
    labels = np.full(8, 255)
    proposal = propose_corrections(answered, candidates, labels, np.full((8, 2), 0.5), 2, config)
    assert (proposal.j1 & proposal.j2 & proposal.j3 & proposal.j5).all()
    support, precision = held_out_precision(answered, 2, config, seed=0)
    assert support.sum() == 40  # every answer decided once when held out
    assert (precision < 0.9).all()  # chance level: a coin flip, not 90 %
    assert not proposal.j4.any()
    assert not proposal.selected.any()
    # J4 off: the same decisions go through
    unchecked = propose_corrections(
        answered, candidates, labels, np.full((8, 2), 0.5), 2, replace(config, min_precision=0.0)
    )
    assert unchecked.selected.all()


def test_propose_corrections_rejects_mismatched_shapes() -> None:
    answered = clustered_answers()
    three = np.zeros((2, 3))
    labels, classes = np.zeros(2, np.int64), np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=re.escape("features must be (superpixels, D) arrays")):
        propose_corrections(answered, np.zeros(3), labels, classes, 3, FAST_LCM)
    with pytest.raises(ValueError, match="answered features have 3 dimensions but candidates have 2"):
        propose_corrections(answered, np.zeros((2, 2)), labels, classes, 3, FAST_LCM)
    message = "every answered superpixel and every candidate needs one feature row, label and C model probabilities"
    with pytest.raises(ValueError, match=message):
        propose_corrections(answered, three, labels, np.full((3, 3), 1 / 3), 3, FAST_LCM)
    with pytest.raises(ValueError, match=message):
        propose_corrections(answered, three, labels, np.full((2, 2), 1 / 2), 3, FAST_LCM)
    with pytest.raises(ValueError, match=message):
        propose_corrections(answered, np.zeros((3, 3)), labels, classes, 3, FAST_LCM)
    short = AnsweredSuperpixels(answered.features, answered.answers[:-1], answered.labels, answered.model_probs)
    with pytest.raises(ValueError, match=message):
        propose_corrections(short, three, labels, classes, 3, FAST_LCM)
    with pytest.raises(ValueError, match=re.escape("answers must be classes 0..1")):
        propose_corrections(answered, three, labels, classes, 2, FAST_LCM)


# ---------------------------------------------------------------------------------------------
# PLAR
# ---------------------------------------------------------------------------------------------


def thin_class_statistics() -> ClassStatistics:
    """Class 0 at (0, 0) spread along x only; class 1 at (5, 0), round. Features are (D, N)."""
    features = np.array(
        [
            [-2, 2, -2, 2, 4, 6, 4, 6],
            [0, 0, 0, 0, 1, 1, -1, -1],
        ],
        dtype=float,
    )
    classes = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    return class_statistics(features, classes, 2, shrinkage=0.1, min_pixels=4)


def test_class_statistics_by_hand_and_shrinkage_keeps_a_flat_class_invertible() -> None:
    statistics = thin_class_statistics()
    assert statistics.classes.tolist() == [0, 1]
    assert statistics.means.tolist() == [[0.0, 0.0], [5.0, 0.0]]
    # ML covariances: class 0 diag(4, 0) (singular), class 1 diag(1, 1)
    # pooled variance: traces (16 + 8) / 8 pixels / 2 dims = 1.5
    # shrunk: 0.9 diag(4, 0) + 0.15 I = diag(3.75, 0.15); 0.9 I + 0.15 I = 1.05 I
    assert statistics.precisions[0] == pytest.approx(np.diag([1 / 3.75, 1 / 0.15]))
    assert statistics.precisions[1] == pytest.approx(np.eye(2) / 1.05)
    # a class below min_pixels is left out
    features = np.array([[0.0, 1.0, 2.0, 9.0, 9.0], [0.0, 0.0, 0.0, 9.0, 9.0]])
    few = class_statistics(features, np.array([0, 0, 0, 2, 2]), 3, shrinkage=0.1, min_pixels=3)
    assert few.classes.tolist() == [0]
    assert few.means.tolist() == [[1.0, 0.0]]


def test_nearest_classes_agree_and_disagree_by_hand() -> None:
    statistics = thin_class_statistics()
    points = np.array([[4.5, 0.0, 3.0], [0.0, 1.5, 0.0]])  # (D, M)
    euclidean, mahalanobis = nearest_classes(points, statistics)
    # (4.5, 0): |d|^2 20.25 vs 0.25; Mahalanobis^2 20.25 / 3.75 = 5.4 vs 0.25 / 1.05 = 0.238 -> 1, 1
    # (0, 1.5): |d|^2 2.25 vs 27.25; Mahalanobis^2 2.25 / 0.15 = 15 vs 27.25 / 1.05 = 25.95 -> 0, 0
    # (3, 0) lies along class 0's long axis: |d|^2 9 vs 4 -> class 1,
    #        but Mahalanobis^2 9 / 3.75 = 2.4 vs 4 / 1.05 = 3.81 -> class 0
    assert euclidean.tolist() == [1, 0, 1]
    assert mahalanobis.tolist() == [1, 0, 0]


def test_nearest_classes_with_hand_made_statistics() -> None:
    # class 3 at (0, 0) with covariance diag(100, 0.01) (long along x), class 7 at (5, 0) round
    statistics = ClassStatistics(
        classes=np.array([3, 7]),
        means=np.array([[0.0, 0.0], [5.0, 0.0]]),
        precisions=np.array([np.diag([0.01, 100.0]), np.eye(2)]),
    )
    # (8, 0): |d|^2 64 vs 9 -> 7; Mahalanobis^2 0.64 vs 9 -> 3.  (0.1, 0.1): 0.02 vs 24.02 -> 3;
    # 1.0001 vs 24.02 -> 3.  (5, 0.5): 25.25 vs 0.25 -> 7; 25.25 vs 0.25 -> 7.
    euclidean, mahalanobis = nearest_classes(np.array([[8.0, 0.1, 5.0], [0.0, 0.1, 0.5]]), statistics)
    assert euclidean.tolist() == [7, 3, 7]
    assert mahalanobis.tolist() == [3, 3, 7]


def test_error_map_thresholds_label_confidence_and_ors_an_extra_map() -> None:
    # f(y_x; x) = 0.9 0.4 0.8 / 0.7 0.55 0.3; < 0.7 at (0, 1), (1, 1), (1, 2)
    assert error_map(PROBS, LABELS, 0.7).tolist() == [[False, True, False], [False, True, True]]
    extra = np.array([[1, 0, 0], [0, 0, 1]], dtype=np.uint8)
    assert error_map(PROBS, LABELS, 0.7, extra).tolist() == [[True, True, False], [False, True, True]]
    unlabelled = LABELS.copy()
    unlabelled[0, 0] = 255  # confidence 0: always doubted
    assert error_map(PROBS, unlabelled, 0.05)[0, 0]
    with pytest.raises(ValueError, match=re.escape("the extra error map is (1, 3) but labels are (2, 3)")):
        error_map(PROBS, LABELS, 0.7, np.zeros((1, 3), dtype=bool))


def plar_image() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 4×4 image with 2-D features; returns ``(features, probs, labels, verified)``.

    Row 0: class 0 verified, features (±1, ±1): mean (0, 0), scatter diag(4, 4).
    Row 1: class 1 verified, features (10, ±6): mean (10, 0), scatter diag(0, 144) (long along y).
           (1, 3) is doubted by the model (it says 0) but verified.
    Row 2: class 2 reliable (model agrees, not verified), features (±1, -20 ± 1): mean (0, -20).
    Row 3: error pixels (confidence 0.1 or label 255):
           (3, 0) label 2, features (0.5, 0.5): nearest class 0 both ways -> relabelled 0;
           (3, 1) label 0, features (0.5, -19.5): nearest class 2, not verified -> stays 0;
           (3, 2) label 2, features (4, 12): the distances disagree -> left for a human;
           (3, 3) label 255, features (10, 1): nearest class 1 both ways -> relabelled 1.
    Pooled variance (8 + 144 + 8) / 12 / 2 = 6.6667; shrunk covariances (lambda 0.1):
    class 0 and 2: 0.9 I + 0.6667 I = 1.5667 I; class 1: diag(0.6667, 32.4 + 0.6667 = 33.0667).
    (4, 12): |d|^2 160 (class 0), 180 (class 1), 1040 (class 2) -> 0;
             Mahalanobis^2 160 / 1.5667 = 102.1, 36 / 0.6667 + 144 / 33.0667 = 58.4, 663.8 -> 1.
    """
    x = np.array([[1, 1, -1, -1], [10, 10, 10, 10], [1, 1, -1, -1], [0.5, 0.5, 4, 10]], dtype=float)
    y = np.array([[1, -1, 1, -1], [6, -6, 6, -6], [-19, -21, -19, -21], [0.5, -19.5, 12, 1]], dtype=float)
    features = np.stack([x, y])
    labels = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [2, 0, 2, 255]], dtype=np.uint8)
    model = np.array([[0, 0, 0, 0], [1, 1, 1, 0], [2, 2, 2, 2], [0, 2, 0, 1]])
    probs = np.where(np.arange(3)[:, None, None] == model[None], 0.8, 0.1).astype(np.float32)
    verified = np.zeros((4, 4), dtype=bool)
    verified[:2] = True
    return features, probs, labels, verified


def test_refine_labels_on_a_tiny_image() -> None:
    features, probs, labels, verified = plar_image()
    config = PLARConfig(threshold=0.7, shrinkage=0.1, protect_unverified=False)
    result = refine_labels(features, probs, labels, verified, config)
    # the doubted but verified pixel (1, 3) is not in the error map; row 2 is reliable
    assert result.error.tolist() == [[False] * 4, [False] * 4, [False] * 4, [True] * 4]
    assert result.euclidean[3].tolist() == [0, 2, 0, 1]
    assert result.mahalanobis[3].tolist() == [0, 2, 1, 1]
    assert (result.euclidean[:3] == 255).all() and (result.mahalanobis[:3] == 255).all()
    assert result.labels.tolist() == [[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [0, 0, 2, 1]]
    assert result.relabelled[3].tolist() == [True, False, False, True]
    assert not result.relabelled[:3].any()
    assert result.left_for_human[3].tolist() == [False, False, True, False]
    assert not result.left_for_human[:3].any()
    assert labels[3].tolist() == [2, 0, 2, 255]  # the input is left alone
    # protected (the default): (3, 0) is labelled 2, a class nobody verified here, so it stays
    protected = refine_labels(features, probs, labels, verified, PLARConfig(threshold=0.7, shrinkage=0.1))
    assert protected.labels[3].tolist() == [2, 0, 2, 1]
    assert protected.euclidean[3].tolist() == [0, 2, 0, 1]
    # verified pixels never change, even with every pixel in the extra error map
    everything = refine_labels(features, probs, labels, verified, PLARConfig(), extra_error=np.ones((4, 4), bool))
    assert (everything.labels[verified] == labels[verified]).all()
    assert not everything.error[verified].any()


def test_refine_labels_without_enough_classes_leaves_the_image_alone() -> None:
    features, probs, labels, verified = plar_image()
    result = refine_labels(features, probs, labels, verified, PLARConfig(min_classes=4))  # 3 classes only
    assert result.labels.tolist() == labels.tolist()
    assert not result.relabelled.any() and not result.left_for_human.any()
    assert result.error[3].all()  # the error map is still reported
    assert (result.euclidean == 255).all()
    # classes with fewer than min_pixels (here 5 > 4) reference pixels drop out: none is left
    assert not refine_labels(features, probs, labels, verified, PLARConfig(min_pixels=5)).relabelled.any()


def test_refine_labels_lets_an_unverified_class_compete() -> None:
    # only class 0 is verified; class 1 (rows 1) and class 2 (row 2) are reliable competitors.
    # Statistics hold 3 classes, so PLAR runs and writes only class 0: (3, 0) -> 0, (3, 3) stays 255.
    features, probs, labels, verified = plar_image()
    verified[1] = False
    probs[:, 1, 3] = [0.1, 0.8, 0.1]  # (1, 3) now needs the model's support to be reliable
    result = refine_labels(features, probs, labels, verified, PLARConfig(protect_unverified=False))
    assert result.labels[3].tolist() == [0, 0, 2, 255]
    assert result.euclidean[3, 3] == result.mahalanobis[3, 3] == 1


def test_refine_labels_rejects_mismatched_shapes() -> None:
    features, probs, labels, verified = plar_image()
    with pytest.raises(ValueError, match=re.escape("features must be (D, H, W) with (H, W) = (4, 4), got (2, 4, 3)")):
        refine_labels(features[:, :, :3], probs, labels, verified, PLARConfig())
    with pytest.raises(ValueError, match="probs, labels and verified must share"):
        refine_labels(features, probs, labels, verified[:3], PLARConfig())


def test_refine_labels_invariants_on_random_images() -> None:
    changed_total = 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 4, (8, 8)).astype(np.uint8)
        labels[rng.random((8, 8)) < 0.05] = 255
        centres = rng.normal(0.0, 2.0, (5, 3))  # class 4 row for the 255 pixels
        features = (centres[np.minimum(labels, 4)] + rng.normal(0.0, 1.0, (8, 8, 3))).transpose(2, 0, 1)
        probs = rng.dirichlet(np.ones(4), (8, 8)).transpose(2, 0, 1)
        verified = rng.random((8, 8)) < 0.3
        config = PLARConfig(threshold=float(rng.uniform(0.2, 0.8)), min_pixels=int(rng.integers(1, 5)))
        result = refine_labels(features, probs, labels, verified, config)
        changed = result.labels != labels
        verified_classes = set(np.unique(labels[verified]).tolist()) - {255}
        assert not changed[verified].any()
        assert not (result.error & verified).any()
        assert (result.relabelled == changed).all()
        assert result.error[changed].all()
        assert set(np.unique(result.labels[changed]).tolist()) <= verified_classes
        assert set(np.unique(labels[changed]).tolist()) <= verified_classes | {255}  # protected labels stay
        assert not changed[result.left_for_human].any()
        changed_total += int(changed.sum())
    assert changed_total > 0  # the invariants were exercised, not vacuously true


# ---------------------------------------------------------------------------------------------
# Correction records
# ---------------------------------------------------------------------------------------------


def test_changed_runs_by_hand() -> None:
    labels = np.array([[0, 0, 1], [1, 2, 2]], dtype=np.uint8)
    # flat 0 1 2 4 5 with old labels 0 0 1 2 2: a new run at each new label or gap
    changed = np.array([[True, True, True], [False, True, True]])
    assert changed_runs(labels, changed) == ((0, 2, 0), (2, 1, 1), (4, 2, 2))
    # flat 0 2 3 with old labels 0 1 1: 2 and 3 are consecutive across the row break
    changed = np.array([[True, False, True], [True, False, False]])
    assert changed_runs(labels, changed) == ((0, 1, 0), (2, 2, 1))
    assert changed_runs(labels, np.zeros((2, 3), dtype=bool)) == ()
    # flat 0 2 3 5 with old labels 0 0 0 7: the gap 0 -> 2 breaks a run of one label
    same = np.array([[0, 5, 0], [0, 0, 7]], dtype=np.uint8)
    assert changed_runs(same, np.array([[True, False, True], [True, False, True]])) == ((0, 1, 0), (2, 2, 0), (5, 1, 7))


BEFORE = np.array([[0, 0, 1], [1, 2, 2]], dtype=np.uint8)
AFTER = np.array([[3, 3, 1], [3, 0, 1]], dtype=np.uint8)
RECORD_SUPERPIXELS = np.array([[0, 0, 1], [0, 1, 1]])
CONFIDENCE = np.array([[0.9, 0.8, 0.1], [0.7, 0.6, 0.5]])


def test_record_changes_groups_by_superpixel_and_new_class() -> None:
    records = record_changes(
        BEFORE, AFTER, RECORD_SUPERPIXELS, CONFIDENCE, corrector="plar", round_index=2, image="img"
    )
    # superpixel 0 -> 3 at flat 0, 1, 3 (old 0, 0, 1): majority 0, confidence (0.9 + 0.8 + 0.7) / 3
    # superpixel 1 -> 0 at flat 4 (old 2), confidence 0.6; superpixel 1 -> 1 at flat 5 (old 2), 0.5
    assert [(r.superpixel, r.new_class, r.old_class, r.runs, r.pixels) for r in records] == [
        (0, 3, 0, ((0, 2, 0), (3, 1, 1)), 3),
        (1, 0, 2, ((4, 1, 2),), 1),
        (1, 1, 2, ((5, 1, 2),), 1),
    ]
    assert [r.confidence for r in records] == pytest.approx([0.8, 0.6, 0.5])
    assert {(r.corrector, r.round, r.image) for r in records} == {("plar", 2, "img")}
    assert (
        record_changes(BEFORE, BEFORE.copy(), RECORD_SUPERPIXELS, CONFIDENCE, corrector="x", round_index=1, image="a")
        == []
    )
    with pytest.raises(ValueError, match="must have the same shape"):
        record_changes(BEFORE, AFTER, RECORD_SUPERPIXELS[:1], CONFIDENCE, corrector="x", round_index=1, image="a")


def test_record_changes_majority_old_class_ties_to_the_lower_label() -> None:
    before = np.array([[4, 1, 255, 255]], dtype=np.uint8)
    after = np.array([[2, 2, 2, 2]], dtype=np.uint8)
    (record,) = record_changes(
        before, after, np.zeros((1, 4), np.int64), np.full((1, 4), 0.5), corrector="lcm", round_index=1, image="a"
    )
    # old labels 4, 1, 255, 255: 255 is the majority (2 of 4)
    assert record.old_class == 255
    before[0, 2] = 1  # old 4, 1, 1, 255: class 1
    (record,) = record_changes(
        before, after, np.zeros((1, 4), np.int64), np.full((1, 4), 0.5), corrector="lcm", round_index=1, image="a"
    )
    assert record.old_class == 1
    assert record.runs == ((0, 1, 4), (1, 2, 1), (3, 1, 255))


def test_a_change_still_applies_only_where_the_labels_it_was_decided_on_remain() -> None:
    records = record_changes(BEFORE, AFTER, RECORD_SUPERPIXELS, CONFIDENCE, corrector="lcm", round_index=1, image="a")
    nothing = np.zeros((2, 3), dtype=bool)
    assert all(still_applies(record, BEFORE, nothing) for record in records)
    # superpixel 0's change (flat 0, 1, 3; old 0, 0, 1): a pixel relabelled since, or answered, stops it
    moved = BEFORE.copy()
    moved[1, 0] = 2
    assert [still_applies(record, moved, nothing) for record in records] == [False, True, True]
    answered = nothing.copy()
    answered[1, 2] = True  # flat 5: superpixel 1's change to 1
    assert [still_applies(record, BEFORE, answered) for record in records] == [True, True, False]
    assert [still_applies(record, AFTER, nothing) for record in records] == [False, False, False]  # written already


def test_undo_restores_the_labels_exactly() -> None:
    records = record_changes(BEFORE, AFTER, RECORD_SUPERPIXELS, CONFIDENCE, corrector="plar", round_index=1, image="a")
    restored = undo_corrections(AFTER, records)
    assert restored.tolist() == BEFORE.tolist()
    assert restored.dtype == BEFORE.dtype
    assert AFTER.tolist() == [[3, 3, 1], [3, 0, 1]]  # the input is left alone
    assert undo_corrections(AFTER, []).tolist() == AFTER.tolist()


def test_undo_two_overlapping_corrections_in_order() -> None:
    first = np.array([[0, 0, 1], [1, 2, 2]], dtype=np.uint8)
    second = np.array([[5, 5, 1], [1, 2, 2]], dtype=np.uint8)  # LCM: (0, 0), (0, 1) -> 5
    third = np.array([[6, 5, 6], [1, 2, 2]], dtype=np.uint8)  # PLAR: (0, 0) 5 -> 6 again, (0, 2) 1 -> 6
    confidence = np.ones((2, 3))
    lcm = record_changes(first, second, SUPERPIXELS, confidence, corrector="lcm", round_index=1, image="a")
    plar = record_changes(second, third, SUPERPIXELS, confidence, corrector="plar", round_index=1, image="a")
    assert [r.runs for r in plar] == [((0, 1, 5),), ((2, 1, 1),)]
    assert undo_corrections(third, lcm + plar).tolist() == first.tolist()
    assert undo_corrections(third, plar).tolist() == second.tolist()
    # undone in the wrong order, (0, 0) ends at 5 (PLAR's old label) instead of 0
    assert undo_corrections(third, plar + lcm).tolist() == [[5, 0, 1], [1, 2, 2]]


def test_apply_replays_overlapping_corrections_and_marks_their_pixels() -> None:
    first = np.array([[0, 0, 1], [1, 2, 2]], dtype=np.uint8)
    second = np.array([[5, 5, 1], [1, 2, 2]], dtype=np.uint8)
    third = np.array([[6, 5, 6], [1, 2, 2]], dtype=np.uint8)
    confidence = np.ones((2, 3))
    lcm = record_changes(first, second, SUPERPIXELS, confidence, corrector="lcm", round_index=1, image="a")
    plar = record_changes(second, third, SUPERPIXELS, confidence, corrector="plar", round_index=1, image="a")
    assert apply_corrections(first, lcm + plar).tolist() == third.tolist()
    assert apply_corrections(first, lcm).tolist() == second.tolist()
    assert first.tolist() == [[0, 0, 1], [1, 2, 2]]  # the input is left alone
    assert corrected_pixels((2, 3), lcm + plar).tolist() == [[True, True, True], [False, False, False]]


def test_auto_correction_json_round_trip() -> None:
    record = AutoCorrection(
        corrector="lcm",
        round=3,
        image="2007_000032",
        superpixel=17,
        old_class=255,
        new_class=4,
        confidence=0.875,
        runs=((10, 3, 255), (20, 1, 2)),
    )
    payload = record.to_json()
    assert payload["pixels"] == 4
    assert payload["runs"] == [[10, 3, 255], [20, 1, 2]]
    assert AutoCorrection.from_json(json.loads(json.dumps(payload))) == record


def test_statistics_without_a_part_equal_statistics_of_the_rest() -> None:
    rng = np.random.default_rng(3)
    features, classes = rng.normal(size=(3, 40)), rng.integers(0, 2, 40)
    part = np.zeros(40, dtype=bool)
    part[:7] = True
    without = statistics_from_sums(
        class_sums(features, classes, 2) - class_sums(features[:, part], classes[part], 2), 0.1, 4
    )
    rest = class_statistics(features[:, ~part], classes[~part], 2, 0.1, 4)
    np.testing.assert_array_equal(without.classes, rest.classes)
    np.testing.assert_allclose(without.means, rest.means, atol=1e-12)
    np.testing.assert_allclose(without.precisions, rest.precisions, rtol=1e-9)


def held_out_image() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 4×4 image whose every row is one answered region; one feature per pixel; 2 classes.

    row  region  answer  label before  feature        model (0.8 on)
    0    A       0       0             ±0.1           0
    1    B       1       1             10 ± 0.1       1
    2    C       0       1             ±0.05          0
    3    D       1       1             ±0.02          0
    """
    offsets = np.array([1.0, -1.0, 1.0, -1.0])
    features = np.stack([0.1 * offsets, 10.0 + 0.1 * offsets, 0.05 * offsets, 0.02 * offsets])[None]
    labels = np.array([[0] * 4, [1] * 4, [0] * 4, [1] * 4], dtype=np.uint8)
    before = np.array([[0] * 4, [1] * 4, [1] * 4, [1] * 4], dtype=np.uint8)
    regions = np.repeat(np.arange(4), 4).reshape(4, 4)
    model = np.array([0, 1, 0, 0])[:, None].repeat(4, axis=1)
    probs = np.where(np.arange(2)[:, None, None] == model[None], 0.8, 0.2)
    return features, probs, labels, regions, before


def test_held_out_changes_put_each_answered_region_back_as_it_was() -> None:
    """A and B held their answers before (and the model is sure of them): nothing to decide.

    C put back: labelled 1, which the model doubts (0.2 < 0.7). The statistics of the rest are
    class 0 = A (mean 0, variance 0.01) and class 1 = B and D (mean 5, variance about 25); C's
    features (±0.05) are nearest class 0 by both distances, the model agrees, and class 0 is
    verified elsewhere: its 4 pixels change to 0, the answer: 4 right.
    D put back: labelled 1, doubted again; class 0 = A and C (mean 0), class 1 = B (mean 10);
    D's features (±0.02) vote class 0 and the model agrees: 4 pixels change to 0, but the
    answer is 1: 0 right. Class 0: 8 pixels, 4 right, in 2 regions.
    """
    features, probs, labels, regions, before = held_out_image()
    changes = held_out_changes(features, probs, labels, regions, before, PLARConfig())
    assert changes.pixels.tolist() == [8, 0]
    assert changes.right.tolist() == [4, 0]
    assert changes.regions.tolist() == [2, 0]
    # precision 1/2 over 2 regions: no bound passes 0.8
    assert not changes.passed(0.8, 1.645).any()
    # without D, C's change alone: 4 of 4 right, in one region; Wilson bound of 1/1 at z = 0.5: 0.8
    regions[3] = -1
    alone = held_out_changes(features, probs, labels, regions, before, PLARConfig())
    assert (alone.pixels.tolist(), alone.right.tolist(), alone.regions.tolist()) == ([4, 0], [4, 0], [1, 0])
    assert alone.passed(0.8, 0.5).tolist() == [True, False]
    assert alone.passed(0.81, 0.5).tolist() == [False, False]


def test_held_out_changes_leave_an_old_label_of_a_class_nobody_verified_elsewhere() -> None:
    """Only A and C answered. Row 1 (label 1, the model sure of it) is a reliable pixel of class 1;
    row 3 (label 1, doubted) is in the error map. C put back is labelled 1 and voted 0, but class
    1 is verified in no other region: PLAR cannot tell whether that label is right, so it stays.
    Without the protection the 4 pixels change to 0, all right."""
    features, probs, labels, regions, before = held_out_image()
    regions[1] = regions[3] = -1
    changes = held_out_changes(features, probs, labels, regions, before, PLARConfig())
    assert changes.pixels.tolist() == [0, 0]
    unprotected = held_out_changes(features, probs, labels, regions, before, PLARConfig(protect_unverified=False))
    assert (unprotected.pixels.tolist(), unprotected.right.tolist(), unprotected.regions.tolist()) == (
        [4, 0],
        [4, 0],
        [1, 0],
    )


def test_held_out_changes_add_up_and_reject_a_wrong_before_map() -> None:
    total = HeldOutChanges.zeros(2) + HeldOutChanges(np.array([3, 1]), np.array([2, 1]), np.array([1, 1]))
    assert (total.pixels.tolist(), total.right.tolist(), total.regions.tolist()) == ([3, 1], [2, 1], [1, 1])
    features, probs, labels, regions, before = held_out_image()
    with pytest.raises(ValueError, match=re.escape("before is (4, 3) but labels are (4, 4)")):
        held_out_changes(features, probs, labels, regions, before[:, :3], PLARConfig())


def test_relabelling_whole_superpixels_records_their_old_pixels() -> None:
    labels = np.array([[0, 0, 1], [1, 1, 1]], dtype=np.uint8)
    superpixels = np.array([[0, 0, 1], [2, 2, 1]])
    (record,) = relabel_superpixels(labels, superpixels, {2: (3, 0.9)}, corrector="lcm", round_index=2, image="a")
    assert (record.superpixel, record.old_class, record.new_class, record.round) == (2, 1, 3, 2)
    assert record.confidence == pytest.approx(0.9)
    assert record.runs == ((3, 2, 1),)
    assert relabel_superpixels(labels, superpixels, {0: (0, 1.0)}, corrector="lcm", round_index=2, image="a") == []


def test_an_lcm_proposal_groups_its_selected_relabels_by_image() -> None:
    flags = np.array([True, False, True])
    proposal = LCMProposal(
        predicted=np.array([2, 0, 1]),
        confidence=np.array([0.9, 0.5, 0.99]),
        j1=flags,
        j2=flags,
        j3=flags,
        j4=flags,
        j5=flags,
        selected=flags,
    )
    grouped = proposal.relabels([("a", 4), ("a", 5), ("b", 1)])
    assert grouped == {"a": {4: (2, pytest.approx(0.9))}, "b": {1: (1, pytest.approx(0.99))}}
