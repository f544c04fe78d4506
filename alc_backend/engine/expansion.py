"""Label expansion (ALC paper eq. 12): a corrected representative pixel labels its superpixel."""

from __future__ import annotations

import numpy as np
import torch

from alc_backend.engine.arrays import Array, as_tensor
from alc_backend.engine.pool import unit_columns


def expansion_region(
    probs: Array | None,
    superpixels: np.ndarray,
    superpixel_id: int,
    representative: tuple[int, int],
    eps: float = 0.0,
) -> np.ndarray:
    """Pixels of one superpixel that receive its representative's label.

    ``s(x_r, eps) = {x in s : cos(f(x_r), f(x)) >= eps}``; ``eps = 0`` gives the whole
    superpixel, since the cosine of two probability vectors is never negative.

    Args:
        probs: ``(C, H, W)`` softmax probabilities, numpy or a tensor on any device (only the
            superpixel's similarities leave it); may be ``None`` when ``eps = 0``.
        superpixels: ``(H, W)`` ids.
        superpixel_id: the superpixel to expand in.
        representative: ``(row, col)`` of its representative pixel, inside the superpixel.
        eps: similarity threshold in ``[0, 1]``.

    Returns:
        ``(H, W)`` bool mask; always contains the representative pixel.
    """
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must lie in [0, 1], got {eps}")
    row, col = representative
    if superpixels[row, col] != superpixel_id:
        raise ValueError(f"pixel {(row, col)} is not in superpixel {superpixel_id}")
    member = superpixels == superpixel_id
    if eps == 0.0:
        return member
    if probs is None:
        raise ValueError("expansion with eps > 0 needs the model's probabilities")
    rows, cols = np.nonzero(member)
    tensor = as_tensor(probs)
    pixels = tensor[:, torch.from_numpy(rows).to(tensor.device), torch.from_numpy(cols).to(tensor.device)]
    similarity = (unit_columns(tensor[:, row, col][:, None]) * unit_columns(pixels)).sum(dim=0)  # (n,)
    region = np.zeros_like(member)
    region[rows, cols] = (similarity >= eps - 1e-6).cpu().numpy()
    region[row, col] = True
    return region


def expand_label(labels: np.ndarray, region: np.ndarray, label: int) -> np.ndarray:
    """A copy of ``labels`` (``(H, W)``) with ``label`` written over the bool ``region``."""
    expanded = labels.copy()
    expanded[region] = label
    return expanded
