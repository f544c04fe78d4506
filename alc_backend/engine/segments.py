"""Per-superpixel reductions over flattened pixel arrays, on numpy arrays or torch tensors.

:class:`Segments` checks a superpixel map once and keeps its ids as a tensor on the map's
device; per-superpixel sums are ``index_add`` passes and per-superpixel argmaxima two
``scatter_reduce`` passes. Each reduction returns the kind of array it was given (see
:mod:`alc_backend.engine.arrays`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alc_backend.engine.arrays import Array, as_tensor, like


@dataclass(frozen=True)
class Segments:
    """The pixels of a superpixel map grouped by id.

    Attributes:
        ids: ``(N,)`` int64 tensor, superpixel id of each pixel in raster order, on the map's device.
        counts: ``(K,)`` int64 tensor, pixels per superpixel, all ``>= 1``.
    """

    ids: torch.Tensor
    counts: torch.Tensor

    @classmethod
    def from_map(cls, superpixels: Array, device: torch.device | None = None) -> Segments:
        """Group the pixels of an ``(H, W)`` map with ids ``0..K-1`` (checked), on ``device`` (default: the map's)."""
        ids = as_tensor(superpixels, device)
        if ids.ndim != 2:
            raise ValueError(f"superpixels must be an (H, W) array, got shape {tuple(ids.shape)}")
        if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
            raise ValueError(f"superpixel ids must be integers, got dtype {superpixels.dtype}")
        if ids.numel() == 0:
            raise ValueError("superpixels is empty")
        ids = ids.reshape(-1).to(torch.int64)
        if int(ids.min()) < 0:
            raise ValueError("superpixel ids must be >= 0")
        counts = torch.bincount(ids)
        empty = torch.nonzero(counts == 0).reshape(-1)
        if empty.numel():
            raise ValueError(
                f"superpixel ids must be contiguous 0..K-1; ids {empty[:5].tolist()} cover no pixel "
                "(relabel with alc_backend.engine.superpixels.relabel_sequential)"
            )
        return cls(ids=ids, counts=counts)

    @property
    def k(self) -> int:
        """Number of superpixels."""
        return int(self.counts.numel())

    @property
    def device(self) -> torch.device:
        """The device the ids live on, where every reduction runs."""
        return self.ids.device

    def sum(self, values: Array) -> Array:
        """Sum of ``(N,)`` or ``(D, N)`` per-pixel values per superpixel: ``(K,)`` or ``(K, D)`` float64."""
        return like(self._sum(as_tensor(values, self.device)), values)

    def mean(self, values: Array) -> Array:
        """Mean of ``(N,)`` or ``(D, N)`` values per superpixel: ``(K,)`` or ``(K, D)`` float64."""
        sums = self._sum(as_tensor(values, self.device))
        counts = self.counts.to(torch.float64)
        return like(sums / (counts if sums.ndim == 1 else counts[:, None]), values)

    def argmax(self, values: Array) -> Array:
        """Flat pixel index of the largest of ``(N,)`` values in each superpixel; ties: first in raster order.

        Returns ``(K,)`` int64.
        """
        tensor = as_tensor(values, self.device)
        best = torch.empty(self.k, dtype=tensor.dtype, device=self.device)
        best = best.scatter_reduce(0, self.ids, tensor, "amax", include_self=False)
        positions = torch.arange(tensor.numel(), device=self.device)
        candidates = torch.where(tensor == best[self.ids], positions, tensor.numel())
        first = torch.full((self.k,), tensor.numel(), dtype=torch.int64, device=self.device)
        return like(first.scatter_reduce(0, self.ids, candidates, "amin", include_self=True), values)

    def class_counts(self, classes: Array, num_classes: int) -> Array:
        """``(K, num_classes)`` int64 count of each class in ``(N,)`` ``classes`` per superpixel."""
        flat = self.ids * num_classes + as_tensor(classes, self.device).to(torch.int64)
        counts = torch.bincount(flat, minlength=self.k * num_classes).reshape(self.k, num_classes)
        return like(counts, classes)

    def _sum(self, values: torch.Tensor) -> torch.Tensor:
        """:meth:`sum` of a tensor on this device."""
        values = values.to(torch.float64)
        if values.ndim == 1:
            return torch.zeros(self.k, dtype=torch.float64, device=self.device).index_add_(0, self.ids, values)
        sums = torch.zeros(values.shape[0], self.k, dtype=torch.float64, device=self.device)
        for row_sum, row in zip(sums, values, strict=True):
            row_sum.index_add_(0, self.ids, row)
        return sums.T
