"""Teacher-Student-Friend training (TSF, ``003_...`` §3.1) on a correction loop's labels.

Three DeepLabV3+ of one architecture: a *student* and a *friend*, trained by SGD, and a
*teacher* whose weights are the exponential moving average (EMA) of the student's. Per batch,
with ``V`` the verified pixels (a human answered them, or an answer's expansion reached them)
and ``U`` the rest:

- eq. 1, supervised: cross-entropy of the student and of the friend on ``V``'s labels;
- eq. 2, teacher to student: cross-entropy of the student on ``U`` against the teacher's
  pseudo-labels, which are the teacher's top class where it is at least
  ``confidence_threshold`` sure (the paper's reliable area, outside its error map) and the
  current label elsewhere (the paper's PLAR-refined pseudo-label: in this loop the labels that
  import, LCM and PLAR left);
- eq. 3, cross pseudo supervision: the student learns the friend's top class on ``U`` and the
  friend the student's;
- eq. 4: the three summed, each a mean over its pixels (the unsupervised two ramped up, below).

Before the losses, the batch is mixed as in AEL, whose teacher-student set-up the paper builds
on: *adaptive copy-paste* pastes the verified pixels of one class from another image of the
batch, and *adaptive CutMix* pastes the bounding box of one class's current labels from
another image; the class is drawn with probability ``softmax(1 - confidence_c)``, where
``confidence_c`` is a running mean of the student's probability of ``c`` on verified pixels of
``c``, so that classes the model is unsure of are mixed in more often. The teacher sees the
batch after copy-paste and before CutMix; its pseudo-labels are cut and pasted with the image.

The teacher is what training returns: it is the model the round scores and predicts with.

What the paper leaves open, and what was decided here:

- *Labelled and unlabelled data are pixels, not images*: an image holds both, so eqs. 1-3 are
  means over the verified, resp. unverified, pixels of a batch.
- *Pseudo-labels where the teacher is unsure* are the current labels, as above.
- *The unsupervised terms ramp up* with Mean Teacher's ``exp(-5 (1 - t)^2)`` over the first
  ``rampup`` share of the iterations: at full weight from the first step, the pseudo-labels
  of untrained networks pulled the student away from the verified labels.
- *The teacher labels a batch with its batch statistics* (BatchNorm in training mode, no
  gradient); its running statistics are the student's, copied after each step. Early in a
  short run, running statistics are far from the batch's and made confident wrong labels.
- *EMA decay* ramps as in Mean Teacher, ``min(ema_decay, 1 - 1 / (step + 1))``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm import tqdm

from alc_backend import IGNORE_INDEX
from alc_backend.training.augment import augment_with_regions
from alc_backend.training.model import ModelConfig, build_model
from alc_backend.training.schedule import poly_lr
from alc_backend.training.trainer import TrainConfig, TrainStep, batch_loader, sgd


@dataclass(frozen=True)
class TSFConfig:
    """TSF's settings.

    ``ema_decay``: the teacher keeps this share of its weights at each step. ``confidence_threshold``:
    the teacher's least top-class probability for its pseudo-label to replace the current label
    (0.7 in the paper). ``copy_paste`` and ``cutmix``: the probability that a sample of a batch
    is mixed by each. ``confidence_momentum``: the share of the class confidences kept at each step.
    ``rampup``: the share of the iterations over which the unsupervised terms reach full weight.
    """

    ema_decay: float = 0.99
    confidence_threshold: float = 0.7
    copy_paste: float = 0.5
    cutmix: float = 0.5
    confidence_momentum: float = 0.9
    rampup: float = 0.3

    def __post_init__(self) -> None:
        for name in ("ema_decay", "confidence_threshold", "copy_paste", "cutmix", "confidence_momentum", "rampup"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")


@dataclass(frozen=True)
class TSFLosses:
    """The terms of eq. 4 for one batch (each a mean over its pixels; 0 where it has none)."""

    supervised: torch.Tensor
    teacher: torch.Tensor
    cross: torch.Tensor

    def total(self, unsupervised_weight: float = 1.0) -> torch.Tensor:
        """Eq. 4, the two unsupervised terms weighted by ``unsupervised_weight``."""
        return self.supervised + unsupervised_weight * (self.teacher + self.cross)


def sigmoid_rampup(iteration: int, length: float) -> float:
    """Mean Teacher's ramp-up ``exp(-5 (1 - t)^2)``, ``t = min(iteration / length, 1)``; 1 for ``length`` 0."""
    if length <= 0:
        return 1.0
    progress = min(iteration / length, 1.0)
    return math.exp(-5.0 * (1.0 - progress) ** 2)


