"""The engine's formulas against values computed by hand on a 2×3 image with two superpixels.

Pixel softmax vectors (class 0, class 1), superpixel ids and current labels::

    probs  (0.9, 0.1) (0.6, 0.4)  (0.2, 0.8)     superpixels 0 0 1     labels 0 1 1
           (0.7, 0.3) (0.55, 0.45) (0.3, 0.7)                0 1 1            0 0 0

Superpixel 0: every pixel predicts class 0, so D = 0 and s' = s; the mean softmax is
(0.7333, 0.2667), closest in cosine to (0.7, 0.3) (cos 0.99843 vs 0.97178 and 0.97152):
representative (1, 0). Superpixel 1: predictions 1, 0, 1 so D = 1 and s' = {(0, 2), (1, 2)}
with mean (0.25, 0.75); cosines 0.99706 for (0.2, 0.8) and 0.99655 for (0.3, 0.7):
representative (0, 2). (Averaging over all of s instead would pick (1, 2).)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from cleanlab.segmentation.rank import get_label_quality_scores
from tiny_image import LABELS, PROBS, SUPERPIXELS

from alc_backend.engine.acquisition import score_superpixels
from alc_backend.engine.expansion import expand_label, expansion_region
from alc_backend.engine.metrics import (
    QueryQuality,
    confusion_matrix,
    correction_query_bits,
    mean_iou,
)
from alc_backend.engine.oracle import answers_would_change, faithful_answer, reference_answer
from alc_backend.engine.pool import dominant_classes, representative_pixels
from alc_backend.engine.superpixels import compute_superpixels, relabel_sequential


def score(method: str, **kwargs: object) -> np.ndarray:
    return score_superpixels(method, PROBS, LABELS, SUPERPIXELS, **kwargs)


def test_pool_follows_eqs_4_to_6() -> None:
    assert dominant_classes(PROBS, SUPERPIXELS).tolist() == [0, 1]
    assert representative_pixels(PROBS, SUPERPIXELS).tolist() == [[1, 0], [0, 2]]


def test_pool_rejects_non_contiguous_ids_and_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"contiguous 0..K-1; ids \[1\] cover no pixel"):
        representative_pixels(PROBS, np.array([[0, 0, 2], [0, 2, 2]]))
    with pytest.raises(ValueError, match=r"probs is 2×3 \(H×W\) but superpixels is 3×2"):
        representative_pixels(PROBS, SUPERPIXELS.T.copy())


def test_point_acquisitions_at_the_representative_pixel() -> None:
    # representatives: (0.7, 0.3) labelled 0 and (0.2, 0.8) labelled 1
    assert score("cil") == pytest.approx([0.3, 0.2])
    assert score("bvsb") == pytest.approx([0.3 / 0.7, 0.2 / 0.8])
    assert score("entropy") == pytest.approx([0.610864, 0.500402], abs=1e-6)


def test_lcil_is_the_mean_cil_of_the_expansion_region() -> None:
    # 1 - f(y_x; x) per pixel: 0.1 0.6 0.2 / 0.3 0.45 0.7
    assert score("lcil") == pytest.approx([(0.1 + 0.6 + 0.3) / 3, (0.2 + 0.45 + 0.7) / 3])
    # eps = 0.99 keeps only pixels within cos 0.99 of the representative: the representatives
    assert score("lcil", eps=0.99) == pytest.approx([0.3, 0.2])


def test_sim_weights_cil_by_cosine_to_the_representative() -> None:
    # superpixel 0: cos to (0.7, 0.3) = 0.957024, 0.983282, 1
    # superpixel 1: cos to (0.2, 0.8) = 1, 0.802043, 0.987236
    expected = [0.957024 * 0.1 + 0.983282 * 0.6 + 0.3, 0.2 + 0.802043 * 0.45 + 0.987236 * 0.7]
    assert score("sim") == pytest.approx(expected, abs=1e-5)
    # eps = 0.9 drops pixel (1, 1) (cos 0.802) from superpixel 1 only
    assert score("sim", eps=0.9) == pytest.approx([expected[0], 0.2 + 0.987236 * 0.7], abs=1e-5)


def test_unlabelled_pixels_count_as_fully_unreliable() -> None:
    labels = LABELS.copy()
    labels[1, 0] = 255  # the representative of superpixel 0
    scores = score_superpixels("cil", PROBS, labels, SUPERPIXELS)
    assert scores == pytest.approx([1.0, 0.2])


def test_classbal_weights_mean_bvsb_by_inverse_class_share() -> None:
    mean_bvsb = np.array([(1 / 9 + 4 / 6 + 3 / 7) / 3, (2 / 8 + 45 / 55 + 3 / 7) / 3])
    # this image alone: one superpixel per dominant class, smoothed share (1 + 1) / (2 + 2)
    assert score("classbal") == pytest.approx(mean_bvsb / 0.5)
    # data-set counts 9 and 1: shares 10/12 and 2/12
    weighted = score("classbal", class_counts=np.array([9, 1]))
    assert weighted == pytest.approx(mean_bvsb / np.array([10 / 12, 2 / 12]))


def test_softmin_matches_hand_values_and_cleanlab() -> None:
    def softmin(quality: list[float]) -> float:
        weights = [math.exp((1 - q) / 0.1) for q in quality]
        return sum(q * w for q, w in zip(quality, weights, strict=True)) / sum(weights)

    assert softmin([0.9, 0.4, 0.7]) == pytest.approx(0.417325, abs=1e-6)
    assert score("softmin") == pytest.approx([1 - softmin([0.9, 0.4, 0.7]), 1 - softmin([0.8, 0.55, 0.3])])
    # one superpixel covering the image gives cleanlab's own image score
    whole = np.zeros_like(SUPERPIXELS)
    image_score, _ = get_label_quality_scores(LABELS[None].astype(np.int64), PROBS[None], verbose=False)
    assert score_superpixels("softmin", PROBS, LABELS, whole) == pytest.approx(1 - image_score)


def test_random_is_reproducible_from_the_rng() -> None:
    first = score("random", rng=np.random.default_rng(3))
    assert first.tolist() == np.random.default_rng(3).random(2).tolist()


def test_score_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown acquisition method 'sam'; choose from random, entropy"):
        score("sam")
    with pytest.raises(ValueError, match=r"eps must lie in \[0, 1\], got 1.5"):
        score("sim", eps=1.5)
    with pytest.raises(ValueError, match="labels hold values >= 2 classes"):
        score_superpixels("sim", PROBS, np.full((2, 3), 7, np.uint8), SUPERPIXELS)


def test_expansion_eps_zero_covers_the_superpixel_and_eps_positive_only_similar_pixels() -> None:
    full = expansion_region(PROBS, SUPERPIXELS, 1, (0, 2), eps=0.0)
    assert full.tolist() == [[False, False, True], [False, True, True]]
    partial = expansion_region(PROBS, SUPERPIXELS, 1, (0, 2), eps=0.9)
    assert partial.tolist() == [[False, False, True], [False, False, True]]
    assert expand_label(LABELS, partial, 1).tolist() == [[0, 1, 1], [0, 0, 1]]
    assert LABELS.tolist() == [[0, 1, 1], [0, 0, 0]]  # the input is left alone
    with pytest.raises(ValueError, match=r"pixel \(0, 0\) is not in superpixel 1"):
        expansion_region(PROBS, SUPERPIXELS, 1, (0, 0))


def test_faithful_annotator_sees_only_the_representative_pixel() -> None:
    truth = np.array([[1, 0, 0], [1, 0, 0]], dtype=np.uint8)
    assert faithful_answer(truth, SUPERPIXELS == 0, (1, 0)) == 1
    assert faithful_answer(truth, SUPERPIXELS == 0, (0, 1)) == 0
    truth[1, 0] = 255  # an unlabelled representative: the superpixel's majority true class
    assert faithful_answer(truth, SUPERPIXELS == 0, (1, 0)) == 0


def test_reference_annotator_relabels_only_when_at_most_half_agrees() -> None:
    truth = np.array([[0, 0, 1], [1, 1, 1]], dtype=np.uint8)
    # superpixel 0 labels 0 1 0 vs truth 0 0 1: 1/3 agree -> majority true class 0
    assert reference_answer(truth, LABELS, SUPERPIXELS, 0) == 0
    # superpixel 1 labels 1 0 0 vs truth 1 1 1: 1/3 agree -> 1
    assert reference_answer(truth, LABELS, SUPERPIXELS, 1) == 1
    agreeing = np.array([[0, 1, 1], [0, 0, 1]], dtype=np.uint8)
    assert reference_answer(agreeing, LABELS, SUPERPIXELS, 1) is None  # 2/3 agree: no change
    half = np.array([[0, 1, 1], [0, 255, 1]], dtype=np.uint8)  # 1 of the 2 labelled agrees
    assert reference_answer(half, LABELS, SUPERPIXELS, 1) == 1


def test_mean_iou_by_hand() -> None:
    truth = np.array([[0, 0, 1], [1, 255, 2]])
    predicted = np.array([[0, 1, 1], [255, 0, 2]])
    confusion = confusion_matrix(predicted, truth, 3)
    assert confusion.tolist() == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    assert mean_iou(confusion) == pytest.approx((1 / 2 + 1 / 3 + 1) / 3 * 100)
    # a class absent from both maps does not count
    assert mean_iou(confusion_matrix(predicted, truth, 4)) == pytest.approx((1 / 2 + 1 / 3 + 1) / 3 * 100)


def test_correction_query_cost_theorem_3_1() -> None:
    assert correction_query_bits(3, 2, 8) == pytest.approx(3 + 2 * 3)
    assert correction_query_bits(1, 1, 2) == pytest.approx(2)  # L = 2: same as classification


def test_query_precision_and_recall() -> None:
    quality = QueryQuality.from_counts(wrong_queried=3, num_queried=4, wrong_in_pool=6)
    assert (quality.precision, quality.recall) == (0.75, 0.5)
    assert QueryQuality.from_counts(0, 0, 0) == QueryQuality(None, None)
    with pytest.raises(ValueError, match="wrong_queried must lie between"):
        QueryQuality.from_counts(5, 4, 6)


def test_relabel_sequential_orders_ids_by_first_appearance() -> None:
    assert relabel_sequential(np.array([[300, 300, 7], [7, 42, 300]])).tolist() == [[0, 0, 1], [1, 2, 0]]


@pytest.mark.parametrize("algorithm", ["slic", "felzenszwalb"])
def test_computed_superpixels_are_contiguous_and_cover_the_image(algorithm: str) -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[:, 20:] = 200
    image = np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
    ids = compute_superpixels(image, algorithm, num_segments=8)
    assert ids.shape == (40, 40)
    assert set(np.unique(ids).tolist()) == set(range(ids.max() + 1))
    assert ids.max() >= 1
    # no superpixel straddles the sharp vertical edge by much
    for k in range(ids.max() + 1):
        cols = np.nonzero(ids == k)[1]
        assert np.mean(cols < 20) in (pytest.approx(0, abs=0.2), pytest.approx(1, abs=0.2))


def test_answers_would_change_agrees_with_each_oracle() -> None:
    truth = np.array([[0, 0, 1], [1, 1, 1]], dtype=np.uint8)
    reps = representative_pixels(PROBS, SUPERPIXELS)  # (1, 0) and (0, 2)
    # faithful: truth at (1, 0) is 1 vs label 0 -> change; at (0, 2) 1 vs 1 -> no change
    assert answers_would_change("faithful", truth, LABELS, SUPERPIXELS, reps).tolist() == [True, False]
    # reference: both superpixels agree on 1 of 3 pixels -> both change
    assert answers_would_change("reference", truth, LABELS, SUPERPIXELS, reps).tolist() == [True, True]
    with pytest.raises(ValueError, match="unknown oracle mode 'crowd'"):
        answers_would_change("crowd", truth, LABELS, SUPERPIXELS, reps)  # type: ignore[arg-type]
