"""Numpy arrays or torch tensors in, the same kind out: the engine computes with torch on the input's device.

The scoring and pool functions take either kind. A numpy array is viewed as a CPU tensor
without a copy; a tensor stays on its device (a GPU when inference ran there), so a probability
map never has to travel to the host to be scored. Results come back as numpy arrays when the
main input was one, else as tensors on its device.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import torch

Array: TypeAlias = np.ndarray | torch.Tensor


def as_tensor(values: Array, device: torch.device | None = None) -> torch.Tensor:
    """``values`` as a tensor on ``device`` (its own for a tensor, the CPU for numpy when ``None``).

    A numpy array on the CPU is shared, not copied; one that torch cannot view (negative strides,
    an unsupported dtype such as uint16) is copied.
    """
    if isinstance(values, torch.Tensor):
        return values if device is None else values.to(device)
    array = np.asarray(values)
    if array.dtype == np.uint16 or array.dtype == np.uint32:
        array = array.astype(np.int64)
    if any(stride < 0 for stride in array.strides):
        array = array.copy()
    tensor = torch.from_numpy(array)
    return tensor if device is None else tensor.to(device)


def like(result: torch.Tensor, reference: Array) -> Array:
    """``result`` as a numpy array when ``reference`` is one, else unchanged (on its device)."""
    if isinstance(reference, torch.Tensor):
        return result
    return result.cpu().numpy()


def to_host(values: Array) -> np.ndarray:
    """``values`` as a numpy array on the host (a copy only for a tensor off the CPU)."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)
