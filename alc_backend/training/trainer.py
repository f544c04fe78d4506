"""Training a DeepLabV3+ from its initial weights on a labelled image set.

Labels are pixel classes, supervised by cross-entropy. An image may also carry regions whose
answers ticked several classes (:class:`MixedRegions`); those pixels are then supervised by the
multi-class paper's merged-positive and prototypical-pixel losses instead (eq. 10,
:mod:`alc_backend.training.partial_losses`), not by their labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from alc_backend import IGNORE_INDEX
from alc_backend.training.augment import augment_with_regions
from alc_backend.training.model import ModelConfig, build_model
from alc_backend.training.partial_losses import PartialLossWeights, partial_label_loss
from alc_backend.training.schedule import poly_lr

SIZE_MULTIPLE = 16
"""DeepLabV3+ (output stride 16) needs input sides that are multiples of this, px."""


@dataclass(frozen=True)
class MixedRegions:
    """The regions of one image whose answers ticked several classes.

    Attributes:
        ids: ``(H, W)`` int, the index of the region holding each pixel, -1 for none.
        classes: ``classes[i]``, the classes ticked for region ``i``.
    """

    ids: np.ndarray
    classes: tuple[tuple[int, ...], ...]


Sample = tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, MixedRegions]
"""Image (H, W, 3) uint8 RGB, labels (H, W) uint8 (``IGNORE_INDEX`` = none), and optionally its mixed regions."""


class LabelledImages(Protocol):
    """A labelled image set that training reads lazily, one sample at a time."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample:
        """Return one :data:`Sample`; sizes may differ from one sample to the next."""
        ...


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run.

    ``image_size`` is the side of the square training crops, px (a multiple of 16).
    ``lr`` is the SGD learning rate at the first iteration; it decays per iteration as
    ``lr * (1 - iteration / max_iterations) ** poly_power``; 0.03 to 0.05 fitted best for
    ResNet-18 trained from scratch at batch size 8 on the CPU. ``scale_range`` bounds the
    random rescaling factor of the augmentation (1.0: longer side = ``image_size``).
    ``partial_weights`` are λ_CE and λ_MP of eq. 10, used for batches holding mixed regions.
    """

    image_size: int = 64
    epochs: int = 20
    batch_size: int = 8
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    scale_range: tuple[float, float] = (0.75, 1.5)
    seed: int = 0
    partial_weights: PartialLossWeights = field(default_factory=PartialLossWeights)

    def __post_init__(self) -> None:
        if self.image_size < SIZE_MULTIPLE or self.image_size % SIZE_MULTIPLE != 0:
            raise ValueError(f"image_size must be a positive multiple of 16, got {self.image_size}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")


@dataclass(frozen=True)
class TrainStep:
    """What one optimisation step did: ``loss`` is the mean cross-entropy over labelled pixels (with
    mixed regions in the batch: eq. 10's total divided by λ_CE)."""

    iteration: int
    max_iterations: int
    lr: float
    loss: float


class _AugmentedViews(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Random augmented views of ``data``, read from it one sample at a time.

    A view is the image (3, S, S) float32, the labels (S, S) int64, the mixed regions' ids
    (S, S) int64 (-1 = none) and their classes (R, C) bool. Pixels of a mixed region lose their
    labels: the partial losses supervise them.

    A one-image set is shown twice per epoch so that no batch holds a single sample
    (BatchNorm after DeepLab's image pooling cannot train on one value per channel).
    The random draws come from one generator seeded once, so they repeat for a given seed
    as long as samples are read in the same order (the loader uses no worker processes).
    """

    def __init__(self, data: LabelledImages, config: TrainConfig, num_classes: int) -> None:
        self._data = data
        self._config = config
        self._num_classes = num_classes
        self._rng = np.random.default_rng(config.seed)

    def __len__(self) -> int:
        return max(len(self._data), 2)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        sample = self._data[index % len(self._data)]
        image, labels = sample[0], sample[1]
        mixed = sample[2] if len(sample) == 3 else None
        region_classes = torch.zeros((0, self._num_classes), dtype=torch.bool)
        ids = None
        if mixed is not None and mixed.classes:
            ids = mixed.ids
            labels = np.where(ids >= 0, IGNORE_INDEX, labels).astype(np.uint8)
            region_classes = torch.zeros((len(mixed.classes), self._num_classes), dtype=torch.bool)
            for region, classes in enumerate(mixed.classes):
                region_classes[region, list(classes)] = True
        size, scales = self._config.image_size, self._config.scale_range
        image_t, labels_t, ids_t = augment_with_regions(image, labels, ids, size, scales, self._rng)
        return image_t, labels_t, torch.full_like(labels_t, -1) if ids_t is None else ids_t, region_classes


def _collate(
    views: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack views into a batch; the region classes are padded with empty rows to the batch's largest R."""
    most = max(view[3].shape[0] for view in views)
    num_classes = views[0][3].shape[1]
    region_classes = torch.zeros((len(views), most, num_classes), dtype=torch.bool)
    for index, view in enumerate(views):
        region_classes[index, : view[3].shape[0]] = view[3]
    return (
        torch.stack([view[0] for view in views]),
        torch.stack([view[1] for view in views]),
        torch.stack([view[2] for view in views]),
        region_classes,
    )


def batch_loader(
    views: Dataset[Any], config: TrainConfig, device: torch.device, collate: Callable[[list[Any]], Any] | None = None
) -> DataLoader[Any]:
    """Shuffled batches of ``config.batch_size`` views, in an order fixed by ``config.seed``, read in this process.

    The last, smaller batch is dropped unless it is the only one.
    """
    return DataLoader(
        views,
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=len(views) > config.batch_size,
        collate_fn=collate,
        num_workers=0,
        generator=torch.Generator().manual_seed(config.seed),
        pin_memory=device.type == "cuda",
    )


def sgd(parameters: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.SGD:
    """SGD with ``config``'s learning rate, momentum and weight decay."""
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def train_model(
    data: LabelledImages,
    model_config: ModelConfig,
    train_config: TrainConfig,
    device: torch.device,
    progress: bool = True,
    on_step: Callable[[TrainStep], None] | None = None,
) -> torch.nn.Module:
    """Train a fresh DeepLabV3+ on ``data`` and return it on ``device`` in eval mode.

    The initial weights depend only on ``model_config`` and ``train_config.seed``. Training is
    SGD with momentum and weight decay on the cross-entropy of labelled pixels (label
    ``IGNORE_INDEX`` is ignored), the learning rate decaying per iteration by the poly rule,
    on augmented ``train_config.image_size`` px crops (see ``augment``). On the CPU the result
    is the same for the same seed. Batches without a labelled pixel are skipped, so a set
    labelled entirely ``IGNORE_INDEX`` (or an empty set) returns the initial model.
    ``on_step`` is called after every optimisation step; ``progress`` shows a tqdm bar.
    """
    torch.manual_seed(train_config.seed)
    model = build_model(model_config).to(device)
    if len(data) == 0 or train_config.epochs == 0:
        return model.eval()
    views = _AugmentedViews(data, train_config, model_config.num_classes)
    loader = batch_loader(views, train_config, device, _collate)
    optimizer = sgd(model.parameters(), train_config)
    max_iterations = train_config.epochs * len(loader)
    model.train()
    iteration = 0
    with tqdm(total=max_iterations, desc="training", unit="it", disable=not progress) as bar:
        for _ in range(train_config.epochs):
            for images, labels, regions, region_classes in loader:
                lr = poly_lr(train_config.lr, iteration, max_iterations, train_config.poly_power)
                loss = _optimise(
                    model,
                    optimizer,
                    (images.to(device), labels.to(device), regions.to(device), region_classes.to(device)),
                    lr,
                    model_config.num_classes,
                    train_config.partial_weights,
                )
                if loss is not None:
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.3g}", refresh=False)
                    if on_step is not None:
                        on_step(TrainStep(iteration, max_iterations, lr, loss))
                iteration += 1
                bar.update(1)
    return model.eval()


def _optimise(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    lr: float,
    num_classes: int,
    weights: PartialLossWeights,
) -> float | None:
    """Take one SGD step at rate ``lr``; return the loss, or None when no pixel is labelled or in a mixed region.

    ``batch`` holds images (B, 3, S, S) float32 normalised, labels (B, S, S) int64, mixed
    region ids (B, S, S) int64 (-1 = none) and their classes (B, R, C) bool. Without mixed
    regions the loss is the cross-entropy of the labelled pixels; with them, eq. 10's
    ``λ_CE·CE + λ_MP·MP + PP`` divided by λ_CE (when > 0), so that the learning rate set for
    cross-entropy alone still applies.
    """
    images, labels, regions, region_classes = batch
    labelled = labels != IGNORE_INDEX
    mixed = regions >= 0
    if not labelled.any() and not mixed.any():
        return None
    if labelled.any():
        largest = int(labels[labelled].max())
        if largest >= num_classes:
            raise ValueError(f"label {largest} found, but the model has only {num_classes} classes")
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    logits = model(images)
    if mixed.any():
        loss = partial_label_loss(logits, labels, regions, region_classes, weights) / (weights.ce or 1.0)
    else:
        loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
    loss.backward()
    optimizer.step()
    return float(loss.detach())
