"""Records of automatic label changes, exact enough to show, audit and undo them.

An auto-corrector (LCM, PLAR) never edits a label map silently: every change becomes an
:class:`AutoCorrection` holding the changed pixels as runs ``(flat start, length, old label)`` in
raster order, so :func:`undo_corrections` restores the labels bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AutoCorrection:
    """One automatic relabelling of (part of) one superpixel.

    Attributes:
        corrector: name of the auto-corrector (``"lcm"``, ``"plar"``).
        round: the correction round, ``>= 1``.
        image: image name.
        superpixel: superpixel id in the image.
        old_class: the most common label among the changed pixels before the change (255 = none).
        new_class: the label written.
        confidence: the corrector's confidence in ``new_class``, in ``[0, 1]``.
        runs: ``(flat start, length, old label)`` of the changed pixels, raster order.
    """

    corrector: str
    round: int
    image: str
    superpixel: int
    old_class: int
    new_class: int
    confidence: float
    runs: tuple[tuple[int, int, int], ...]

    @property
    def pixels(self) -> int:
        """Number of pixels changed."""
        return sum(length for _, length, _ in self.runs)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``runs`` as lists)."""
        return {
            "corrector": self.corrector,
            "round": self.round,
            "image": self.image,
            "superpixel": self.superpixel,
            "old_class": self.old_class,
            "new_class": self.new_class,
            "confidence": self.confidence,
            "pixels": self.pixels,
            "runs": [list(run) for run in self.runs],
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> AutoCorrection:
        """Inverse of :meth:`to_json`."""
        return cls(
            corrector=str(record["corrector"]),
            round=int(record["round"]),
            image=str(record["image"]),
            superpixel=int(record["superpixel"]),
            old_class=int(record["old_class"]),
            new_class=int(record["new_class"]),
            confidence=float(record["confidence"]),
            runs=tuple((int(s), int(n), int(v)) for s, n, v in record["runs"]),
        )


def changed_runs(labels: np.ndarray, changed: np.ndarray) -> tuple[tuple[int, int, int], ...]:
    """Runs ``(flat start, length, old label)`` of the ``True`` pixels of ``changed``.

    A run is a stretch of consecutive flat indices (raster order) sharing one old label.

    Args:
        labels: ``(H, W)`` labels before the change.
        changed: ``(H, W)`` bool mask of the pixels about to change.
    """
    index = np.flatnonzero(changed)
    if index.size == 0:
        return ()
    values = labels.ravel()[index]
    breaks = np.flatnonzero((np.diff(index) != 1) | (np.diff(values) != 0)) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [index.size]])
    return tuple((int(index[s]), int(e - s), int(values[s])) for s, e in zip(starts, ends, strict=True))


def record_changes(
    before: np.ndarray,
    after: np.ndarray,
    superpixels: np.ndarray,
    confidence: np.ndarray,
    *,
    corrector: str,
    round_index: int,
    image: str,
) -> list[AutoCorrection]:
    """One :class:`AutoCorrection` per (superpixel, new label) among the pixels that changed.

    Args:
        before: ``(H, W)`` labels before the corrector ran.
        after: ``(H, W)`` labels after it.
        superpixels: ``(H, W)`` ids.
        confidence: ``(H, W)`` the corrector's confidence per pixel; a record holds the mean
            over its pixels.
        corrector, round_index, image: recorded as given.

    Returns:
        Records ordered by superpixel id, then new label.
    """
    if not before.shape == after.shape == superpixels.shape == confidence.shape:
        raise ValueError("before, after, superpixels and confidence must have the same shape")
    changed = before != after
    keys = np.unique(np.stack([superpixels[changed], after[changed]]), axis=1)
    records = []
    for superpixel, new_class in keys.T:
        pixels = changed & (superpixels == superpixel) & (after == new_class)
        records.append(
            AutoCorrection(
                corrector=corrector,
                round=round_index,
                image=image,
                superpixel=int(superpixel),
                old_class=int(np.bincount(before[pixels].astype(np.int64)).argmax()),
                new_class=int(new_class),
                confidence=float(confidence[pixels].mean()),
                runs=changed_runs(before, pixels),
            )
        )
    return records


def relabel_superpixels(
    labels: np.ndarray,
    superpixels: np.ndarray,
    relabels: Mapping[int, tuple[int, float]],
    *,
    corrector: str,
    round_index: int,
    image: str,
) -> list[AutoCorrection]:
    """Records of relabelling whole superpixels of one image (as LCM does).

    Args:
        labels: ``(H, W)`` labels before.
        superpixels: ``(H, W)`` ids.
        relabels: superpixel id -> (new class, the corrector's confidence in it).
        corrector, round_index, image: recorded as given.
    """
    after = labels.copy()
    confidence = np.zeros(labels.shape)
    for superpixel, (new_class, score) in relabels.items():
        region = superpixels == superpixel
        after[region] = new_class
        confidence[region] = score
    return record_changes(
        labels, after, superpixels, confidence, corrector=corrector, round_index=round_index, image=image
    )


def still_applies(record: AutoCorrection, labels: np.ndarray, protected: np.ndarray) -> bool:
    """Whether ``record`` can still be written over ``(H, W)`` ``labels``: each of its pixels holds
    the old label it was decided on, and none is in the ``(H, W)`` bool ``protected`` mask."""
    flat_labels, flat_protected = labels.reshape(-1), protected.reshape(-1)
    for start, length, old in record.runs:
        if flat_protected[start : start + length].any() or (flat_labels[start : start + length] != old).any():
            return False
    return True


def apply_corrections(labels: np.ndarray, corrections: Sequence[AutoCorrection]) -> np.ndarray:
    """A copy of ``(H, W)`` ``labels`` with ``corrections`` (of this image) written, in order."""
    corrected = labels.copy()
    flat = corrected.reshape(-1)
    for correction in corrections:
        for start, length, _ in correction.runs:
            flat[start : start + length] = correction.new_class
    return corrected


def corrected_pixels(shape: tuple[int, ...], corrections: Sequence[AutoCorrection]) -> np.ndarray:
    """``shape`` bool mask of the pixels that ``corrections`` (of one image) change."""
    mask = np.zeros(shape, dtype=bool)
    flat = mask.reshape(-1)
    for correction in corrections:
        for start, length, _ in correction.runs:
            flat[start : start + length] = True
    return mask


def undo_corrections(labels: np.ndarray, corrections: Sequence[AutoCorrection]) -> np.ndarray:
    """A copy of ``(H, W)`` ``labels`` with ``corrections`` (of this image) undone, latest first."""
    restored = labels.copy()
    flat = restored.reshape(-1)
    for correction in reversed(corrections):
        for start, length, old in correction.runs:
            flat[start : start + length] = old
    return restored
