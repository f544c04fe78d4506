"""Simulated annotators that answer correction queries from the ground truth.

- ``faithful`` (default): sees only the representative pixel, like a real annotator shown a
  point; answers its true class. On a pixel the ground truth leaves unlabelled (255), it
  answers the majority true class of the region, as a person looking at the region would.
  Audits of automatic corrections are always answered this way.
- ``reference``: what the papers' code does: reads the ground truth over the whole superpixel
  and relabels the superpixel with its majority true class when at most half of its pixels
  currently agree with the ground truth; otherwise it leaves the labels as they are.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from alc_backend import IGNORE_INDEX

OracleMode = Literal["faithful", "reference"]
ORACLE_MODES: tuple[str, ...] = get_args(OracleMode)


def majority_true_class(ground_truth: np.ndarray, member: np.ndarray) -> int:
    """Most frequent labelled class of ``ground_truth`` (``(H, W)``) inside bool ``member``.

    Returns 255 when no pixel of ``member`` is labelled; ties go to the lowest class.
    """
    values = ground_truth[member]
    values = values[values != IGNORE_INDEX]
    if values.size == 0:
        return IGNORE_INDEX
    return int(np.bincount(values).argmax())


def faithful_answer(ground_truth: np.ndarray, region: np.ndarray, representative: tuple[int, int]) -> int:
    """The true class at the representative pixel (see module doc for unlabelled pixels).

    Args:
        ground_truth: ``(H, W)`` true classes, 255 = ignore.
        region: ``(H, W)`` bool, the region the query asks about (a correction query's
            superpixel, or an audited change).
        representative: ``(row, col)`` shown to the annotator.

    Returns:
        the answered class, or 255 when the whole region is unlabelled.
    """
    answer = int(ground_truth[representative[0], representative[1]])
    if answer != IGNORE_INDEX:
        return answer
    return majority_true_class(ground_truth, region)


def reference_answer(
    ground_truth: np.ndarray, labels: np.ndarray, superpixels: np.ndarray, superpixel_id: int
) -> int | None:
    """The papers' code's oracle: majority true class if at most half of the superpixel agrees.

    Args:
        ground_truth: ``(H, W)`` true classes, 255 = ignore (left out of the agreement).
        labels: ``(H, W)`` current labels.
        superpixels: ``(H, W)`` ids.
        superpixel_id: the queried superpixel.

    Returns:
        the class to write over the whole superpixel, or ``None`` to leave it unchanged.
    """
    member = (superpixels == superpixel_id) & (ground_truth != IGNORE_INDEX)
    if not np.any(member):
        return None
    agreement = float(np.mean(labels[member] == ground_truth[member]))
    if agreement > 0.5:
        return None
    return majority_true_class(ground_truth, member)


def answers_would_change(
    mode: OracleMode,
    ground_truth: np.ndarray,
    labels: np.ndarray,
    superpixels: np.ndarray,
    representatives: np.ndarray,
) -> np.ndarray:
    """For every superpixel of an image: would asking about it change its label?

    Faithful: the answer at the representative pixel differs from its current label.
    Reference: at most half of the superpixel's labelled pixels agree with the ground truth.

    Args:
        mode: ``"faithful"`` or ``"reference"``.
        ground_truth: ``(H, W)`` true classes, 255 = ignore.
        labels: ``(H, W)`` current labels.
        superpixels: ``(H, W)`` ids ``0..K-1``.
        representatives: ``(K, 2)`` ``(row, col)`` per superpixel.

    Returns:
        ``(K,)`` bool.
    """
    if mode == "faithful":
        answers = ground_truth[representatives[:, 0], representatives[:, 1]].astype(np.int64)
        for superpixel_id in np.flatnonzero(answers == IGNORE_INDEX):
            answers[superpixel_id] = majority_true_class(ground_truth, superpixels == superpixel_id)
        current = labels[representatives[:, 0], representatives[:, 1]]
        return (answers != IGNORE_INDEX) & (answers != current)
    if mode == "reference":
        k = representatives.shape[0]
        ids = superpixels.ravel()
        valid = (ground_truth != IGNORE_INDEX).ravel()
        agree = valid & (labels == ground_truth).ravel()
        num_valid = np.bincount(ids, weights=valid, minlength=k)
        num_agree = np.bincount(ids, weights=agree, minlength=k)
        return (num_valid > 0) & (num_agree <= 0.5 * num_valid)
    raise ValueError(f"unknown oracle mode {mode!r}; choose from {', '.join(ORACLE_MODES)}")