def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, decay: float) -> None:
    """``teacher <- decay * teacher + (1 - decay) * student`` for parameters; buffers are copied."""
    with torch.no_grad():
        for mine, theirs in zip(teacher.parameters(), student.parameters(), strict=True):
            mine.mul_(decay).add_(theirs.detach(), alpha=1.0 - decay)
        for mine, theirs in zip(teacher.buffers(), student.buffers(), strict=True):
            mine.copy_(theirs)


def teacher_pseudo_labels(teacher_probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> torch.Tensor:
    """The targets of eq. 2: the teacher's top class where its probability is ``>= threshold``, else ``labels``.

    Args:
        teacher_probs: ``(B, C, S, S)`` softmax probabilities of the teacher.
        labels: ``(B, S, S)`` int64 current labels, ``IGNORE_INDEX`` = none.

    Returns:
        ``(B, S, S)`` int64.
    """
    confidence, top = teacher_probs.max(dim=1)
    return torch.where(confidence >= threshold, top, labels)


def tsf_losses(
    student_logits: torch.Tensor,
    friend_logits: torch.Tensor,
    labels: torch.Tensor,
    verified: torch.Tensor,
    teacher_targets: torch.Tensor,
) -> TSFLosses:
    """Eqs. 1-3 for one batch.

    Args:
        student_logits, friend_logits: ``(B, C, S, S)``.
        labels: ``(B, S, S)`` int64 current labels, ``IGNORE_INDEX`` = none.
        verified: ``(B, S, S)`` bool, the pixels in ``V``.
        teacher_targets: ``(B, S, S)`` int64 from :func:`teacher_pseudo_labels`.

    Returns:
        The three terms; eq. 1 sums the student's and the friend's cross-entropy on ``V``, eq. 3
        both directions of cross pseudo supervision on ``U``.
    """
    supervised_targets = torch.where(verified, labels, IGNORE_INDEX)
    unverified = ~verified & (labels != IGNORE_INDEX)
    teacher = torch.where(unverified, teacher_targets, IGNORE_INDEX)
    from_friend = torch.where(unverified, friend_logits.detach().argmax(dim=1), IGNORE_INDEX)
    from_student = torch.where(unverified, student_logits.detach().argmax(dim=1), IGNORE_INDEX)
    return TSFLosses(
        supervised=_mean_ce(student_logits, supervised_targets) + _mean_ce(friend_logits, supervised_targets),
        teacher=_mean_ce(student_logits, teacher),
        cross=_mean_ce(student_logits, from_friend) + _mean_ce(friend_logits, from_student),
    )


def _mean_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the pixels whose target is not ``IGNORE_INDEX``; 0 (with a graph) for none."""
    if not (targets != IGNORE_INDEX).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)


def class_sampling_probabilities(confidence: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """AEL's ``softmax(1 - confidence_c)`` over the ``allowed`` classes; ``(C,)`` -> ``(C,)`` float64 summing to 1.

    Raises:
        ValueError: no class is allowed.
    """
    if not allowed.any():
        raise ValueError("no class to sample from")
    weights = torch.exp(1.0 - confidence.double()) * allowed
    return weights / weights.sum()


def update_class_confidence(
    confidence: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor, verified: torch.Tensor, momentum: float
) -> torch.Tensor:
    """The running class confidences after a batch: ``momentum * old + (1 - momentum) * mean p(c)`` on verified ``c``.

    Args:
        confidence: ``(C,)`` float32.
        probs: ``(B, C, S, S)`` the student's softmax.
        labels, verified: ``(B, S, S)``.

    Returns:
        ``(C,)``; a class with no verified pixel in the batch keeps its value.
    """
    num_classes = confidence.shape[0]
    mask = verified & (labels != IGNORE_INDEX)
    classes = labels[mask]
    if classes.numel() == 0:
        return confidence
    chosen = probs.detach().permute(0, 2, 3, 1)[mask].gather(1, classes[:, None])[:, 0]
    sums = torch.zeros(num_classes, dtype=torch.float64, device=probs.device).index_add_(0, classes, chosen.double())
    counts = torch.bincount(classes, minlength=num_classes)
    present = counts > 0
    mean = sums / counts.clamp_min(1)
    updated = confidence.clone()
    updated[present] = (momentum * confidence[present].double() + (1.0 - momentum) * mean[present]).to(updated.dtype)
    return updated


def copy_paste(
    images: torch.Tensor,
    labels: torch.Tensor,
    verified: torch.Tensor,
    confidence: torch.Tensor,
    rate: float,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adaptive copy-paste: sample ``i`` takes the verified pixels of one class of sample ``i + 1`` (cyclic).

    Each sample is pasted on with probability ``rate``; the class is drawn by
    :func:`class_sampling_probabilities` over the classes of the other sample's verified
    pixels. Pasted pixels bring their image values and labels and count as verified.

    Args:
        images: ``(B, 3, S, S)``; labels, verified: ``(B, S, S)``; confidence: ``(C,)``.

    Returns:
        New ``images``, ``labels`` and ``verified``.
    """
    mixed_images, mixed_labels, mixed_verified = images.clone(), labels.clone(), verified.clone()
    for index in range(images.shape[0]):
        other = (index + 1) % images.shape[0]
        if other == index or rng.random() >= rate:
            continue
        chosen = _draw_class(labels[other][verified[other] & (labels[other] != IGNORE_INDEX)], confidence, rng)
        if chosen is None:
            continue
        paste = verified[other] & (labels[other] == chosen)
        mixed_images[index][:, paste] = images[other][:, paste]
        mixed_labels[index][paste] = chosen
        mixed_verified[index][paste] = True
    return mixed_images, mixed_labels, mixed_verified


def class_box(labels: torch.Tensor, chosen: int) -> tuple[int, int, int, int]:
    """The bounding box ``(top, bottom, left, right)`` of ``chosen`` in ``(S, S)`` labels; bottom, right exclusive."""
    rows = torch.nonzero((labels == chosen).any(dim=1))[:, 0]
    cols = torch.nonzero((labels == chosen).any(dim=0))[:, 0]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def cutmix(
    maps: list[torch.Tensor],
    labels: torch.Tensor,
    confidence: torch.Tensor,
    rate: float,
    rng: np.random.Generator,
) -> list[torch.Tensor]:
    """Adaptive CutMix: sample ``i`` takes a box of sample ``i + 1`` (cyclic) in every map of ``maps``.

    Each sample is mixed with probability ``rate``. The box is the bounding box of one class of
    the other sample's ``labels`` (current labels, verified or not), the class drawn by
    :func:`class_sampling_probabilities` over the classes present there.

    Args:
        maps: tensors of shape ``(B, ..., S, S)`` to cut and paste alike (image, labels, verified,
            teacher targets...).
        labels: ``(B, S, S)`` the labels that choose the boxes.
        confidence: ``(C,)``.

    Returns:
        The mixed ``maps``, in order.
    """
    mixed = [values.clone() for values in maps]
    for index in range(labels.shape[0]):
        other = (index + 1) % labels.shape[0]
        if other == index or rng.random() >= rate:
            continue
        chosen = _draw_class(labels[other][labels[other] != IGNORE_INDEX], confidence, rng)
        if chosen is None:
            continue
        top, bottom, left, right = class_box(labels[other], chosen)
        for source, target in zip(maps, mixed, strict=True):
            target[index][..., top:bottom, left:right] = source[other][..., top:bottom, left:right]
    return mixed


def _draw_class(candidates: torch.Tensor, confidence: torch.Tensor, rng: np.random.Generator) -> int | None:
    """A class of ``candidates`` (1-D labels) drawn by :func:`class_sampling_probabilities`; None for none."""
    if candidates.numel() == 0:
        return None
    num_classes = confidence.shape[0]
    allowed = torch.bincount(candidates, minlength=num_classes)[:num_classes] > 0
    p = class_sampling_probabilities(confidence, allowed).cpu().numpy()
    return int(rng.choice(p.size, p=p / p.sum()))


VerifiedSample = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Image (H, W, 3) uint8 RGB, labels (H, W) uint8 (``IGNORE_INDEX`` = none) and verified (H, W) bool."""


class VerifiedImages(Protocol):
    """An image set whose samples say which pixels a human verified; read lazily."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> VerifiedSample: ...


class _VerifiedViews(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Random augmented views ``(3, S, S)`` image, ``(S, S)`` labels, ``(S, S)`` verified of ``data``.

    The verified mask is transformed like the labels (padding is not verified). As in
    supervised training, a one-image set is shown twice per epoch and the draws come from one
    generator seeded once.
    """

    def __init__(self, data: VerifiedImages, config: TrainConfig) -> None:
        self._data = data
        self._config = config
        self._rng = np.random.default_rng(config.seed)

    def __len__(self) -> int:
        return max(len(self._data), 2)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, labels, verified = self._data[index % len(self._data)]
        flags = np.where(verified, 0, -1)
        size, scales = self._config.image_size, self._config.scale_range
        image_t, labels_t, flags_t = augment_with_regions(image, labels, flags, size, scales, self._rng)
        return image_t, labels_t, torch.zeros_like(labels_t, dtype=torch.bool) if flags_t is None else flags_t >= 0


def train_tsf(
    data: VerifiedImages,
    model_config: ModelConfig,
    train_config: TrainConfig,
    tsf: TSFConfig,
    device: torch.device,
    progress: bool = True,
    on_step: Callable[[TrainStep], None] | None = None,
) -> torch.nn.Module:
    """Train a teacher, a student and a friend on ``data`` by eq. 4; return the teacher on ``device`` in eval mode.

    The student starts from ``model_config``'s weights under ``train_config.seed``, the friend
    from the same encoder weights with its decoder drawn under ``seed + 1``, and the teacher as
    a copy of the student. Both learners share one SGD optimiser with the learning rate,
    momentum, weight decay and poly decay of supervised training; after each step the teacher
    takes the student's EMA (decay ``min(tsf.ema_decay, 1 - 1 / (step + 1))``, Mean Teacher's
    ramp, so that short runs are not dominated by the first weights). ``on_step`` gets eq. 4's
    total as ``loss``.
    """
    torch.manual_seed(train_config.seed)
    student = build_model(model_config).to(device)
    torch.manual_seed(train_config.seed + 1)
    friend = build_model(model_config).to(device)
    teacher = copy.deepcopy(student)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    if len(data) == 0 or train_config.epochs == 0:
        return teacher.eval()
    loader = batch_loader(_VerifiedViews(data, train_config), train_config, device)
    optimizer = sgd([*student.parameters(), *friend.parameters()], train_config)
    confidence = torch.full((model_config.num_classes,), 0.5, device=device)
    rng = np.random.default_rng([train_config.seed, 1])
    max_iterations = train_config.epochs * len(loader)
    iteration = 0
    student.train()
    friend.train()
    with tqdm(total=max_iterations, desc="training (TSF)", unit="it", disable=not progress) as bar:
        for _ in range(train_config.epochs):
            for images, labels, verified in loader:
                lr = poly_lr(train_config.lr, iteration, max_iterations, train_config.poly_power)
                batch = (images.to(device), labels.to(device), verified.to(device))
                weight = sigmoid_rampup(iteration, tsf.rampup * max_iterations)
                loss = _tsf_step(student, friend, teacher, optimizer, batch, confidence, lr, weight, tsf, rng)
                if loss is not None:
                    total, confidence = loss
                    ema_update(teacher, student, min(tsf.ema_decay, 1.0 - 1.0 / (iteration + 1)))
                    bar.set_postfix(loss=f"{total:.3f}", lr=f"{lr:.3g}", refresh=False)
                    if on_step is not None:
                        on_step(TrainStep(iteration, max_iterations, lr, total))
                iteration += 1
                bar.update(1)
    return teacher.eval()


def _tsf_step(
    student: torch.nn.Module,
    friend: torch.nn.Module,
    teacher: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    confidence: torch.Tensor,
    lr: float,
    unsupervised_weight: float,
    tsf: TSFConfig,
    rng: np.random.Generator,
) -> tuple[float, torch.Tensor] | None:
    """One step of eq. 4: mix, pseudo-label, SGD; the loss and the new class confidences, or None without labels."""
    images, labels, verified = batch
    if not (labels != IGNORE_INDEX).any():
        return None
    num_classes = confidence.shape[0]
    largest = int(labels[labels != IGNORE_INDEX].max())
    if largest >= num_classes:
        raise ValueError(f"label {largest} found, but the model has only {num_classes} classes")
    images, labels, verified = copy_paste(images, labels, verified, confidence, tsf.copy_paste, rng)
    with torch.no_grad():
        teacher_probs = teacher.train()(images).softmax(dim=1)
    targets = teacher_pseudo_labels(teacher_probs, labels, tsf.confidence_threshold)
    images, mixed_labels, verified, targets = cutmix(
        [images, labels, verified, targets], labels, confidence, tsf.cutmix, rng
    )
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    student_logits = student(images)
    friend_logits = friend(images)
    losses = tsf_losses(student_logits, friend_logits, mixed_labels, verified, targets)
    total = losses.total(unsupervised_weight)
    total.backward()
    optimizer.step()
    updated = update_class_confidence(
        confidence, student_logits.softmax(dim=1), mixed_labels, verified, tsf.confidence_momentum
    )
    return float(total.detach()), updated
