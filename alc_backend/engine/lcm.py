"""The Label Correction Module of A2LC: spread human answers to similar superpixels.

After a round's correction queries are answered, a small classifier ``psi_r`` (an MLP,
``D -> 256 -> 128 -> 64 -> C``) learns to map a superpixel's features (the paper's: the mean
softmax of the segmentation model over it) to the class the annotator gave. Every superpixel nobody
answered is then relabelled to ``psi_r``'s class ``c`` when all selection criteria hold:

- ``J1``: confidence ``max_c psi_r(c; m) >= tau``;
- ``J2``: ``c`` is not in the tail ``alpha`` of classes ranked by how many of the answers
  ``psi_r`` learnt from gave them (``rank(c) >= (1 - alpha) |C|``, rank 0 = most answered):
  ``psi_r`` has seen too few examples of those to be trusted;
- ``J3``: the superpixel's current label is not the rarest answered class: tail labels are
  protected from being overwritten by head classes;
- ``J4`` (ours, off by default): cross-validated on the answers, LCM's corrections to class
  ``c`` were right at least ``min_precision`` of the time, with 95 % confidence;
- ``J5`` (ours, on by default): the segmentation model agrees, and is sure: its mean
  probability of ``c`` over the superpixel is at least ``model_confidence``.

Why: an MLP trained to convergence on a hundred answers passes ``tau = 0.99`` far too easily,
so ``J1`` alone does not make its confidence mean anything; measured on a synthetic set, the
paper's criteria alone relabelled superpixels to a wrong class about two times in three.
``psi``'s confidence is not calibrated: on our tuning set (a ResNet-18 trained from scratch,
round 1), the proposals that passed J1-J3 with the model's dominant class agreeing were right
50 % of the time at ``psi`` confidence 0.99 and 63 % at 0.9999. The segmentation model's mean
probability is: at 0.8 and above they were right 93 % of the time (28 proposals), at 0.9 and
above 100 % (15). ``J5`` takes that calibrated confidence. ``J4`` tries to measure what is
left: the answers are split into ``folds``; a classifier trained without a fold decides on it as if its superpixels were
candidates, and class ``c`` is admitted only when the one-sided Wilson lower bound (``z``
standard deviations) of the share of its held-out corrections to ``c`` that named the
annotator's class reaches ``min_precision``. A bound, not the share itself: three right out of
three is no evidence (bound 0.53 at ``z = 1.645``), while twelve out of twelve is (0.82). When
the held-out check fails, LCM abstains: a round without automatic corrections costs nothing,
a round of wrong ones undoes human work.

``J4`` measures the wrong population, though. The answered superpixels are the ones the
acquisition picked because their labels were likely wrong, while the candidates are mostly
right: on a held-out street-scene set LCM passed ``J4`` and relabelled at a precision of 0.38,
on brain MRI slices at 0.12. The round core therefore decides what LCM writes by *audits* of
its own proposals (:mod:`alc_backend.engine.audit`), and ``J4`` is off unless asked for.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from alc_backend import IGNORE_INDEX
from alc_backend.engine.metrics import wilson_lower_bound

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class LCMConfig:
    """Settings of the Label Correction Module (defaults: ``tau``, ``alpha``, MLP as in A2LC).

    ``epochs`` of full-batch Adam at ``lr`` with ``weight_decay``; ``folds``, ``z`` and
    ``min_precision`` set the held-out check ``J4`` (``min_precision = 0``, the default, turns it off);
    ``model_confidence`` is ``J5``'s least mean probability of the class (0 turns ``J5`` off).
    """

    tau: float = 0.99
    alpha: float = 0.5
    hidden: tuple[int, ...] = (256, 128, 64)
    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    folds: int = 5
    min_precision: float = 0.0
    z: float = 1.645
    model_confidence: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.tau <= 1.0:
            raise ValueError(f"tau must lie in [0, 1], got {self.tau}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must list positive layer widths, got {self.hidden}")
        if self.epochs < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("epochs must be >= 1, lr > 0 and weight_decay >= 0")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        if self.z < 0:
            raise ValueError(f"z must be >= 0, got {self.z}")
        if not 0.0 <= self.min_precision <= 1.0:
            raise ValueError(f"min_precision must lie in [0, 1], got {self.min_precision}")
        if not 0.0 <= self.model_confidence <= 1.0:
            raise ValueError(f"model_confidence must lie in [0, 1], got {self.model_confidence}")


@dataclass(frozen=True)
class LCMProposal:
    """What LCM decided for ``M`` candidate superpixels; every array is ``(M,)``.

    ``predicted``/``confidence`` are ``psi_r``'s class and its probability; ``j1``..``j5`` the
    criteria (``j4`` all ``True`` when it is off); ``selected`` their conjunction, restricted
    to candidates whose current label differs from ``predicted``.
    """

    predicted: np.ndarray
    confidence: np.ndarray
    j1: np.ndarray
    j2: np.ndarray
    j3: np.ndarray
    j4: np.ndarray
    j5: np.ndarray
    selected: np.ndarray

    def relabels(self, candidates: Sequence[tuple[Key, int]]) -> dict[Key, dict[int, tuple[int, float]]]:
        """The selected candidates grouped by image: image -> {superpixel: (class, confidence)}.

        ``candidates`` names the ``M`` candidates as ``(image, superpixel id)``, in order.
        """
        grouped: dict[Key, dict[int, tuple[int, float]]] = {}
        for index in np.flatnonzero(self.selected):
            image, superpixel = candidates[index]
            grouped.setdefault(image, {})[superpixel] = (int(self.predicted[index]), float(self.confidence[index]))
        return grouped


def answered_class_ranks(answer_counts: np.ndarray) -> np.ndarray:
    """``(C,)`` rank of each class by answers received, 0 = most; ties go to the lower class index."""
    order = np.lexsort((np.arange(answer_counts.size), -answer_counts))
    ranks = np.empty(answer_counts.size, dtype=np.int64)
    ranks[order] = np.arange(answer_counts.size)
    return ranks


def tail_classes(answer_counts: np.ndarray, alpha: float) -> np.ndarray:
    """``(C,)`` bool: classes with ``rank(c) >= (1 - alpha) |C|`` (the ``J2`` exclusion)."""
    return answered_class_ranks(answer_counts) >= (1.0 - alpha) * answer_counts.size


def rarest_answered_class(answer_counts: np.ndarray) -> int | None:
    """The answered class (count ``> 0``) with the fewest answers, ties to the higher rank; None if none."""
    answered = np.flatnonzero(answer_counts > 0)
    if answered.size == 0:
        return None
    ranks = answered_class_ranks(answer_counts)
    return int(answered[np.argmax(ranks[answered])])


def selection_criteria(
    confidence: np.ndarray,
    predicted: np.ndarray,
    current: np.ndarray,
    answer_counts: np.ndarray,
    tau: float,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The A2LC criteria ``J1``, ``J2``, ``J3`` for ``M`` candidates.

    Args:
        confidence: ``(M,)`` ``max_c psi_r(c; m)``.
        predicted: ``(M,)`` ``psi_r``'s class.
        current: ``(M,)`` each candidate's current (majority) label; 255 = none.
        answer_counts: ``(C,)`` the answers per class that ``psi_r`` learnt from.
        tau: confidence threshold.
        alpha: share of classes, by fewest answers, that ``psi_r`` may not predict.

    Returns:
        ``(j1, j2, j3)``, each ``(M,)`` bool.
    """
    j1 = confidence >= tau
    j2 = ~tail_classes(answer_counts, alpha)[predicted]
    rarest = rarest_answered_class(answer_counts)
    j3 = np.ones_like(j1) if rarest is None else current != rarest
    return j1, j2, j3


