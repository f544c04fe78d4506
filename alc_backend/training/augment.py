"""Random training augmentation: rescale, horizontal flip, crop or pad to a square."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from alc_backend import IGNORE_INDEX
from alc_backend.training.transforms import (
    image_to_tensor,
    labels_to_tensor,
    resize_image,
    resize_labels,
    scaled_size,
)


def augment(
    image: np.ndarray,
    labels: np.ndarray,
    crop_size: int,
    scale_range: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Make one random training view of a labelled image.

    ``image`` is (H, W, 3) uint8 RGB and ``labels`` (H, W) uint8 with ``IGNORE_INDEX`` for
    unlabelled pixels. The pair is resized so the longer side is ``crop_size`` times a scale
    drawn uniformly from ``scale_range`` (labels by nearest neighbour), flipped left-right
    with probability 1/2, padded at the bottom and right up to ``crop_size`` (image with 0,
    the ImageNet mean colour after normalisation; labels with ``IGNORE_INDEX``) and cropped
    to ``crop_size`` x ``crop_size`` px at a random position.

    Returns the normalised image (3, crop_size, crop_size) float32 and the labels
    (crop_size, crop_size) int64.
    """
    image_t, labels_t, _ = augment_with_regions(image, labels, None, crop_size, scale_range, rng)
    return image_t, labels_t


def augment_with_regions(
    image: np.ndarray,
    labels: np.ndarray,
    regions: np.ndarray | None,
    crop_size: int,
    scale_range: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`augment`, with a map of region ids (H, W) int, -1 = none, transformed like the labels.

    The random draws are those of :func:`augment`, in the same order. Returns the image, the
    labels and the region ids ((crop_size, crop_size) int64, padding -1; None without ``regions``).
    """
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image of shape {image.shape} and labels of shape {labels.shape} differ")
    if regions is not None and regions.shape != labels.shape:
        raise ValueError(f"regions of shape {regions.shape} and labels of shape {labels.shape} differ")
    scale = rng.uniform(*scale_range)
    size = scaled_size(labels.shape[0], labels.shape[1], crop_size * scale)
    image_t = resize_image(image_to_tensor(image), size)
    maps = [(labels_to_tensor(labels), IGNORE_INDEX)]
    if regions is not None:
        maps.append((torch.from_numpy(regions.astype(np.int64)), -1))
    maps = [(resize_labels(values, size), pad) for values, pad in maps]
    if rng.random() < 0.5:
        image_t = image_t.flip(-1)
        maps = [(values.flip(-1), pad) for values, pad in maps]
    pad_bottom = max(0, crop_size - size[0])
    pad_right = max(0, crop_size - size[1])
    image_t = F.pad(image_t, (0, pad_right, 0, pad_bottom), value=0.0)
    maps = [(F.pad(values, (0, pad_right, 0, pad_bottom), value=pad), pad) for values, pad in maps]
    height, width = maps[0][0].shape
    top = int(rng.integers(0, height - crop_size + 1))
    left = int(rng.integers(0, width - crop_size + 1))
    window = (slice(top, top + crop_size), slice(left, left + crop_size))
    cropped = [values[window].contiguous() for values, _ in maps]
    return image_t[:, window[0], window[1]].contiguous(), cropped[0], cropped[1] if regions is not None else None
