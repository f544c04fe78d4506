"""The diversified pixel pool of the ALC paper (eqs. 3-6): one representative pixel per superpixel.

For superpixel ``s`` the model's dominant class is ``D(s) = argmax_c |{x in s : argmax f(x) = c}|``
(eq. 5), its core ``s' = {x in s : argmax f(x) = D(s)}`` (eq. 6), and the representative pixel is
the pixel of ``s`` whose softmax vector has the highest cosine similarity to the mean softmax
vector over ``s'`` (eq. 4). Ties go to the first pixel in raster order.

Every function takes numpy arrays or torch tensors and computes on the tensors' device (see
:mod:`alc_backend.engine.arrays`). Class-major ``(C, N)`` maps are read one class row at a
time: on a CPU that is several times faster than reducing over the class axis.
"""

from __future__ import annotations

import torch

from alc_backend.engine.arrays import Array, as_tensor, like
from alc_backend.engine.segments import Segments

_NORM_FLOOR = 1e-12


def check_probs(probs: Array, superpixels: Array) -> None:
    """Raise ``ValueError`` unless ``probs`` is ``(C, H, W)`` with ``(H, W)`` = ``superpixels.shape``."""
    if probs.ndim != 3:
        raise ValueError(f"probs must be a (C, H, W) array, got shape {tuple(probs.shape)}")
    if tuple(probs.shape[1:]) != tuple(superpixels.shape):
        raise ValueError(
            f"probs is {probs.shape[1]}×{probs.shape[2]} (H×W) but superpixels is "
            f"{superpixels.shape[0]}×{superpixels.shape[1]}"
        )


def column_norms(vectors: torch.Tensor) -> torch.Tensor:
    """``(N,)`` float32 L2 norm of each column of ``(D, N)`` vectors, accumulated row by row."""
    total = torch.zeros(vectors.shape[1], dtype=torch.float32, device=vectors.device)
    for row in vectors:
        total.addcmul_(row, row)
    return total.sqrt_()


def unit_columns(vectors: Array) -> Array:
    """``(D, N)`` vectors (one per column) scaled to unit L2 norm, float32; zero columns stay zero."""
    tensor = as_tensor(vectors).to(torch.float32)
    return like(tensor / column_norms(tensor).clamp_(min=_NORM_FLOOR), vectors)


def cosines_to_segment_vectors(
    flat_probs: torch.Tensor, norms: torch.Tensor, vectors: torch.Tensor, segments: Segments
) -> torch.Tensor:
    """``(N,)`` float32 cosine of each pixel's vector to its superpixel's vector.

    Args:
        flat_probs: ``(C, N)`` pixel vectors.
        norms: ``column_norms(flat_probs)``, computed once by the caller.
        vectors: ``(C, K)`` one vector per superpixel, any length (a zero vector gives cosine 0).
        segments: the superpixels, grouped, on ``flat_probs``' device.
    """
    unit_vectors = unit_columns(vectors.to(torch.float32))
    total = torch.zeros(flat_probs.shape[1], dtype=torch.float32, device=flat_probs.device)
    for pixel_row, segment_row in zip(flat_probs, unit_vectors, strict=True):
        total.addcmul_(pixel_row, segment_row.index_select(0, segments.ids))
    return total.div_(norms.clamp(min=_NORM_FLOOR))


def class_argmax(flat_probs: Array) -> Array:
    """``(N,)`` int64 index of the largest of ``(C, N)`` values per column; ties: lowest class."""
    tensor = as_tensor(flat_probs)
    best = tensor[0].clone()
    predicted = torch.zeros(tensor.shape[1], dtype=torch.int64, device=tensor.device)
    for class_index in range(1, tensor.shape[0]):
        predicted.masked_fill_(tensor[class_index] > best, class_index)
        torch.maximum(best, tensor[class_index], out=best)
    return like(predicted, flat_probs)


