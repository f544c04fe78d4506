"""Audits of automatic corrections: which classes a corrector may write, and which changes to ask about.

An *audit* is a query about a region that an automatic corrector changed, or proposed to
change, to class ``Y``: "this region was changed to ``Y``; is ``Y`` right?". Audits are the
only measurement of a corrector's precision on the population it acts on: its own changes.
Checks on answered superpixels measure another population (the acquisition picked those
because their labels were likely wrong, while a corrector mostly meets labels that are right).

- A corrector writes class ``c`` only once its audits to ``c`` show a precision whose one-sided
  Wilson lower bound reaches ``min_precision`` (:func:`trusted_classes`): until then its
  proposals to ``c`` are held back, and only audited.
- A class whose Wilson *upper* bound (usually a wider one) falls below ``min_precision`` is refuted
  (:func:`refuted_classes`): its proposals are neither written nor audited any more, so a
  corrector that does not work on a data set stops costing clicks.
- The changes to ask about are drawn with probability proportional to their pixels
  (:func:`sample_by_weight`): the audited share that was right then estimates the share of
  changed pixels that are right.
"""

from __future__ import annotations

import numpy as np

from alc_backend.engine.metrics import wilson_lower_bound, wilson_upper_bound


def audit_counts(classes: np.ndarray, right: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Audits per class and how many of them confirmed the class.

    Args:
        classes: ``(A,)`` the class each audited change wrote (or proposed).
        right: ``(A,)`` bool, the annotator's answer was that class.
        num_classes: ``C``.

    Returns:
        ``(audited (C,), confirmed (C,))`` int64 counts.
    """
    classes = np.asarray(classes, dtype=np.int64)
    right = np.asarray(right, dtype=bool)
    if classes.shape != right.shape or classes.ndim != 1:
        raise ValueError("classes and right must be (A,) arrays of the same length")
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(f"audited classes must lie in 0..{num_classes - 1}")
    audited = np.bincount(classes, minlength=num_classes)
    confirmed = np.bincount(classes[right], minlength=num_classes)
    return audited, confirmed


def trusted_classes(audited: np.ndarray, confirmed: np.ndarray, min_precision: float, z: float) -> np.ndarray:
    """``(C,)`` bool: classes whose audited precision has a Wilson lower bound ``>= min_precision``."""
    share = np.divide(confirmed, audited, out=np.zeros(audited.shape), where=audited > 0)
    return (audited > 0) & (wilson_lower_bound(share, audited, z) >= min_precision)


def refuted_classes(
    audited: np.ndarray, confirmed: np.ndarray, min_precision: float, z: float, min_audits: int = 1
) -> np.ndarray:
    """``(C,)`` bool: classes audited at least ``min_audits`` times whose audited precision has a
    Wilson upper bound ``< min_precision``."""
    share = np.divide(confirmed, audited, out=np.zeros(audited.shape), where=audited > 0)
    return (audited >= max(min_audits, 1)) & (wilson_upper_bound(share, audited, z) < min_precision)


def sample_by_weight(weights: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``count`` items drawn without replacement, each with probability proportional to its weight.

    Efraimidis and Spirakis' method: each item with weight ``w > 0`` gets the key
    ``log(u) / w``, ``u`` uniform in (0, 1), and the largest keys win. Items of weight 0 are
    never drawn; with fewer positive weights than ``count``, all of them are returned.

    Args:
        weights: ``(N,)`` non-negative weights (here: pixels of each change).
        count: how many to draw, ``>= 0``.
        rng: the random generator.

    Returns:
        ``(min(count, positive),)`` int64 indices, in the order drawn (largest key first).
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or (weights < 0).any():
        raise ValueError("weights must be an (N,) array of non-negative numbers")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    keys = np.log(rng.random(weights.size)) / np.where(weights > 0, weights, 1.0)
    keys[weights <= 0] = -np.inf
    drawn = np.argsort(-keys, kind="stable")[: min(count, int((weights > 0).sum()))]
    return drawn.astype(np.int64)


def split_evenly(count: int, available: list[int]) -> list[int]:
    """Share ``count`` among groups as evenly as their ``available`` sizes allow.

    Each group gets at most what it has; what a small group cannot take goes to the others,
    and a remainder goes to the earlier groups. ``split_evenly(10, [2, 9, 9]) == [2, 4, 4]``.
    """
    if count < 0 or any(size < 0 for size in available):
        raise ValueError("count and the available sizes must be >= 0")
    shares = [0] * len(available)
    left = min(count, sum(available))
    while left > 0:
        open_groups = [index for index, size in enumerate(available) if shares[index] < size]
        each, extra = divmod(left, len(open_groups))
        for position, index in enumerate(open_groups):
            take = min(each + (position < extra), available[index] - shares[index])
            shares[index] += take
            left -= take
    return shares


def interleaved_ranks(total: int, audits: int) -> np.ndarray:
    """Ranks (0 = asked first) at which ``audits`` of ``total`` queries are audits, spread evenly.

    Audit ``j`` sits at rank ``floor((j + 1/2) total / audits)``, so a round that ends early
    (an annotator who answers only the first queries) still holds its share of audits.
    """
    if not 0 <= audits <= total:
        raise ValueError(f"audits must lie in 0..{total}, got {audits}")
    return np.floor((np.arange(audits) + 0.5) * total / max(audits, 1)).astype(np.int64)