class SuperpixelClassifier(nn.Module):
    """``psi_r``: standardise the features, then an MLP with ReLUs; outputs ``(M, C)`` logits."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, hidden: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        widths = (mean.size, *hidden)
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers((features - self.mean) / self.scale)


def fit_classifier(
    features: np.ndarray, answers: np.ndarray, num_classes: int, config: LCMConfig, seed: int
) -> SuperpixelClassifier:
    """Train ``psi_r`` on ``(Q, D)`` features and ``(Q,)`` answer classes; deterministic for a seed.

    Runs on one CPU thread: the network is tiny, and on a busy machine torch's thread pool made
    it a hundred times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mean = features.mean(axis=0)
            scale = np.maximum(features.std(axis=0), 1e-6)
            classifier = SuperpixelClassifier(mean, scale, config.hidden, num_classes)
        inputs = torch.as_tensor(features, dtype=torch.float32)
        targets = torch.as_tensor(answers, dtype=torch.int64)
        optimiser = torch.optim.Adam(classifier.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        classifier.train()
        for _ in range(config.epochs):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(classifier(inputs), targets)
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    return classifier.eval()


def classify(classifier: SuperpixelClassifier, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``psi_r`` on ``(M, D)`` features: ``(predicted class (M,) int64, confidence (M,) float64)``."""
    with torch.inference_mode():
        probs = torch.softmax(classifier(torch.as_tensor(features, dtype=torch.float32)), dim=1).double().numpy()
    return probs.argmax(axis=1), probs.max(axis=1)


def held_out_precision(
    answered: AnsweredSuperpixels, num_classes: int, config: LCMConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated precision of LCM's whole decision rule, per class it would write.

    The answers are dealt into ``config.folds`` folds at random (``seed``); a classifier trained
    on the other folds decides on each held-out answered superpixel as if it were a candidate
    (criteria ``J1``-``J3``, ``J5``, and a class different from the label it had
    before the answer). A decision is right when it names the annotator's class.

    Returns:
        ``(support (C,) int64, precision (C,) float64)``: held-out corrections to each class and
        the share of them that were right (0 where support is 0).
    """
    size = answered.answers.size
    order = np.random.default_rng(seed).permutation(size)
    folds = np.array_split(order, min(config.folds, size))
    support = np.zeros(num_classes, dtype=np.int64)
    right = np.zeros(num_classes, dtype=np.int64)
    for index, held_out in enumerate(folds):
        kept = np.setdiff1d(order, held_out)
        train_answers = answered.answers[kept]
        if np.count_nonzero(np.bincount(train_answers, minlength=num_classes)) < 2:
            continue
        classifier = fit_classifier(answered.features[kept], train_answers, num_classes, config, seed + 1 + index)
        predicted, confidence = classify(classifier, answered.features[held_out])
        labels = answered.labels[held_out]
        criteria = _criteria(
            predicted,
            confidence,
            labels,
            np.bincount(train_answers, minlength=num_classes),
            answered.model_probs[held_out],
            config,
        )
        decided = np.logical_and.reduce(criteria) & (labels != predicted)
        np.add.at(support, predicted[decided], 1)
        np.add.at(right, predicted[decided], (predicted == answered.answers[held_out])[decided].astype(np.int64))
    precision = np.divide(right, support, out=np.zeros(num_classes), where=support > 0)
    return support, precision


def _criteria(
    predicted: np.ndarray,
    confidence: np.ndarray,
    labels: np.ndarray,
    answer_counts: np.ndarray,
    model_probs: np.ndarray,
    config: LCMConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(J1, J2, J3, J5)`` for ``(M,)`` decisions; ``model_probs`` ``(M, C)`` the model's mean probabilities."""
    j1, j2, j3 = selection_criteria(confidence, predicted, labels, answer_counts, config.tau, config.alpha)
    j5 = model_probs[np.arange(predicted.size), predicted] >= config.model_confidence
    return j1, j2, j3, j5


@dataclass(frozen=True)
class AnsweredSuperpixels:
    """The answered superpixels ``psi_r`` learns from; every array has ``Q`` rows.

    ``features`` ``(Q, D)``; ``answers`` the annotator's classes; ``labels`` each superpixel's
    majority label *before* the answer (255 = none); ``model_probs`` ``(Q, C)`` the segmentation
    model's mean probabilities over it.
    """

    features: np.ndarray
    answers: np.ndarray
    labels: np.ndarray
    model_probs: np.ndarray


def propose_corrections(
    answered: AnsweredSuperpixels,
    candidate_features: np.ndarray,
    candidate_labels: np.ndarray,
    candidate_model_probs: np.ndarray,
    num_classes: int,
    config: LCMConfig,
    *,
    seed: int = 0,
) -> LCMProposal:
    """Decide which candidate superpixels LCM relabels, and to what.

    Args:
        answered: the answered superpixels ``psi_r`` learns from.
        candidate_features: ``(M, D)`` features of the superpixels nobody has answered.
        candidate_labels: ``(M,)`` their current majority labels (255 = none).
        candidate_model_probs: ``(M, C)`` the segmentation model's mean probabilities over each.
        num_classes: ``C``.
        config: the module's settings.
        seed: seeds the classifiers and the folds.

    Returns:
        The :class:`LCMProposal`; nothing is selected when fewer than two classes were answered
        (``psi_r`` would have nothing to tell apart).
    """
    features, answers = answered.features, answered.answers
    if features.ndim != 2 or candidate_features.ndim != 2:
        raise ValueError("features must be (superpixels, D) arrays")
    if features.shape[1] != candidate_features.shape[1]:
        raise ValueError(
            f"answered features have {features.shape[1]} dimensions but candidates have {candidate_features.shape[1]}"
        )
    if answers.size and (answers.min() < 0 or answers.max() >= num_classes):
        raise ValueError(f"answers must be classes 0..{num_classes - 1}")
    size = candidate_labels.shape[0]
    rows = features.shape[0]
    if not (
        answers.shape == answered.labels.shape == (rows,)
        and answered.model_probs.shape == (rows, num_classes)
        and candidate_model_probs.shape == (size, num_classes)
        and candidate_features.shape[0] == size
    ):
        raise ValueError(
            "every answered superpixel and every candidate needs one feature row, label and C model probabilities"
        )
    answer_counts = np.bincount(answers, minlength=num_classes)
    if np.count_nonzero(answer_counts) < 2 or size == 0:
        nothing = np.zeros(size, dtype=bool)
        return LCMProposal(
            predicted=np.full(size, IGNORE_INDEX, dtype=np.int64),
            confidence=np.zeros(size),
            j1=nothing,
            j2=nothing,
            j3=nothing,
            j4=nothing,
            j5=nothing,
            selected=nothing,
        )
    classifier = fit_classifier(features, answers, num_classes, config, seed)
    predicted, confidence = classify(classifier, candidate_features)
    j1, j2, j3, j5 = _criteria(predicted, confidence, candidate_labels, answer_counts, candidate_model_probs, config)
    if config.min_precision > 0:
        support, precision = held_out_precision(answered, num_classes, config, seed)
        trusted = wilson_lower_bound(precision, support, config.z) >= config.min_precision
        j4 = trusted[predicted]
    else:
        j4 = np.ones(size, dtype=bool)
    selected = j1 & j2 & j3 & j4 & j5 & (candidate_labels != predicted)
    return LCMProposal(predicted, confidence, j1, j2, j3, j4, j5, selected)
