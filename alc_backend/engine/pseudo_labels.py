"""Pseudo-labels from per-pixel predictions and object detections, and their validation.

Labels are ``(H, W)`` class indices ``0..C-1`` with :data:`~alc_backend.IGNORE_INDEX` (255) for
pixels without a class; superpixels are ``(H, W)`` int ids ``0..K-1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alc_backend import IGNORE_INDEX
from alc_backend.engine.segments import Segments

_LISTED = 10  # how many bad label values an error message lists


class PseudoLabelError(ValueError):
    """Pseudo-labels that do not fit their image or classes; the message names their source."""


def majority_per_superpixel(labels: np.ndarray, superpixels: np.ndarray) -> np.ndarray:
    """Give every superpixel the most frequent class among its labelled pixels.

    Args:
        labels: ``(H, W)`` integer class indices ``0..254``, ``IGNORE_INDEX`` = no class.
        superpixels: ``(H, W)`` int superpixel ids ``0..K-1``.

    Returns:
        ``(H, W)`` uint8 labels, constant on each superpixel: its most frequent class other than
        ``IGNORE_INDEX`` (ties: the smallest class index), or ``IGNORE_INDEX`` when every pixel of
        the superpixel is ``IGNORE_INDEX``.
    """
    if labels.shape != superpixels.shape:
        raise ValueError(f"labels {labels.shape} and superpixels {superpixels.shape} must have the same shape")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    segments = Segments.from_map(superpixels)
    ids = superpixels.ravel().astype(np.int64)
    flat = labels.ravel().astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() > IGNORE_INDEX):
        raise ValueError(f"labels must lie in 0..{IGNORE_INDEX}, got values {flat.min()}..{flat.max()}")
    known = flat != IGNORE_INDEX
    num_classes = int(flat[known].max()) + 1 if known.any() else 1
    counts = np.bincount(ids[known] * num_classes + flat[known], minlength=segments.k * num_classes).reshape(
        segments.k, num_classes
    )
    majority = counts.argmax(axis=1).astype(np.uint8)
    majority[counts.sum(axis=1) == 0] = IGNORE_INDEX
    return majority[superpixels]


def paint_detections(
    shape: tuple[int, int], detections: Sequence[tuple[np.ndarray, int, float]], background: int
) -> np.ndarray:
    """Paint object masks into one label map.

    Args:
        shape: ``(H, W)`` of the label map.
        detections: ``(mask, class_index, score)`` per object: an ``(H, W)`` bool mask, a class
            index ``0..254`` and a confidence score.
        background: the label of pixels no mask covers: a class index or ``IGNORE_INDEX``.

    Returns:
        ``(H, W)`` uint8 labels. Larger masks are painted first, so a smaller object in front of a
        larger one keeps its pixels; of two masks with the same area, the one with the higher
        score is painted last (on top); equal area and score keep the order of ``detections``.
    """
    if not 0 <= background <= IGNORE_INDEX:
        raise ValueError(f"background must be a class index or {IGNORE_INDEX}, got {background}")
    for index, (mask, class_index, _) in enumerate(detections):
        if mask.shape != tuple(shape) or mask.dtype != np.bool_:
            raise ValueError(
                f"detection {index}: mask must be a {tuple(shape)} bool array, got {mask.dtype} {mask.shape}"
            )
        if not 0 <= class_index < IGNORE_INDEX:
            raise ValueError(f"detection {index}: class index must lie in 0..{IGNORE_INDEX - 1}, got {class_index}")
    areas = np.array([int(mask.sum()) for mask, _, _ in detections], dtype=np.int64)
    scores = np.array([float(score) for _, _, score in detections], dtype=np.float64)
    labels = np.full(shape, background, dtype=np.uint8)
    for index in np.lexsort((scores, -areas)):
        mask, class_index, _ = detections[index]
        labels[mask] = class_index
    return labels


def validate_pseudo_labels(labels: np.ndarray, shape: tuple[int, int], num_classes: int, source: str) -> np.ndarray:
    """Check pseudo-labels against their image and classes; return them as a uint8 copy.

    Args:
        labels: what a source produced, expected ``(H, W)`` integer class indices.
        shape: ``(H, W)`` of the image, px.
        num_classes: C; labels must be ``0..C-1`` or ``IGNORE_INDEX``.
        source: names the labels in error messages (e.g. a file, or a source and an image).

    Returns:
        ``(H, W)`` uint8 labels.

    Raises:
        PseudoLabelError: ``labels`` is not 2-D, not ``shape``, not integer, or holds other values.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise PseudoLabelError(f"{source} is an array of shape {labels.shape}; pseudo-labels must be (H, W)")
    if labels.shape != tuple(shape):
        raise PseudoLabelError(
            f"{source} is {labels.shape[1]}x{labels.shape[0]} but the image is {shape[1]}x{shape[0]} (width x height)"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise PseudoLabelError(f"{source} has dtype {labels.dtype}; pseudo-labels must be integer class indices")
    bad = np.unique(labels[((labels < 0) | (labels >= num_classes)) & (labels != IGNORE_INDEX)])
    if bad.size:
        listed = ", ".join(str(value) for value in bad[:_LISTED])
        more = f" and {bad.size - _LISTED} more" if bad.size > _LISTED else ""
        raise PseudoLabelError(
            f"{source} holds class indices [{listed}]{more} but there are {num_classes} classes "
            f"(0..{num_classes - 1}, {IGNORE_INDEX} = none)"
        )
    return labels.astype(np.uint8)
