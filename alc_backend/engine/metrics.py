"""Metrics: confusion matrices, mIoU, query precision/recall, and correction-query cost."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from alc_backend import IGNORE_INDEX


def confusion_matrix(predicted: np.ndarray, ground_truth: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion counts between two label maps.

    Pixels whose ground truth is 255 are left out. A predicted 255 (no label) on a labelled
    pixel counts in an extra last column: it is a miss for the true class and no class's hit.

    Args:
        predicted: ``(H, W)`` labels in ``0..C-1`` or 255.
        ground_truth: ``(H, W)`` labels in ``0..C-1`` or 255.
        num_classes: ``C``.

    Returns:
        ``(C, C + 1)`` int64, rows = true class, columns = predicted class (last = no label).
    """
    if predicted.shape != ground_truth.shape:
        raise ValueError(f"predicted has shape {predicted.shape} but ground truth has {ground_truth.shape}")
    valid = ground_truth != IGNORE_INDEX
    truth = ground_truth[valid].astype(np.int64)
    guess = predicted[valid].astype(np.int64)
    guess = np.where(guess == IGNORE_INDEX, num_classes, guess)
    if truth.size and (truth.max() >= num_classes or guess.max() > num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1} or be {IGNORE_INDEX}")
    flat = truth * (num_classes + 1) + guess
    return np.bincount(flat, minlength=num_classes * (num_classes + 1)).reshape(num_classes, num_classes + 1)


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """``(C,)`` IoU per class from a ``(C, C + 1)`` confusion matrix; NaN where a class is absent."""
    num_classes = confusion.shape[0]
    hits = np.diag(confusion[:, :num_classes]).astype(np.float64)
    union = confusion.sum(axis=1) + confusion[:, :num_classes].sum(axis=0) - hits
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, hits / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU in percent over classes present in the ground truth or the prediction."""
    iou = class_iou(confusion)
    if np.all(np.isnan(iou)):
        return float("nan")
    return float(np.nanmean(iou) * 100.0)


def correction_query_bits(num_confirmed: int, num_corrected: int, num_classes: int) -> float:
    """Information-theoretic cost of correction queries (ALC paper, Theorem 3.1).

    A confirmed pseudo-label is a binary answer (1 bit); a correction picks one of ``L``
    classes (``log2 L`` bits).
    """
    if num_classes < 2:
        raise ValueError("the cost needs at least 2 classes")
    return num_confirmed + num_corrected * math.log2(num_classes)


@dataclass(frozen=True)
class QueryQuality:
    """Precision and recall of one round's queried superpixels.

    A query is a true positive when the label it asked about was wrong.
    """

    precision: float | None
    recall: float | None

    @classmethod
    def from_counts(cls, wrong_queried: int, num_queried: int, wrong_in_pool: int) -> QueryQuality:
        """``precision = wrong_queried / num_queried``, ``recall = wrong_queried / wrong_in_pool``."""
        if not 0 <= wrong_queried <= min(num_queried, wrong_in_pool):
            raise ValueError("wrong_queried must lie between 0 and min(num_queried, wrong_in_pool)")
        precision = wrong_queried / num_queried if num_queried else None
        recall = wrong_queried / wrong_in_pool if wrong_in_pool else None
        return cls(precision, recall)


def wilson_lower_bound(share: np.ndarray, trials: np.ndarray, z: float) -> np.ndarray:
    """Wilson score lower bound of a proportion: ``share`` observed over ``trials`` (0 where none).

    ``(p + z^2/2n - z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` element-wise, ``p`` the share
    and ``n`` the trials.
    """
    trials = np.asarray(trials, dtype=np.float64)
    share = np.asarray(share, dtype=np.float64)
    n = np.maximum(trials, 1.0)
    spread = z * np.sqrt(share * (1.0 - share) / n + z * z / (4.0 * n * n))
    bound = (share + z * z / (2.0 * n) - spread) / (1.0 + z * z / n)
    return np.where(trials > 0, bound, 0.0)


def wilson_upper_bound(share: np.ndarray, trials: np.ndarray, z: float) -> np.ndarray:
    """Wilson score upper bound of a proportion (1 where there are no trials).

    ``(p + z^2/2n + z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` element-wise; it equals
    ``1 - wilson_lower_bound(1 - p, n, z)``.
    """
    trials = np.asarray(trials, dtype=np.float64)
    share = np.asarray(share, dtype=np.float64)
    n = np.maximum(trials, 1.0)
    spread = z * np.sqrt(share * (1.0 - share) / n + z * z / (4.0 * n * n))
    bound = (share + z * z / (2.0 * n) + spread) / (1.0 + z * z / n)
    return np.where(trials > 0, bound, 1.0)


def achievable_segmentation_accuracy(superpixels: np.ndarray, ground_truth: np.ndarray) -> float:
    """Achievable segmentation accuracy (ASA) of a superpixel map.

    The pixel accuracy reached when every superpixel takes the majority true class of its
    labelled pixels: the best any labelling of whole superpixels can do.

    Args:
        superpixels: ``(H, W)`` int ids ``0..K-1``.
        ground_truth: ``(H, W)`` labels in ``0..C-1`` or 255 (left out).

    Returns:
        ASA in [0, 1]; NaN when no pixel is labelled.
    """
    if superpixels.shape != ground_truth.shape:
        raise ValueError(f"superpixels have shape {superpixels.shape} but ground truth has {ground_truth.shape}")
    valid = ground_truth != IGNORE_INDEX
    if not valid.any():
        return math.nan
    ids = superpixels[valid].astype(np.int64)
    truth = ground_truth[valid].astype(np.int64)
    num_classes = int(truth.max()) + 1
    counts = np.bincount(ids * num_classes + truth, minlength=(int(ids.max()) + 1) * num_classes)
    return float(counts.reshape(-1, num_classes).max(axis=1).sum() / truth.size)