def dominant_classes(probs: Array, superpixels: Array) -> Array:
    """Pseudo dominant label ``D(s)`` of every superpixel (eq. 5).

    Args:
        probs: ``(C, H, W)`` softmax probabilities.
        superpixels: ``(H, W)`` ids ``0..K-1``.

    Returns:
        ``(K,)`` int64 class index; ties go to the lowest class index.
    """
    check_probs(probs, superpixels)
    tensor = as_tensor(probs)
    num_classes = tensor.shape[0]
    predicted = class_argmax(tensor.reshape(num_classes, -1))
    segments = Segments.from_map(superpixels, tensor.device)
    return like(segments.class_counts(predicted, num_classes).argmax(dim=1), probs)


def representative_indices(
    flat_probs: torch.Tensor, segments: Segments, norms: torch.Tensor, predicted: torch.Tensor | None = None
) -> torch.Tensor:
    """Flat pixel index (``row * W + col``) of each superpixel's representative pixel (eq. 4).

    Args:
        flat_probs: ``(C, N)`` softmax probabilities of the ``N = H * W`` pixels.
        segments: the superpixels, grouped, on ``flat_probs``' device.
        norms: ``column_norms(flat_probs)``, computed once by the caller.
        predicted: ``(N,)`` int64 ``class_argmax(flat_probs)`` on ``flat_probs``' device, when the
            caller has it; computed here when None.

    Returns:
        ``(K,)`` int64 flat indices.
    """
    num_classes = flat_probs.shape[0]
    if predicted is None:
        predicted = class_argmax(flat_probs)
    dominant = segments.class_counts(predicted, num_classes).argmax(dim=1)
    core_ids = torch.where(predicted == dominant[segments.ids], segments.ids, segments.k)  # k: not in a core
    core_sum = torch.zeros(num_classes, segments.k + 1, dtype=torch.float64, device=flat_probs.device)
    for class_sum, row in zip(core_sum, flat_probs, strict=True):
        class_sum.index_add_(0, core_ids, row.to(torch.float64))
    similarity = cosines_to_segment_vectors(flat_probs, norms, core_sum[:, : segments.k], segments)
    return segments.argmax(similarity)


def representative_pixels(
    probs: Array, superpixels: Array, *, segments: Segments | None = None, predicted: Array | None = None
) -> Array:
    """The diversified pixel pool: one ``(row, col)`` per superpixel id ``0..K-1`` (eqs. 4-6).

    Args:
        probs: ``(C, H, W)`` softmax probabilities.
        superpixels: ``(H, W)`` ids ``0..K-1``.
        segments: ``Segments.from_map(superpixels)`` on ``probs``' device, when the caller has it.
        predicted: ``(H, W)`` int64 class per pixel (:func:`class_argmax` of ``probs``), when the
            caller has it.

    Returns:
        ``(K, 2)`` int64 ``(row, col)``, on ``probs``' device.
    """
    check_probs(probs, superpixels)
    tensor = as_tensor(probs)
    flat = tensor.reshape(tensor.shape[0], -1)
    if segments is None:
        segments = Segments.from_map(superpixels, tensor.device)
    flat_predicted = None if predicted is None else as_tensor(predicted, tensor.device).reshape(-1)
    flat_index = representative_indices(flat, segments, column_norms(flat), flat_predicted)
    width = superpixels.shape[1]
    return like(torch.stack([flat_index // width, flat_index % width], dim=1), probs)


def region_representative(probs: Array, region: Array) -> tuple[int, int]:
    """The representative pixel (eqs. 4-6) of one region, as if it were a superpixel.

    Args:
        probs: ``(C, H, W)`` softmax probabilities.
        region: ``(H, W)`` bool, at least one pixel.

    Returns:
        ``(row, col)`` inside ``region``.
    """
    if tuple(region.shape) != tuple(probs.shape[1:]):
        raise ValueError(f"the region is {tuple(region.shape)} but probs are {tuple(probs.shape[1:])}")
    inside = as_tensor(region, as_tensor(probs).device).to(torch.bool)
    if not bool(inside.any()):
        raise ValueError("the region holds no pixel")
    ids = (~inside).to(torch.int64) if not bool(inside.all()) else torch.zeros_like(inside, dtype=torch.int64)
    row, col = representative_pixels(as_tensor(probs), ids)[0].tolist()
    return int(row), int(col)
