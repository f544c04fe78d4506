"""Multi-class label queries (eqs. 8, 11-13 and Appendix B) against values computed by hand.

The localisation tests share one 4×6 image with three superpixels, D = 2 features and C = 5
classes (only classes 1 and 4 have non-zero probabilities)::

    superpixels  0 0 0 1 1 1     features  (1,0) (4,3) (0,2) | (4,3) (-1,5) (3,1)
                 0 0 0 1 1 1               (3,4) (1,1) (5,12)| (2,3) (0,0)  (7,1)
                 2 2 2 2 2 2               (1,0) everywhere in rows 2-3
                 2 2 2 2 2 2

    P(class 1)   .9  .5  .1  0 0 0         P(class 4)   .05 0   .8  0 0 0
                 .4  .3  .2  0 0 0                      .5  0   .8  0 0 0
                 0   0   0   0 0 .95                    .99 0   0   0 0 0
                 0 ...                                  0 ...

Superpixel 0 is answered with classes {1, 4}. Eq. 8 inside superpixel 0: class 1 peaks at (0, 0)
(the .95 at (3, 5) is outside); class 4 peaks at .8 on both (0, 2) and (1, 2), the first in raster
order wins: (0, 2). Prototypes P1 = (1, 0) and P4 = (0, 2), so a pixel's cosine to P1 is x/|v| and
to P4 is y/|v|::

    pixel      (0,0) (0,1) (0,2) (1,0) (1,1)  (1,2)
    cos P1     1     .8    0     .6    .7071  5/13 = .3846
    cos P4     0     .6    1     .8    .7071  12/13 = .9231
    eq. 11     1     1     4     4     1 (tie: lowest class)  4

Eq. 12: alpha_1 = median{1, .8, .7071} = .8 and alpha_4 = median{1, .8, .9231} = .9231.
Eq. 13 on superpixel 1 (the unlabelled neighbour)::

    (0,3) (4,3):  cos P1 .8 is not > .8, cos P4 .6           -> 255
    (0,4) (-1,5): cos P4 5/sqrt(26) = .9806 > .9231          -> 4
    (0,5) (3,1):  cos P1 3/sqrt(10) = .9487 > .8             -> 1
    (1,3) (2,3):  cos P1 2/sqrt(13) = .5547, cos P4 .8321    -> 255
    (1,4) (0,0):  cosine 0 to both                           -> 255
    (1,5) (7,1):  cos P1 7/sqrt(50) = .9899 > .8             -> 1
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from alc_backend import IGNORE_INDEX
from alc_backend.engine.multiclass import (
    ORACLE_BAND,
    LocalisedRegion,
    expand_region,
    keep_agreeing_labels,
    localise_region,
    multiclass_oracle_answer,
    neighbouring_superpixels,
    prototype_pixels,
)

X = IGNORE_INDEX

SUPERPIXELS = np.array(
    [
        [0, 0, 0, 1, 1, 1],
        [0, 0, 0, 1, 1, 1],
        [2, 2, 2, 2, 2, 2],
        [2, 2, 2, 2, 2, 2],
    ]
)
MEMBER = SUPERPIXELS == 0
TARGET = SUPERPIXELS == 1


def make_features() -> np.ndarray:
    """``(2, 4, 6)`` float32 features of the module docstring."""
    vectors = np.zeros((4, 6, 2), dtype=np.float32)
    vectors[:2] = [
        [(1, 0), (4, 3), (0, 2), (4, 3), (-1, 5), (3, 1)],
        [(3, 4), (1, 1), (5, 12), (2, 3), (0, 0), (7, 1)],
    ]
    vectors[2:] = (1, 0)
    return np.moveaxis(vectors, 2, 0).copy()


def make_probs() -> np.ndarray:
    """``(5, 4, 6)`` float32 probabilities of the module docstring."""
    probs = np.zeros((5, 4, 6), dtype=np.float32)
    probs[1, :2, :3] = [[0.9, 0.5, 0.1], [0.4, 0.3, 0.2]]
    probs[1, 3, 5] = 0.95
    probs[4, :2, :3] = [[0.05, 0.0, 0.8], [0.5, 0.0, 0.8]]
    probs[4, 2, 0] = 0.99
    return probs


FEATURES = make_features()
PROBS = make_probs()


# --- the simulated annotator (Appendix B) -------------------------------------------------------


def edge_region_truth() -> tuple[np.ndarray, np.ndarray]:
    """A 7×9 image: superpixel 1 = columns 0-6 (touching the top, bottom and left edges), 0 = columns 7-8.

    Its only boundary is column 6 (right neighbours in superpixel 0). A 5×5 dilation reaches
    two columns further: the band is columns 4-6, the interior columns 0-3. Ground truth: class
    3 everywhere in superpixel 1 except 2 at (0, 3) (interior, on the top image edge), 7 at
    (3, 4) and 5 at (6, 6) (both in the band), 255 at (3, 1); class 9 in superpixel 0.
    """
    superpixels = np.zeros((7, 9), dtype=np.int64)
    superpixels[:, :7] = 1
    truth = np.full((7, 9), 9, dtype=np.uint8)
    truth[:, :7] = 3
    truth[0, 3] = 2
    truth[3, 4] = 7
    truth[6, 6] = 5
    truth[3, 1] = X
    return truth, superpixels


def test_oracle_leaves_out_classes_seen_only_in_the_boundary_band() -> None:
    truth, superpixels = edge_region_truth()
    # 7 (column 4) and 5 (column 6) lie in the band; 2 sits in the interior even though it is on
    # the image edge (an edge is no boundary: counting it would put rows 0-2 in the band)
    assert multiclass_oracle_answer(truth, superpixels, 1) == (2, 3)
    assert ORACLE_BAND == 5
    # a 3×3 dilation reaches one column in: band = columns 5-6, so 7 at column 4 is seen
    assert multiclass_oracle_answer(truth, superpixels, 1, band=3) == (2, 3, 7)
    # band 0: every labelled class of the region; never 255, never the neighbour's 9
    assert multiclass_oracle_answer(truth, superpixels, 1, band=0) == (2, 3, 5, 7)
    # superpixel 0 is two columns wide, all band: fallback to its majority class
    assert multiclass_oracle_answer(truth, superpixels, 0) == (9,)


def test_oracle_band_runs_along_every_side_of_an_inner_region() -> None:
    # superpixel 1 = rows 1-5 × columns 1-5 of a 7×7 image; with band 3 its outer two rings are
    # the band and only (3, 3) is interior
    superpixels = np.zeros((7, 7), dtype=np.int64)
    superpixels[1:6, 1:6] = 1
    truth = np.zeros((7, 7), dtype=np.uint8)
    truth[1:6, 1:6] = 4
    truth[2, 2] = 8  # second ring: band
    assert multiclass_oracle_answer(truth, superpixels, 1, band=3) == (4,)
    truth[3, 3] = 6  # the only interior pixel: 4 and 8 are now seen only in the band
    assert multiclass_oracle_answer(truth, superpixels, 1, band=3) == (6,)
    assert multiclass_oracle_answer(truth, superpixels, 1, band=1) == (4, 6, 8)  # band = the boundary ring only


def test_oracle_falls_back_to_the_majority_class_when_the_band_covers_everything() -> None:
    superpixels = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    truth = np.array([[5, 5, 1, 1], [2, 5, 0, X]], dtype=np.uint8)
    assert multiclass_oracle_answer(truth, superpixels, 0) == (5,)  # 5, 5, 5 vs 2
    assert multiclass_oracle_answer(truth, superpixels, 1) == (1,)  # 1, 1 vs 0
    truth[:, 2:] = [[0, 1], [1, 0]]
    assert multiclass_oracle_answer(truth, superpixels, 1) == (0,)  # tie: lowest class
    truth[:, 2:] = X
    assert multiclass_oracle_answer(truth, superpixels, 1) == ()  # nothing labelled


def test_oracle_falls_back_when_the_interior_is_unlabelled() -> None:
    truth, superpixels = edge_region_truth()
    truth[:, :4] = X  # the interior; the band holds 3 ×19, 7 and 5
    assert multiclass_oracle_answer(truth, superpixels, 1) == (3,)


def test_oracle_rejects_bad_input() -> None:
    truth, superpixels = edge_region_truth()
    with pytest.raises(ValueError, match=r"ground_truth is 7×9 \(H×W\) but superpixels is 9×7"):
        multiclass_oracle_answer(truth, superpixels.T.copy(), 1)
    with pytest.raises(ValueError, match=r"band must be 0 or an odd number of pixels, got 4"):
        multiclass_oracle_answer(truth, superpixels, 1, band=4)
    with pytest.raises(ValueError, match=r"band must be 0 or an odd number of pixels, got -1"):
        multiclass_oracle_answer(truth, superpixels, 1, band=-1)
    with pytest.raises(ValueError, match=r"superpixel 2 covers no pixel"):
        multiclass_oracle_answer(truth, superpixels, 2)
    with pytest.raises(ValueError, match=r"superpixel ids must be integers"):
        multiclass_oracle_answer(truth, superpixels.astype(np.float32), 1)


# --- prototypical pixels (eq. 8) ----------------------------------------------------------------


def test_prototype_pixels_are_the_most_confident_member_pixels() -> None:
    # class 4 ties at .8 on (0, 2) and (1, 2): first in raster order; the larger values at (3, 5)
    # and (2, 0) lie outside the member
    assert prototype_pixels(PROBS, MEMBER, [4, 1]) == {1: (0, 0), 4: (0, 2)}
    # over the whole image the outside peaks win
    assert prototype_pixels(PROBS, np.ones((4, 6), dtype=bool), [1, 4]) == {1: (3, 5), 4: (2, 0)}
    # a class with zero probability everywhere ties everywhere: the member's first pixel
    assert prototype_pixels(PROBS, TARGET, [0]) == {0: (0, 3)}


def test_prototype_pixels_reject_bad_input() -> None:
    with pytest.raises(ValueError, match=r"member holds no pixel"):
        prototype_pixels(PROBS, np.zeros((4, 6), dtype=bool), [1])
    with pytest.raises(ValueError, match=r"member must be an \(H, W\) bool array, got int64 \(4, 6\)"):
        prototype_pixels(PROBS, MEMBER.astype(np.int64), [1])
    with pytest.raises(ValueError, match=r"classes is empty"):
        prototype_pixels(PROBS, MEMBER, [])
    with pytest.raises(ValueError, match=r"class 5 is out of range for 5 classes"):
        prototype_pixels(PROBS, MEMBER, [1, 5])
    with pytest.raises(ValueError, match=r"class -1 is out of range for 5 classes"):
        prototype_pixels(PROBS, MEMBER, [-1])
    with pytest.raises(ValueError, match=r"classes repeat: \[1\]"):
        prototype_pixels(PROBS, MEMBER, [1, 4, 1])
    with pytest.raises(ValueError, match=r"probs is 4×5 \(H×W\) but member is 4×6"):
        prototype_pixels(PROBS[:, :, :5], MEMBER, [1])
    with pytest.raises(ValueError, match=r"probs must be an \(N, H, W\) array, got shape \(4, 6\)"):
        prototype_pixels(PROBS[1], MEMBER, [1])


# --- intra-region label localisation (eqs. 11, 12) ----------------------------------------------


def test_localisation_assigns_the_nearest_prototype_and_median_thresholds() -> None:
    region = localise_region(FEATURES, PROBS, MEMBER, [4, 1])
    assert region.classes == (1, 4)
    assert region.prototype_pixels == ((0, 0), (0, 2))
    np.testing.assert_array_equal(region.prototypes, [[1, 0], [0, 2]])
    expected = np.array(
        [
            [1, 1, 4, X, X, X],
            [4, 1, 4, X, X, X],
            [X, X, X, X, X, X],
            [X, X, X, X, X, X],
        ]
    )
    np.testing.assert_array_equal(region.labels, expected)
    assert region.labels.dtype == np.uint8
    assert region.thresholds == pytest.approx([0.8, 12 / 13])


def test_single_class_takes_the_whole_region_without_features() -> None:
    region = localise_region(None, None, MEMBER, [7])
    np.testing.assert_array_equal(region.labels, np.where(MEMBER, 7, X))
    assert region.classes == (7,)
    assert region.prototype_pixels is None and region.prototypes is None and region.thresholds is None
    with pytest.raises(ValueError, match=r"the region was localised without features"):
        expand_region(FEATURES, region, TARGET)


def test_single_class_with_features_gets_an_even_count_median() -> None:
    # member = rows 0-1 × columns 0-1; class 1 peaks at (0, 0): prototype (1, 0); cosines
    # 1, .8, .6, .7071 -> median (.7071 + .8) / 2 = .75355, the mean of the two middle values
    member = np.zeros((4, 6), dtype=bool)
    member[:2, :2] = True
    region = localise_region(FEATURES, PROBS, member, [1])
    np.testing.assert_array_equal(region.labels, np.where(member, 1, X))
    assert region.thresholds == pytest.approx([(math.sqrt(0.5) + 0.8) / 2])
    # cos to (1, 0) > .75355 on superpixel 1: (0, 3) .8, (0, 5) .9487, (1, 5) .9899
    expected = np.full((4, 6), X)
    expected[0, 3] = expected[0, 5] = expected[1, 5] = 1
    np.testing.assert_array_equal(expand_region(FEATURES, region, TARGET), expected)


def test_a_class_no_pixel_takes_gets_an_infinite_threshold_and_never_expands() -> None:
    # both classes peak at (0, 0): identical prototypes (1, 0), every pixel ties and takes class 1;
    # alpha_1 = median{1, .8, 0, .6, .7071, .3846} = (.6 + .7071) / 2 = .65355
    probs = PROBS.copy()
    probs[4] = probs[1]
    region = localise_region(FEATURES, probs, MEMBER, [1, 4])
    np.testing.assert_array_equal(region.labels, np.where(MEMBER, 1, X))
    assert region.thresholds[0] == pytest.approx((0.6 + math.sqrt(0.5)) / 2)
    assert region.thresholds[1] == math.inf
    expected = np.full((4, 6), X)
    expected[0, 3] = expected[0, 5] = expected[1, 5] = 1  # cos .8, .9487, .9899 > .65355
    np.testing.assert_array_equal(expand_region(FEATURES, region, TARGET), expected)


def test_localisation_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"localising 2 classes needs features and probs"):
        localise_region(None, None, MEMBER, [1, 4])
    with pytest.raises(ValueError, match=r"pass both features and probs, or \(for a single class\) neither"):
        localise_region(FEATURES, None, MEMBER, [1])
    with pytest.raises(ValueError, match=r"features is 4×5 \(H×W\) but member is 4×6"):
        localise_region(FEATURES[:, :, :5], PROBS, MEMBER, [1, 4])
    with pytest.raises(ValueError, match=r"probs is 3×6 \(H×W\) but member is 4×6"):
        localise_region(FEATURES, PROBS[:, :3], MEMBER, [1, 4])
    with pytest.raises(ValueError, match=r"member holds no pixel"):
        localise_region(FEATURES, PROBS, np.zeros((4, 6), dtype=bool), [1, 4])
    with pytest.raises(ValueError, match=r"classes is empty"):
        localise_region(None, None, MEMBER, ())
    with pytest.raises(ValueError, match=r"class 5 is out of range for 5 classes"):
        localise_region(FEATURES, PROBS, MEMBER, [4, 5])
    with pytest.raises(ValueError, match=r"classes repeat: \[4\]"):
        localise_region(FEATURES, PROBS, MEMBER, [4, 4])
    with pytest.raises(ValueError, match=r"class 255 is out of range for 255 classes"):
        localise_region(None, None, MEMBER, [255])
    wide = np.zeros((300, 4, 6), dtype=np.float32)
    with pytest.raises(ValueError, match=r"class 256 does not fit a uint8 label map below IGNORE_INDEX \(255\)"):
        localise_region(FEATURES, wide, MEMBER, [1, 256])


# --- label expansion (eq. 13) -------------------------------------------------------------------


def test_expansion_labels_neighbour_pixels_close_to_a_prototype() -> None:
    region = localise_region(FEATURES, PROBS, MEMBER, [1, 4])
    target = np.isin(SUPERPIXELS, neighbouring_superpixels(SUPERPIXELS, 0)[:1])  # superpixel 1 only
    expected = np.array(
        [
            [X, X, X, X, 4, 1],
            [X, X, X, X, X, 1],
            [X, X, X, X, X, X],
            [X, X, X, X, X, X],
        ]
    )
    expanded = expand_region(FEATURES, region, target)
    np.testing.assert_array_equal(expanded, expected)
    assert expanded.dtype == np.uint8
    # the whole image as target: rows 2-3 hold (1, 0), cosine 1 > .8 to P1; superpixel 0's own
    # pixels take a class only above its threshold: (0, 0) 1 and (0, 2) 4 (cosine 1), (1, 2) cosine
    # 12/13 is not > alpha_4 = 12/13
    everywhere = expand_region(FEATURES, region, np.ones((4, 6), dtype=bool))
    np.testing.assert_array_equal(everywhere[2:], 1)
    np.testing.assert_array_equal(everywhere[:2, :3], [[1, X, 4], [X, X, X]])
    np.testing.assert_array_equal(expand_region(FEATURES, region, np.zeros((4, 6), dtype=bool)), np.full((4, 6), X))


def test_expansion_takes_the_nearest_class_among_those_above_their_threshold() -> None:
    # prototypes P0 = (1, 0), P3 = (1, 1) with thresholds .5 and .995:
    #   (4, 3):  cos P0 .8 > .5,     cos P3 7/(5 sqrt 2) = .98995 not > .995  -> 0 (P3 is nearer)
    #   (12, 5): cos P0 .9231 > .5,  cos P3 17/(13 sqrt 2) = .92468 not > .995 -> 0
    #   (2, 2):  cos P0 .7071 > .5,  cos P3 1 > .995: both relevant, P3 nearer -> 3
    #   (0, 1):  cos P0 0,           cos P3 .7071                              -> 255
    #   (-1, 0): cos P0 -1,          cos P3 -.7071                             -> 255
    #   (2, 2) at (1, 2) lies outside the target                               -> 255
    region = LocalisedRegion(
        classes=(0, 3),
        labels=np.full((2, 3), X, dtype=np.uint8),
        prototype_pixels=None,
        prototypes=np.array([[1.0, 0.0], [1.0, 1.0]], dtype=np.float32),
        thresholds=np.array([0.5, 0.995]),
    )
    vectors = np.array([[(4, 3), (12, 5), (2, 2)], [(0, 1), (-1, 0), (2, 2)]], dtype=np.float32)
    features = np.moveaxis(vectors, 2, 0)
    target = np.array([[True, True, True], [True, True, False]])
    np.testing.assert_array_equal(expand_region(features, region, target), [[0, 0, 3], [X, X, X]])


def test_expansion_rejects_bad_input() -> None:
    region = localise_region(FEATURES, PROBS, MEMBER, [1, 4])
    with pytest.raises(ValueError, match=r"features have 3 channels but the prototypes 2"):
        expand_region(np.zeros((3, 4, 6), dtype=np.float32), region, TARGET)
    with pytest.raises(ValueError, match=r"features is 4×5 \(H×W\) but target is 4×6"):
        expand_region(FEATURES[:, :, :5], region, TARGET)
    with pytest.raises(ValueError, match=r"target must be an \(H, W\) = \(4, 6\) bool array, got int64 \(4, 6\)"):
        expand_region(FEATURES, region, TARGET.astype(np.int64))


# --- neighbours ---------------------------------------------------------------------------------


def test_neighbours_share_an_edge() -> None:
    superpixels = np.array(
        [
            [0, 0, 1, 1, 2, 2],
            [0, 3, 3, 1, 2, 2],
            [4, 3, 3, 5, 5, 2],
            [4, 4, 6, 7, 5, 5],
        ]
    )
    # 3's pixels (1,1) (1,2) (2,1) (2,2): above 0 and 1, left 0 and 4, right 1 and 5, below 4 and 6;
    # 7 at (3, 3) touches (2, 2) only at a corner
    assert neighbouring_superpixels(superpixels, 3).tolist() == [0, 1, 4, 5, 6]
    assert neighbouring_superpixels(superpixels, 2).tolist() == [1, 5]  # on the image edge
    assert neighbouring_superpixels(superpixels, 7).tolist() == [5, 6]
    assert neighbouring_superpixels(np.zeros((2, 2), dtype=np.int64), 0).tolist() == []
    assert neighbouring_superpixels(SUPERPIXELS, 0).tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"superpixel 8 covers no pixel"):
        neighbouring_superpixels(superpixels, 8)
    with pytest.raises(ValueError, match=r"superpixels must be an \(H, W\) array, got shape \(24,\)"):
        neighbouring_superpixels(superpixels.ravel(), 3)


def test_a_mixed_region_keeps_the_current_labels_that_are_among_the_ticked_classes() -> None:
    """Ticked {1, 2}: current 1 and 2 stay; current 0 and 3 (ruled out) take the localised class."""
    localised = np.array([[255, 1, 1], [2, 2, 255]], dtype=np.uint8)
    current = np.array([[0, 2, 0], [3, 1, 3]], dtype=np.uint8)
    assert keep_agreeing_labels(localised, current, (1, 2)).tolist() == [[255, 2, 1], [2, 1, 255]]
    with pytest.raises(ValueError, match=r"localised labels are \(2, 3\) but the current labels are \(3, 2\)"):
        keep_agreeing_labels(localised, current.reshape(3, 2), (1, 2))
