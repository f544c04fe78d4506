"""The diversified pixel pool of the ALC paper (eqs. 3-6): one representative pixel per superpixel.

For superpixel ``s`` the model's dominant class is ``D(s) = argmax_c |{x in s : argmax f(x) = c}|``
(eq. 5), its core ``s' = {x in s : argmax f(x) = D(s)}`` (eq. 6), and the representative pixel is
the pixel of ``s`` whose softmax vector has the highest cosine similarity to the mean softmax
vector over ``s'`` (eq. 4). Ties go to the first pixel in raster order.
"""

from __future__ import annotations

import numpy as np

from alc_backend.engine.segments import Segments

_NORM_FLOOR = 1e-12


def check_probs(probs: np.ndarray, superpixels: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``probs`` is ``(C, H, W)`` with ``(H, W)`` = ``superpixels.shape``."""
    if probs.ndim != 3:
        raise ValueError(f"probs must be a (C, H, W) array, got shape {probs.shape}")
    if probs.shape[1:] != superpixels.shape:
        raise ValueError(
            f"probs is {probs.shape[1]}×{probs.shape[2]} (H×W) but superpixels is "
            f"{superpixels.shape[0]}×{superpixels.shape[1]}"
        )


def unit_columns(vectors: np.ndarray) -> np.ndarray:
    """``(D, N)`` vectors (one per column) scaled to unit L2 norm, float32; zero columns stay zero."""
    vectors = vectors.astype(np.float32, copy=False)
    norms = np.sqrt(np.einsum("dn,dn->n", vectors, vectors))
    return vectors / np.maximum(norms, _NORM_FLOOR)


def class_argmax(flat_probs: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 index of the largest of ``(C, N)`` values per column; ties: lowest class.

    Same result as ``flat_probs.argmax(axis=0)``, several times faster on class-major arrays.
    """
    best = flat_probs.max(axis=0)
    predicted = np.zeros(flat_probs.shape[1], dtype=np.int64)
    for class_index in range(flat_probs.shape[0] - 1, 0, -1):
        predicted[flat_probs[class_index] == best] = class_index
    predicted[flat_probs[0] == best] = 0
    return predicted


def dominant_classes(probs: np.ndarray, superpixels: np.ndarray) -> np.ndarray:
    """Pseudo dominant label ``D(s)`` of every superpixel (eq. 5).

    Args:
        probs: ``(C, H, W)`` softmax probabilities.
        superpixels: ``(H, W)`` ids ``0..K-1``.

    Returns:
        ``(K,)`` int64 class index; ties go to the lowest class index.
    """
    check_probs(probs, superpixels)
    num_classes = probs.shape[0]
    predicted = class_argmax(probs.reshape(num_classes, -1))
    return Segments.from_map(superpixels).class_counts(predicted, num_classes).argmax(axis=1)


def representative_indices(flat_probs: np.ndarray, segments: Segments, unit_probs: np.ndarray) -> np.ndarray:
    """Flat pixel index (``row * W + col``) of each superpixel's representative pixel (eq. 4).

    Args:
        flat_probs: ``(C, N)`` softmax probabilities of the ``N = H * W`` pixels.
        segments: the superpixels, grouped.
        unit_probs: ``unit_columns(flat_probs)``, computed once by the caller.

    Returns:
        ``(K,)`` int64 flat indices.
    """
    num_classes = flat_probs.shape[0]
    predicted = class_argmax(flat_probs)
    dominant = segments.class_counts(predicted, num_classes).argmax(axis=1)
    in_core = predicted == dominant[segments.ids]
    core_sum = segments.sum(flat_probs * in_core)  # (K, C); every core holds >= 1 pixel
    unit_core_mean = unit_columns(core_sum.T)  # (C, K)
    similarity = np.einsum("cn,cn->n", unit_probs, unit_core_mean[:, segments.ids])
    return segments.argmax(similarity)


def representative_pixels(probs: np.ndarray, superpixels: np.ndarray) -> np.ndarray:
    """The diversified pixel pool: one ``(row, col)`` per superpixel id ``0..K-1`` (eqs. 4-6).

    Args:
        probs: ``(C, H, W)`` softmax probabilities.
        superpixels: ``(H, W)`` ids ``0..K-1``.

    Returns:
        ``(K, 2)`` int64 array of ``(row, col)``.
    """
    check_probs(probs, superpixels)
    flat = probs.reshape(probs.shape[0], -1)
    flat_index = representative_indices(flat, Segments.from_map(superpixels), unit_columns(flat))
    rows, cols = np.divmod(flat_index, superpixels.shape[1])
    return np.stack([rows, cols], axis=1)


def region_representative(probs: np.ndarray, region: np.ndarray) -> tuple[int, int]:
    """The representative pixel (eqs. 4-6) of one region, as if it were a superpixel.

    Args:
        probs: ``(C, H, W)`` softmax probabilities.
        region: ``(H, W)`` bool, at least one pixel.

    Returns:
        ``(row, col)`` inside ``region``.
    """
    if region.shape != probs.shape[1:]:
        raise ValueError(f"the region is {region.shape} but probs are {probs.shape[1:]}")
    if not region.any():
        raise ValueError("the region holds no pixel")
    ids = np.where(region, 0, 1) if not region.all() else np.zeros(region.shape, dtype=np.int64)
    row, col = representative_pixels(probs, ids)[0]
    return int(row), int(col)
