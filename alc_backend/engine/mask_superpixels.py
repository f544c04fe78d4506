"""One superpixel map from overlapping object masks (SAM's automatic masks).

SAM's masks overlap, nest and leave holes. :func:`superpixels_from_masks` turns them into a
partition of the image in four steps:

1. :func:`paint_masks`: masks are painted largest first, so a smaller mask ends on top of the
   larger ones it overlaps (a wheel stays a wheel inside its car).
2. :func:`connected_regions`: what is left visible of each mask is split into its connected
   pieces, so one superpixel never spans two separate places.
3. Pixels no mask covers are kept too, so that missed objects and background can be queried:
   over-segmented with SLIC restricted to them (``fill="slic"``), or kept as connected pieces
   (``fill="components"``).
4. :func:`merge_small_regions`: fragments below a minimum area join the neighbour they share
   the longest border with.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.segmentation import slic

from alc_backend.engine.superpixels import relabel_sequential

UncoveredFill = Literal["slic", "components"]
UNCOVERED_FILLS: tuple[UncoveredFill, ...] = ("slic", "components")

UNCOVERED = -1
"""Value of :func:`paint_masks` where no mask lies."""

_FOUR_NEIGHBOURS = ndimage.generate_binary_structure(2, 1)


def paint_masks(masks: np.ndarray) -> np.ndarray:
    """Paint boolean masks into one map, smaller masks on top of larger ones.

    Args:
        masks: ``(N, H, W)`` bool, one object mask per entry (``N`` may be 0).

    Returns:
        ``(H, W)`` int32: the index of the mask shown at each pixel, :data:`UNCOVERED` (-1)
        where no mask lies. Masks of equal area keep their input order (the later on top).
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {masks.shape}")
    painted = np.full(masks.shape[1:], UNCOVERED, dtype=np.int32)
    areas = masks.sum(axis=(1, 2))
    for index in np.argsort(-areas, kind="stable"):
        painted[masks[index].astype(bool)] = index
    return painted


def connected_regions(values: np.ndarray) -> np.ndarray:
    """Split every value's area of a map into its 4-connected pieces.

    Args:
        values: ``(H, W)`` integer map (any values).

    Returns:
        ``(H, W)`` int32 ids ``0..K-1``, one per connected piece of equal value.
    """
    regions = np.zeros(values.shape, dtype=np.int32)
    next_id = 0
    for value in np.unique(values):
        pieces, count = ndimage.label(values == value, structure=_FOUR_NEIGHBOURS)
        inside = pieces > 0
        regions[inside] = pieces[inside] + next_id - 1
        next_id += count
    return regions


def merge_small_regions(ids: np.ndarray, min_area: int) -> np.ndarray:
    """Merge every region smaller than ``min_area`` pixels into a neighbour.

    A small region joins the 4-neighbour it shares the longest border with (ties: the larger
    neighbour, then the lower id). Merges repeat until every region has ``min_area`` pixels or
    is alone in the image.

    Args:
        ids: ``(H, W)`` integer region ids (any values).
        min_area: smallest region kept on its own, in pixels.

    Returns:
        ``(H, W)`` int32 ids ``0..K-1`` in raster order of first appearance.
    """
    ids = relabel_sequential(ids)
    while True:
        areas = np.bincount(ids.ravel())
        small = areas < min_area
        if not small.any() or areas.size == 1:
            return ids
        targets = _merge_targets(ids, areas, small)
        if targets.size == 0:
            return ids
        groups = _merged_groups(areas.size, targets)
        ids = relabel_sequential(groups[ids])


def _merge_targets(ids: np.ndarray, areas: np.ndarray, small: np.ndarray) -> np.ndarray:
    """``(M, 2)`` pairs (small region, the neighbour it joins) for every small region with a neighbour."""
    first = np.concatenate([ids[:, :-1].ravel(), ids[:-1, :].ravel()])
    second = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel()])
    across = first != second
    source = np.concatenate([first[across], second[across]])
    neighbour = np.concatenate([second[across], first[across]])
    keep = small[source]
    source, neighbour = source[keep], neighbour[keep]
    if source.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    num_regions = areas.size
    pair, border = np.unique(source.astype(np.int64) * num_regions + neighbour, return_counts=True)
    source, neighbour = pair // num_regions, pair % num_regions
    order = np.lexsort((neighbour, -areas[neighbour], -border, source))
    source, neighbour = source[order], neighbour[order]
    first_of_source = np.r_[True, source[1:] != source[:-1]]
    return np.stack([source[first_of_source], neighbour[first_of_source]], axis=1)


def _merged_groups(num_regions: int, targets: np.ndarray) -> np.ndarray:
    """``(num_regions,)`` group id of each region once every pair in ``targets`` is joined."""
    graph = coo_matrix(
        (np.ones(len(targets), dtype=np.int8), (targets[:, 0], targets[:, 1])), shape=(num_regions, num_regions)
    )
    _, groups = connected_components(graph, directed=False)
    return groups.astype(np.int32)


def superpixels_from_masks(
    masks: np.ndarray,
    image: np.ndarray,
    *,
    min_area: int,
    uncovered_segment_area: float,
    fill: UncoveredFill = "slic",
    compactness: float = 10.0,
) -> np.ndarray:
    """A superpixel map that covers every pixel, from overlapping object masks.

    Args:
        masks: ``(N, H, W)`` bool object masks (``N`` may be 0).
        image: ``(H, W, 3)`` uint8 RGB image the masks belong to (used by SLIC on the pixels no
            mask covers).
        min_area: fragments smaller than this many pixels join a neighbour.
        uncovered_segment_area: with ``fill="slic"``, the mean area in pixels SLIC aims at on
            the uncovered pixels (``H*W / num_superpixels`` gives the density of plain SLIC).
        fill: ``"slic"`` over-segments the uncovered pixels; ``"components"`` keeps each of
            their connected pieces whole.
        compactness: SLIC's colour/space trade-off.

    Returns:
        ``(H, W)`` int32 ids ``0..K-1``; every pixel belongs to a superpixel.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {image.shape}")
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"masks must be (N, {image.shape[0]}, {image.shape[1]}) like the image, got {masks.shape}")
    if fill not in UNCOVERED_FILLS:
        raise ValueError(f"unknown fill {fill!r}; choose from {UNCOVERED_FILLS}")
    if uncovered_segment_area <= 0:
        raise ValueError(f"uncovered_segment_area must be > 0 px, got {uncovered_segment_area}")
    painted = paint_masks(masks)
    uncovered = painted == UNCOVERED
    if fill == "slic" and uncovered.any():
        segments = max(1, round(int(uncovered.sum()) / uncovered_segment_area))
        filled = slic(image, n_segments=segments, compactness=compactness, mask=uncovered, start_label=1)
        painted = np.where(uncovered, -filled.astype(np.int32) - 1, painted)
    return merge_small_regions(connected_regions(painted), min_area)
