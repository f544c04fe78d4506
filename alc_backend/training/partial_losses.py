"""Stage-1 losses for region-wise multi-class labels (merged positive, prototypical pixel, CE).

These are the losses of section 3.2 of "Active Learning for Semantic Segmentation with
Multi-class Label Query" (eqs. 5-10). An oracle answers a region query with the set ``Y`` of
classes present in the region; a region whose answer holds one class is an ordinary
single-class label, a region whose answer holds several classes gives every pixel of the
region the partial label ``Y``.

A batch of ``B`` images of ``H × W`` pixels and ``C`` classes is represented by:

- ``logits``: (B, C, H, W) float, the model's output (before softmax);
- ``labels``: (B, H, W) int64, the class of each single-class pixel (pixels of regions whose
  answer has one class, or other labelled pixels), ``IGNORE_INDEX`` elsewhere;
- ``regions``: (B, H, W) int64, the index in ``[0, R)`` of the multi-class region each pixel
  belongs to within its image, -1 for pixels in no multi-class region. Indices are per image:
  region 0 of image 0 and region 0 of image 1 are different regions;
- ``region_classes``: (B, R, C) bool, row ``[b, r]`` is the class set ``Y`` of region ``r`` of
  image ``b``. Rows of unused region slots are all False.

A region counts only if at least one pixel of the batch carries its index, so a region cropped
away by augmentation (or an unused slot) contributes nothing, not even to the mean's
denominator. The losses are means over regions, each region weighted equally whatever its
size (eqs. 7 and 9). A region slot that has pixels but an empty class set is an error.

Single-class regions belong in ``labels`` (eq. 5), but one passed as a region with ``|Y| = 1``
is harmless: its merged positive loss is then its pixel-mean cross-entropy. The terms are
independent, so a pixel that is both labelled and in a region contributes to both.

Every loss is a scalar tensor that stays connected to ``logits``' graph even when it is 0
(no labelled pixel, no region), so ``.backward()`` on a total always works. Validation reads
values of the index tensors, which synchronises with the device once per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from alc_backend import IGNORE_INDEX


@dataclass(frozen=True)
class PartialLossWeights:
    """The balancing weights of eq. (10): ``ce`` is λ_CE, ``mp`` is λ_MP (the paper's 16 and 8).

    The prototypical pixel loss has weight 1.
    """

    ce: float = 16.0
    mp: float = 8.0

    def __post_init__(self) -> None:
        for name in ("ce", "mp"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"weight {name} must be finite and >= 0, got {value}")


@dataclass(frozen=True)
class PartialLossParts:
    """The terms of one evaluation of eq. (10), as floats for logging.

    ``ce``, ``mp`` and ``pp`` are unweighted; ``total = weights.ce * ce + weights.mp * mp + pp``.
    ``labelled_pixels`` counts pixels with a label other than ``IGNORE_INDEX``; ``regions``
    counts the multi-class regions present in the batch.
    """

    ce: float
    mp: float
    pp: float
    total: float
    labelled_pixels: int
    regions: int


@dataclass(frozen=True)
class _RegionPixels:
    """The pixels of a batch that lie in a multi-class region, flattened.

    ``log_probs``: (N, C) log-softmax of the N region pixels; ``slot``: (N,) int64 index
    ``b * R + r`` of each pixel's region in the flattened (B * R) region slots;
    ``classes``: (B * R, C) bool class sets; ``present``: (B * R,) bool, True for slots
    with at least one pixel; ``pixel_counts``: (B * R,) int64 pixels per slot.
    """

    log_probs: torch.Tensor
    slot: torch.Tensor
    classes: torch.Tensor
    present: torch.Tensor
    pixel_counts: torch.Tensor


def _check_logits(logits: torch.Tensor) -> None:
    if logits.ndim != 4:
        raise ValueError(f"logits must have shape (B, C, H, W), got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if logits.shape[1] < 1:
        raise ValueError("logits must have at least one class channel")


def _check_dtype_and_device(name: str, values: torch.Tensor, dtype: torch.dtype, logits: torch.Tensor) -> None:
    if values.dtype != dtype:
        raise ValueError(f"{name} must be {str(dtype).removeprefix('torch.')}, got {values.dtype}")
    if values.device != logits.device:
        raise ValueError(f"{name} is on {values.device} but logits are on {logits.device}")


def _check_pixel_map(name: str, values: torch.Tensor, logits: torch.Tensor) -> None:
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(values.shape) != expected:
        raise ValueError(
            f"{name} must have shape (B, H, W) = {expected} to match logits {tuple(logits.shape)}, "
            f"got {tuple(values.shape)}"
        )
    _check_dtype_and_device(name, values, torch.int64, logits)


def _region_pixels(log_probs: torch.Tensor, regions: torch.Tensor, region_classes: torch.Tensor) -> _RegionPixels:
    """Validate ``regions`` and ``region_classes`` against ``log_probs`` (B, C, H, W) and gather region pixels."""
    _check_pixel_map("regions", regions, log_probs)
    batch, n_classes = log_probs.shape[:2]
    if region_classes.ndim != 3 or region_classes.shape[0] != batch or region_classes.shape[2] != n_classes:
        raise ValueError(
            f"region_classes must have shape (B, R, C) with B = {batch} and C = {n_classes}, "
            f"got {tuple(region_classes.shape)}"
        )
    _check_dtype_and_device("region_classes", region_classes, torch.bool, log_probs)
    n_slots = region_classes.shape[1]
    if regions.numel() > 0:
        low, high = int(regions.min()), int(regions.max())
        if low < -1:
            raise ValueError(f"regions must be -1 (no region) or a region index >= 0, found {low}")
        if high >= n_slots:
            raise ValueError(f"region index {high} is out of range: region_classes has R = {n_slots} region slots")

    flat_regions = regions.reshape(batch, -1)
    inside = flat_regions >= 0
    image_index = torch.arange(batch, device=regions.device).unsqueeze(1).expand_as(flat_regions)
    slot = (image_index * n_slots + flat_regions)[inside]
    # (B, C, H, W) -> (B, H*W, C), then the region pixels only: (N, C)
    pixel_log_probs = log_probs.flatten(2).transpose(1, 2)[inside]
    classes = region_classes.reshape(batch * n_slots, n_classes)
    pixel_counts = torch.bincount(slot, minlength=batch * n_slots)
    present = pixel_counts > 0
    empty = present & ~classes.any(dim=1)
    if bool(empty.any()):
        first = int(empty.nonzero()[0, 0])
        raise ValueError(
            f"region {first % n_slots} of image {first // n_slots} has pixels but an empty class set "
            f"({int(empty.sum())} such region(s) in the batch)"
        )
    return _RegionPixels(pixel_log_probs, slot, classes, present, pixel_counts)


def _mean_over_present(per_slot: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_slot`` (B * R,) over present slots; absent slots must hold 0. 0 if none is present."""
    return per_slot.sum() / present.sum().clamp(min=1).to(per_slot.dtype)


def _merged_positive(pixels: _RegionPixels) -> torch.Tensor:
    """Eq. (7) from gathered region pixels: region-mean of pixel-mean ``-log Σ_{c∈Y} p_c``."""
    pixel_classes = pixels.classes[pixels.slot]  # (N, C)
    # log Σ_{c∈Y} p_c = logsumexp over the candidate classes of log p; Y is non-empty (validated)
    masked = pixels.log_probs.masked_fill(~pixel_classes, float("-inf"))
    pixel_losses = -torch.logsumexp(masked, dim=1)  # (N,)
    sums = pixel_losses.new_zeros(pixels.classes.shape[0]).index_add(0, pixels.slot, pixel_losses)
    per_region = sums / pixels.pixel_counts.clamp(min=1).to(sums.dtype)
    return _mean_over_present(per_region, pixels.present)


def _prototypical(pixels: _RegionPixels) -> torch.Tensor:
    """Eqs. (8)-(9) from gathered region pixels: region-mean of class-mean ``-max_{x∈s} log p_c(x)``."""
    n_slots, n_classes = pixels.classes.shape
    index = pixels.slot.unsqueeze(1).expand(-1, n_classes)
    # best[s, c] = max over the pixels of slot s of log p_c; slots without pixels keep 0
    best = pixels.log_probs.new_zeros(n_slots, n_classes).scatter_reduce(
        0, index, pixels.log_probs, reduce="amax", include_self=False
    )
    counted = pixels.classes & pixels.present.unsqueeze(1)
    class_losses = torch.where(counted, -best, torch.zeros_like(best))
    per_region = class_losses.sum(dim=1) / pixels.classes.sum(dim=1).clamp(min=1).to(best.dtype)
    return _mean_over_present(per_region, pixels.present)


def merged_positive_loss(logits: torch.Tensor, regions: torch.Tensor, region_classes: torch.Tensor) -> torch.Tensor:
    """Merged positive loss, eq. (7): every pixel of a region should predict one of its classes.

    ``logits`` (B, C, H, W), ``regions`` (B, H, W) int64, ``region_classes`` (B, R, C) bool (see
    the module docstring). For each multi-class region ``s`` with class set ``Y``, the loss is
    the mean over its pixels of ``-log Σ_{c∈Y} p_c(x)`` (computed as ``-logsumexp`` of the
    log-softmax over ``Y``); the result is the mean over the regions present in the batch, each
    region weighted equally. Returns a scalar: 0 (still connected to ``logits``) if no region
    is present. Raises ``ValueError`` on malformed inputs.
    """
    _check_logits(logits)
    pixels = _region_pixels(F.log_softmax(logits, dim=1), regions, region_classes)
    return _merged_positive(pixels)


def prototypical_pixel_loss(logits: torch.Tensor, regions: torch.Tensor, region_classes: torch.Tensor) -> torch.Tensor:
    """Prototypical pixel loss, eqs. (8)-(9): each class of a region must be found at some pixel.

    ``logits`` (B, C, H, W), ``regions`` (B, H, W) int64, ``region_classes`` (B, R, C) bool (see
    the module docstring). For each multi-class region ``s`` and each ``c ∈ Y``, the prototypical
    pixel is the pixel of ``s`` where ``p_c`` is largest, and its cross-entropy with class ``c``
    is ``-max_{x∈s} log p_c(x)``; these are averaged over ``c ∈ Y``, then over the regions present
    in the batch. The gradient reaches only the prototypical pixels (split evenly between pixels
    that tie exactly). Returns a scalar: 0 (still connected to ``logits``) if no region is
    present. Raises ``ValueError`` on malformed inputs.
    """
    _check_logits(logits)
    pixels = _region_pixels(F.log_softmax(logits, dim=1), regions, region_classes)
    return _prototypical(pixels)


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over labelled pixels (0 if none) and the number of labelled pixels (0-d int64)."""
    _check_pixel_map("labels", labels, logits)
    n_classes = logits.shape[1]
    labelled = labels != IGNORE_INDEX
    if labels.numel() > 0:
        bad = labelled & ((labels < 0) | (labels >= n_classes))
        if bool(bad.any()):
            value = int(labels[bad][0])
            raise ValueError(f"labels must be in [0, {n_classes}) or IGNORE_INDEX ({IGNORE_INDEX}), found {value}")
    count = labelled.sum()
    total = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / count.clamp(min=1).to(total.dtype), count


def _partial_terms(
    logits: torch.Tensor,
    labels: torch.Tensor,
    regions: torch.Tensor,
    region_classes: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, _RegionPixels]:
    """Validate the batch and return CE, MP, PP, the labelled-pixel count and the region pixels."""
    _check_logits(logits)
    ce, labelled_pixels = _cross_entropy(logits, labels)
    pixels = _region_pixels(F.log_softmax(logits, dim=1), regions, region_classes)
    return ce, _merged_positive(pixels), _prototypical(pixels), labelled_pixels, pixels


def partial_label_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    regions: torch.Tensor,
    region_classes: torch.Tensor,
    weights: PartialLossWeights | None = None,
) -> torch.Tensor:
    """The stage-1 loss of eq. (10): ``λ_CE · CE + λ_MP · MP + PP`` as a scalar tensor.

    ``logits`` (B, C, H, W), ``labels`` (B, H, W) int64, ``regions`` (B, H, W) int64,
    ``region_classes`` (B, R, C) bool (see the module docstring); ``weights`` defaults to the
    paper's λ_CE = 16, λ_MP = 8. CE is the mean cross-entropy over the pixels of ``labels`` that
    are not ``IGNORE_INDEX`` (0 if there is none; like the trainer's, a pixel mean, not a region
    mean); MP is ``merged_positive_loss`` and PP is ``prototypical_pixel_loss``. Labels must be
    in ``[0, C)`` or ``IGNORE_INDEX``. Raises ``ValueError`` on malformed inputs.
    """
    weights = PartialLossWeights() if weights is None else weights
    ce, mp, pp, _, _ = _partial_terms(logits, labels, regions, region_classes)
    return weights.ce * ce + weights.mp * mp + pp


def partial_label_loss_with_parts(
    logits: torch.Tensor,
    labels: torch.Tensor,
    regions: torch.Tensor,
    region_classes: torch.Tensor,
    weights: PartialLossWeights | None = None,
) -> tuple[torch.Tensor, PartialLossParts]:
    """``partial_label_loss`` and its terms as floats for logging (reading them synchronises with the device)."""
    weights = PartialLossWeights() if weights is None else weights
    ce, mp, pp, labelled_pixels, pixels = _partial_terms(logits, labels, regions, region_classes)
    total = weights.ce * ce + weights.mp * mp + pp
    parts = PartialLossParts(
        ce=float(ce.detach()),
        mp=float(mp.detach()),
        pp=float(pp.detach()),
        total=float(total.detach()),
        labelled_pixels=int(labelled_pixels),
        regions=int(pixels.present.sum()),
    )
    return total, parts
