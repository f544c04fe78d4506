"""Engine: majority class per superpixel, painting detections, validating pseudo-labels."""

from __future__ import annotations

import numpy as np
import pytest

from alc_backend.engine.pseudo_labels import (
    PseudoLabelError,
    majority_per_superpixel,
    paint_detections,
    validate_pseudo_labels,
)

N = 255  # no class


def test_each_superpixel_takes_its_most_frequent_known_class() -> None:
    labels = np.array(
        [
            [0, 0, 1, 2, N, N],
            [0, 1, 1, 2, N, N],
            [3, 3, N, N, 2, 1],
            [N, N, N, 1, 2, 1],
        ],
        dtype=np.uint8,
    )
    superpixels = np.array(
        [
            [0, 0, 1, 1, 2, 2],
            [0, 0, 1, 1, 2, 2],
            [3, 3, 3, 4, 4, 4],
            [3, 3, 3, 4, 4, 4],
        ]
    )
    # 0: classes 0,0,0,1 -> 0. 1: 1,2,1,2 -> tie, smallest 1. 2: only 255 -> 255.
    # 3: 3,3 and four 255 -> 3 (255 never wins). 4: 2,1,1,2,1 plus one 255 -> 1.
    expected = np.array(
        [
            [0, 0, 1, 1, N, N],
            [0, 0, 1, 1, N, N],
            [3, 3, 3, 1, 1, 1],
            [3, 3, 3, 1, 1, 1],
        ],
        dtype=np.uint8,
    )
    result = majority_per_superpixel(labels, superpixels)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


def test_majority_of_an_all_ignore_map_is_all_ignore() -> None:
    labels = np.full((2, 3), N, dtype=np.uint8)
    superpixels = np.array([[0, 0, 1], [2, 2, 1]])
    np.testing.assert_array_equal(majority_per_superpixel(labels, superpixels), labels)


def test_majority_rejects_mismatched_or_out_of_range_input() -> None:
    superpixels = np.zeros((2, 2), dtype=np.int32)
    with pytest.raises(ValueError, match=r"^labels \(2, 3\) and superpixels \(2, 2\) must have the same shape$"):
        majority_per_superpixel(np.zeros((2, 3), dtype=np.uint8), superpixels)
    with pytest.raises(ValueError, match=r"^labels must lie in 0\.\.255, got values -1\.\.0$"):
        majority_per_superpixel(np.array([[0, -1], [0, 0]]), superpixels)
    with pytest.raises(ValueError, match="contiguous"):
        majority_per_superpixel(np.zeros((2, 2), dtype=np.uint8), np.array([[0, 2], [0, 2]]))


def test_larger_masks_are_painted_first_and_higher_scores_on_top() -> None:
    everything = np.ones((3, 4), dtype=bool)
    left = np.zeros((3, 4), dtype=bool)
    left[:, :2] = True  # 6 px
    top = np.zeros((3, 4), dtype=bool)
    top[0, :] = True  # 4 px
    corner = np.zeros((3, 4), dtype=bool)
    corner[:2, 2:] = True  # 4 px, overlaps ``top`` in (0, 2) and (0, 3)
    detections = [(top, 3, 0.4), (everything, 1, 0.1), (corner, 4, 0.9), (left, 2, 0.5)]
    # painted: everything (12 px), left (6 px), then top and corner (4 px each): corner's 0.9 lands on top
    expected = np.array(
        [
            [3, 3, 4, 4],
            [2, 2, 4, 4],
            [2, 2, 1, 1],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(paint_detections((3, 4), detections, background=0), expected)


def test_uncovered_pixels_get_the_background() -> None:
    mask = np.zeros((2, 2), dtype=bool)
    mask[0, 0] = True
    np.testing.assert_array_equal(
        paint_detections((2, 2), [(mask, 5, 0.3)], background=N), np.array([[5, N], [N, N]], dtype=np.uint8)
    )
    np.testing.assert_array_equal(paint_detections((2, 2), [], background=7), np.full((2, 2), 7, dtype=np.uint8))


def test_equal_area_and_score_keep_the_given_order() -> None:
    first = np.array([[True, True], [False, False]])
    second = np.array([[False, True], [False, True]])
    labels = paint_detections((2, 2), [(first, 1, 0.5), (second, 2, 0.5)], background=0)
    np.testing.assert_array_equal(labels, np.array([[1, 2], [0, 2]], dtype=np.uint8))


def test_painting_rejects_bad_detections() -> None:
    with pytest.raises(ValueError, match=r"^detection 0: mask must be a \(2, 2\) bool array, got bool \(2, 3\)$"):
        paint_detections((2, 2), [(np.ones((2, 3), dtype=bool), 1, 0.5)], background=0)
    with pytest.raises(ValueError, match=r"^detection 0: mask must be a \(2, 2\) bool array, got uint8 \(2, 2\)$"):
        paint_detections((2, 2), [(np.ones((2, 2), dtype=np.uint8), 1, 0.5)], background=0)
    with pytest.raises(ValueError, match=r"^detection 0: class index must lie in 0\.\.254, got 255$"):
        paint_detections((2, 2), [(np.ones((2, 2), dtype=bool), 255, 0.5)], background=0)
    with pytest.raises(ValueError, match=r"^background must be a class index or 255, got 256$"):
        paint_detections((2, 2), [], background=256)


def test_valid_labels_come_back_as_a_uint8_copy() -> None:
    labels = np.array([[0, 2], [N, 1]], dtype=np.int64)
    checked = validate_pseudo_labels(labels, (2, 2), 3, "masks/a.png")
    assert checked.dtype == np.uint8
    np.testing.assert_array_equal(checked, labels)
    same_type = np.array([[0, 1]], dtype=np.uint8)
    assert validate_pseudo_labels(same_type, (1, 2), 2, "x") is not same_type


def test_validation_messages_name_the_source() -> None:
    def message(labels: np.ndarray, shape: tuple[int, int] = (2, 3), num_classes: int = 3) -> str:
        with pytest.raises(PseudoLabelError) as caught:
            validate_pseudo_labels(labels, shape, num_classes, "src on image a")
        return str(caught.value)

    assert message(np.zeros((2, 3, 1), dtype=np.uint8)) == (
        "src on image a is an array of shape (2, 3, 1); pseudo-labels must be (H, W)"
    )
    assert message(np.zeros((4, 5), dtype=np.uint8)) == ("src on image a is 5x4 but the image is 3x2 (width x height)")
    assert message(np.zeros((2, 3), dtype=np.float32)) == (
        "src on image a has dtype float32; pseudo-labels must be integer class indices"
    )
    assert message(np.array([[0, 3, 254], [N, -1, 3]])) == (
        "src on image a holds class indices [-1, 3, 254] but there are 3 classes (0..2, 255 = none)"
    )
    many = np.arange(3, 15).reshape(2, 6)
    assert message(many, shape=(2, 6)) == (
        "src on image a holds class indices [3, 4, 5, 6, 7, 8, 9, 10, 11, 12] and 2 more "
        "but there are 3 classes (0..2, 255 = none)"
    )
    assert issubclass(PseudoLabelError, ValueError)
