"""Superpixel maps: relabelling, and SLIC / Felzenszwalb when a data set ships none."""

from __future__ import annotations

from typing import Literal

import numpy as np
from skimage.segmentation import felzenszwalb, slic

SuperpixelAlgorithm = Literal["slic", "felzenszwalb"]
SUPERPIXEL_ALGORITHMS: tuple[SuperpixelAlgorithm, ...] = ("slic", "felzenszwalb")


def relabel_sequential(ids: np.ndarray) -> np.ndarray:
    """Renumber any integer id map to ``0..K-1`` in raster order of first appearance.

    Args:
        ids: ``(H, W)`` integer ids (any values).

    Returns:
        ``(H, W)`` int32 ids, contiguous from 0.
    """
    flat = ids.ravel()
    unique, first_index, inverse = np.unique(flat, return_index=True, return_inverse=True)
    rank_of_unique = np.empty(unique.size, dtype=np.int32)
    rank_of_unique[np.argsort(first_index, kind="stable")] = np.arange(unique.size, dtype=np.int32)
    return rank_of_unique[inverse].reshape(ids.shape)


def compute_superpixels(
    image: np.ndarray,
    algorithm: SuperpixelAlgorithm = "slic",
    *,
    num_segments: int = 40,
    compactness: float = 10.0,
    felzenszwalb_scale: float = 100.0,
) -> np.ndarray:
    """Superpixels of an image with scikit-image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image.
        algorithm: ``"slic"`` (about ``num_segments`` compact regions) or ``"felzenszwalb"``
            (graph-based; ``felzenszwalb_scale`` sets the region size, larger = fewer).
        num_segments: SLIC's target number of superpixels.
        compactness: SLIC's colour/space trade-off.
        felzenszwalb_scale: Felzenszwalb's scale parameter.

    Returns:
        ``(H, W)`` int32 ids, contiguous ``0..K-1``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {image.shape}")
    if algorithm == "slic":
        ids = slic(image, n_segments=num_segments, compactness=compactness, start_label=0)
    elif algorithm == "felzenszwalb":
        min_size = max(1, image.shape[0] * image.shape[1] // (4 * num_segments))
        ids = felzenszwalb(image, scale=felzenszwalb_scale, sigma=0.8, min_size=min_size)
    else:
        raise ValueError(f"unknown superpixel algorithm {algorithm!r}; choose from {SUPERPIXEL_ALGORITHMS}")
    return relabel_sequential(ids)


def slic_with_count(image: np.ndarray, count: int, *, compactness: float = 10.0) -> np.ndarray:
    """SLIC superpixels with at least ``count`` superpixels and as few more as SLIC allows.

    SLIC returns fewer superpixels than its ``n_segments`` on most images; the smallest
    request that returns ``count`` or more is found by doubling, then bisection. For
    comparisons at an equal number of superpixels (SLIC gets the benefit of any excess).

    Args:
        image: ``(H, W, 3)`` uint8 RGB image.
        count: the smallest number of superpixels wanted.

    Returns:
        ``(H, W)`` int32 ids ``0..K-1`` with ``K >= count`` unless SLIC cannot split the image
        that finely (then its finest map found).
    """

    def slic_of(requested: int) -> np.ndarray:
        return compute_superpixels(image, "slic", num_segments=requested, compactness=compactness)

    low, high = count - 1, count
    best = slic_of(high)
    while int(best.max()) + 1 < count and high < 64 * count:
        low, high = high, 2 * high
        best = slic_of(high)
    while high - low > 1:
        middle = (low + high) // 2
        ids = slic_of(middle)
        if int(ids.max()) + 1 >= count:
            high, best = middle, ids
        else:
            low = middle
    return best
