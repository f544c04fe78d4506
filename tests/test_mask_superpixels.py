"""Overlapping object masks into one superpixel map: ordering, coverage, fragments."""

from __future__ import annotations

import math

import imgviz
import numpy as np
import pytest

from alc_backend.engine.mask_superpixels import (
    UNCOVERED,
    connected_regions,
    merge_small_regions,
    paint_masks,
    superpixels_from_masks,
)
from alc_backend.engine.metrics import achievable_segmentation_accuracy
from alc_backend.engine.superpixels import compute_superpixels, slic_with_count


def boxes(shape: tuple[int, int], *corners: tuple[int, int, int, int]) -> np.ndarray:
    """``(N, H, W)`` bool masks, one box ``(top, left, bottom, right)`` (exclusive ends) each."""
    masks = np.zeros((len(corners), *shape), dtype=bool)
    for index, (top, left, bottom, right) in enumerate(corners):
        masks[index, top:bottom, left:right] = True
    return masks


def same_partition(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two id maps split the pixels into the same groups (ids may differ)."""
    pairs = np.unique(np.stack([first.ravel(), second.ravel()]), axis=1)
    return pairs.shape[1] == np.unique(first).size == np.unique(second).size


def test_smaller_masks_are_painted_on_top_of_larger_ones_whatever_their_order() -> None:
    # a 2x2 "wheel" inside a 4x6 "car"; given small first and large first
    wheel, car = (2, 1, 4, 3), (0, 0, 4, 6)
    small_first = paint_masks(boxes((5, 6), wheel, car))
    large_first = paint_masks(boxes((5, 6), car, wheel))
    expected_small_first = np.array(
        [
            [1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1],
            [1, 0, 0, 1, 1, 1],
            [1, 0, 0, 1, 1, 1],
            [-1, -1, -1, -1, -1, -1],
        ]
    )
    np.testing.assert_array_equal(small_first, expected_small_first)
    np.testing.assert_array_equal(large_first, np.where(expected_small_first == -1, -1, 1 - expected_small_first))
    assert UNCOVERED == -1


def test_masks_of_equal_area_keep_input_order_the_later_on_top() -> None:
    painted = paint_masks(boxes((2, 3), (0, 0, 2, 2), (0, 1, 2, 3)))
    np.testing.assert_array_equal(painted, [[0, 1, 1], [0, 1, 1]])


def test_no_masks_leave_everything_uncovered() -> None:
    np.testing.assert_array_equal(paint_masks(np.zeros((0, 2, 3), dtype=bool)), np.full((2, 3), -1))


def test_connected_regions_split_every_value_into_4_connected_pieces() -> None:
    values = np.array(
        [
            [7, 7, 3, 7],
            [3, 3, 3, 7],
            [7, 3, 7, 7],
        ]
    )
    regions = connected_regions(values)
    # 3: one piece (the cross); 7: top-left pair, right-hand group, bottom-left single (diagonals do not join)
    expected = np.array(
        [
            [1, 1, 0, 2],
            [0, 0, 0, 2],
            [3, 0, 2, 2],
        ]
    )
    assert same_partition(regions, expected)
    assert sorted(np.unique(regions).tolist()) == [0, 1, 2, 3]


def test_a_small_region_joins_the_neighbour_with_the_longest_border() -> None:
    ids = np.array(
        [
            [0, 0, 0, 1, 1],
            [0, 0, 2, 1, 1],
            [0, 0, 2, 1, 1],
            [0, 0, 2, 1, 1],
            [0, 0, 0, 1, 1],
        ]
    )
    # region 2 (3 px) borders 0 on 3 + 2 sides (left, top, bottom) = 5 edges and 1 on 3 edges
    merged = merge_small_regions(ids, min_area=4)
    np.testing.assert_array_equal(merged, np.where(ids == 2, 0, ids))


def test_border_ties_go_to_the_larger_neighbour() -> None:
    ids = np.array(
        [
            [0, 0, 2, 1, 1, 1],
            [0, 0, 2, 1, 1, 1],
        ]
    )
    # region 2 borders 0 (4 px) and 1 (6 px) on 2 edges each
    merged = merge_small_regions(ids, min_area=3)
    np.testing.assert_array_equal(merged, [[0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])


def test_chains_of_small_regions_end_in_one_large_region() -> None:
    ids = np.array([[0, 0, 0, 0, 0, 0, 1, 2, 3]])
    # 3 joins 2, 2 joins 1 or 3 (tie: both 1 px, lower id 1), 1 joins 0: everything becomes one region
    merged = merge_small_regions(ids, min_area=2)
    np.testing.assert_array_equal(merged, np.zeros((1, 9), dtype=int))


def test_two_small_neighbours_merge_and_stay_when_alone() -> None:
    merged = merge_small_regions(np.array([[5, 9]]), min_area=10)
    np.testing.assert_array_equal(merged, [[0, 0]])


def test_regions_at_least_min_area_are_untouched() -> None:
    ids = np.array([[4, 4, 1], [4, 1, 1]])
    np.testing.assert_array_equal(merge_small_regions(ids, min_area=3), [[0, 0, 1], [0, 1, 1]])


def test_superpixels_cover_every_pixel_and_keep_the_small_mask_on_top() -> None:
    image = np.zeros((12, 16, 3), dtype=np.uint8)
    masks = boxes((12, 16), (2, 2, 6, 6), (0, 0, 12, 8))  # a 4x4 object inside the left half
    ids = superpixels_from_masks(masks, image, min_area=4, uncovered_segment_area=1000.0, fill="components")
    expected = np.zeros((12, 16), dtype=int)
    expected[:, 8:] = 1
    expected[2:6, 2:6] = 2
    assert same_partition(ids, expected)
    assert ids.min() == 0 and ids.max() == 2


def test_a_mask_split_in_two_by_a_smaller_one_becomes_two_superpixels() -> None:
    image = np.zeros((6, 9, 3), dtype=np.uint8)
    masks = boxes((6, 9), (0, 0, 6, 9), (0, 3, 6, 6))  # a vertical bar cuts the large mask in two
    ids = superpixels_from_masks(masks, image, min_area=1, uncovered_segment_area=100.0)
    expected = np.zeros((6, 9), dtype=int)
    expected[:, 3:6] = 1
    expected[:, 6:] = 2
    assert same_partition(ids, expected)


def test_uncovered_pixels_are_split_by_slic_at_the_requested_density() -> None:
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[:, 20:] = (255, 255, 255)  # two colours in the uncovered right half
    masks = boxes((40, 40), (0, 0, 40, 10))
    ids = superpixels_from_masks(masks, image, min_area=10, uncovered_segment_area=300.0)
    uncovered_ids = np.unique(ids[:, 10:])
    assert ids[:, :10].min() == ids[:, :10].max()  # the mask is one superpixel
    assert ids[0, 0] not in uncovered_ids
    # 1200 uncovered px at 300 px each: SLIC aims at 4 segments; none straddles the colour edge
    assert 2 <= uncovered_ids.size <= 8
    for superpixel in uncovered_ids:
        columns = np.nonzero(ids == superpixel)[1]
        assert columns.max() < 20 or columns.min() >= 20
    assert set(np.unique(ids)) == set(range(ids.max() + 1))


def test_uncovered_pixels_kept_whole_with_components_fill() -> None:
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    masks = boxes((10, 10), (0, 4, 10, 6))  # a bar splits the uncovered area in two
    ids = superpixels_from_masks(masks, image, min_area=1, uncovered_segment_area=1.0, fill="components")
    expected = np.zeros((10, 10), dtype=int)
    expected[:, 4:6] = 1
    expected[:, 6:] = 2
    assert same_partition(ids, expected)


def test_tiny_mask_fragments_join_a_neighbour() -> None:
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    # a 1-px speck mask and a 2x2 mask inside the big one; min_area 3 merges only the speck
    masks = boxes((10, 10), (0, 0, 10, 10), (5, 5, 6, 6), (1, 1, 3, 3))
    ids = superpixels_from_masks(masks, image, min_area=3, uncovered_segment_area=100.0)
    expected = np.zeros((10, 10), dtype=int)
    expected[1:3, 1:3] = 1
    assert same_partition(ids, expected)


def test_no_masks_at_all_gives_slic_over_the_whole_image() -> None:
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    image[10:] = 200
    ids = superpixels_from_masks(np.zeros((0, 20, 20), dtype=bool), image, min_area=5, uncovered_segment_area=100.0)
    assert ids.shape == (20, 20)
    assert ids.max() >= 1
    assert set(np.unique(ids)) == set(range(ids.max() + 1))


def test_bad_arguments_are_named() -> None:
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"masks must be \(N, 4, 4\) like the image, got \(1, 4, 5\)"):
        superpixels_from_masks(np.zeros((1, 4, 5), bool), image, min_area=1, uncovered_segment_area=1.0)
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\), got shape \(4, 4\)"):
        superpixels_from_masks(np.zeros((1, 4, 4), bool), image[..., 0], min_area=1, uncovered_segment_area=1.0)
    with pytest.raises(ValueError, match="unknown fill 'holes'; choose from \\('slic', 'components'\\)"):
        superpixels_from_masks(np.zeros((1, 4, 4), bool), image, min_area=1, uncovered_segment_area=1.0, fill="holes")
    with pytest.raises(ValueError, match="uncovered_segment_area must be > 0 px, got 0"):
        superpixels_from_masks(np.zeros((1, 4, 4), bool), image, min_area=1, uncovered_segment_area=0)


def test_achievable_segmentation_accuracy_by_hand() -> None:
    superpixels = np.array(
        [
            [0, 0, 0, 1],
            [0, 0, 1, 1],
            [2, 2, 1, 1],
        ]
    )
    truth = np.array(
        [
            [3, 3, 1, 1],
            [3, 255, 1, 1],
            [0, 2, 255, 1],
        ]
    )
    # superpixel 0: labelled 3,3,1,3 -> 3 of 4; superpixel 1: 1,1,1,1 -> 4 of 4; superpixel 2: 0,2 -> 1 of 2
    assert achievable_segmentation_accuracy(superpixels, truth) == pytest.approx(8 / 10)
    assert achievable_segmentation_accuracy(np.arange(12).reshape(3, 4), truth) == 1.0
    assert math.isnan(achievable_segmentation_accuracy(superpixels, np.full((3, 4), 255)))
    with pytest.raises(ValueError, match=r"^superpixels have shape \(3, 4\) but ground truth has \(4, 3\)$"):
        achievable_segmentation_accuracy(superpixels, truth.T)


def test_slic_with_count_gives_at_least_the_count_and_few_more() -> None:
    image = imgviz.data.voc()["rgb"][::4, ::4].copy()  # a real photo, 94x125
    for count in (7, 30, 55):
        returned = int(slic_with_count(image, count).max()) + 1
        assert count <= returned <= count + max(3, count // 5)
        assert int(compute_superpixels(image, "slic", num_segments=count).max()) + 1 < count  # plain SLIC falls short
