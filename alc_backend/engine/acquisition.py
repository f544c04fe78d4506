"""Acquisition functions: one score per superpixel, higher = ask the annotator first.

Each method scores superpixel ``s`` with representative pixel ``x_r`` (see :mod:`.pool`),
model probabilities ``f(x)`` and current labels ``y_x``:

- ``random``: uniform noise from ``rng``.
- ``entropy``: ``-sum_c f(c; x_r) log f(c; x_r)``.
- ``bvsb``: best-versus-second-best ratio ``p2 / p1`` at ``x_r``.
- ``cil``: confidence in label, ``1 - f(y_{x_r}; x_r)`` (eq. 8).
- ``lcil``: look-ahead CIL, the mean of ``1 - f(y_x; x)`` over ``E`` (eq. 10).
- ``sim``: ``sum_{x in E} cos(f(x_r), f(x)) (1 - f(y_x; x))`` (eq. 9).
- ``classbal``: mean ``p2 / p1`` over ``s`` times a class weight ``1 / pi_{D(s)}``, where
  ``pi_c`` is the (add-one smoothed) share of superpixels whose dominant predicted class is
  ``c``; pass data-set-wide counts as ``class_counts``, else this image's are used.
- ``softmin``: ``1 -`` the softmin (temperature 0.1) of cleanlab's per-pixel label quality
  ``f(y_x; x)`` over ``s``, the peer baseline of Lad & Mueller (2023).
- ``abc``: adaptively balanced confidence in label (A2LC):
  ``sum_{x in E} cos(f(x_r), f(x)) w(y_x) (1 - f(y_x; x))``, ``sim`` with a class weight
  ``w`` from :func:`abc_class_weights`; pass data-set-wide weights as ``class_weights``.
- ``pixbal``: ``mean_{x in s} (p2/p1)(x) / (1 + nu P(c_1(x)))^2`` (multi-class labelling paper,
  eq. 4), ``c_1(x)`` the top class at ``x`` and ``P`` the mean softmax over all pixels of the
  data set (eq. 3); pass it as ``class_prior``.

``E = {x in s : cos(f(x_r), f(x)) >= eps}`` is the expansion region of eq. 12; with ``eps = 0``
it is the whole superpixel. A pixel labelled 255 (no label) has ``f(y_x; x) = 0``: nothing
supports its label, so it counts as fully unreliable.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch
from cleanlab.segmentation.rank import get_label_quality_scores

from alc_backend import IGNORE_INDEX
from alc_backend.engine.arrays import Array, as_tensor, like
from alc_backend.engine.pool import (
    check_probs,
    class_argmax,
    column_norms,
    cosines_to_segment_vectors,
    representative_indices,
)
from alc_backend.engine.segments import Segments

AcquisitionMethod = Literal["random", "entropy", "bvsb", "cil", "lcil", "sim", "classbal", "softmin", "abc", "pixbal"]
ACQUISITION_METHODS: tuple[str, ...] = get_args(AcquisitionMethod)
SOFTMIN_TEMPERATURE = 0.1
PIXBAL_NU = 12.0
"""``nu`` of PixBal; the paper uses 12 on PASCAL VOC and 6 on Cityscapes."""

UniformOver = Literal["present", "all"]


def score_superpixels(
    method: str,
    probs: Array,
    labels: Array,
    superpixels: Array,
    *,
    eps: float = 0.0,
    rng: np.random.Generator | None = None,
    representatives: Array | None = None,
    class_counts: Array | None = None,
    class_weights: Array | None = None,
    class_prior: Array | None = None,
    nu: float = PIXBAL_NU,
    segments: Segments | None = None,
    predicted: Array | None = None,
) -> Array:
    """Score every superpixel of one image for a correction query.

    ``probs`` may be a numpy array or a torch tensor; with a tensor, every step runs on its
    device (the other arguments are moved there) and the scores come back as a tensor there,
    so that only ``K`` values need to leave it. ``softmin`` is the exception: cleanlab scores
    the pixels in numpy on the host.

    Args:
        method: one of :data:`ACQUISITION_METHODS`.
        probs: ``(C, H, W)`` softmax probabilities.
        labels: ``(H, W)`` current labels, ``255`` = ignore.
        superpixels: ``(H, W)`` ids ``0..K-1``.
        eps: similarity threshold of the expansion region (eq. 12), in ``[0, 1]``.
        rng: random generator for ``random`` (a fresh unseeded one when ``None``).
        representatives: ``(K, 2)`` representative pixels, when already computed.
        class_counts: ``(C,)`` number of superpixels per dominant predicted class over the whole
            data set, for ``classbal``.
        class_weights: ``(C,)`` ABC weights ``w_c`` (:func:`abc_class_weights` of data-set-wide
            counts), for ``abc``; this image's own label counts are used when ``None``.
        class_prior: ``(C,)`` mean softmax over the data set's pixels, for ``pixbal``; this
            image's own mean when ``None``.
        nu: PixBal's class-balancing strength, ``>= 0``.
        segments: ``Segments.from_map(superpixels)`` on ``probs``' device, when the caller has it.
        predicted: ``(H, W)`` int64 class per pixel (:func:`~alc_backend.engine.pool.class_argmax`
            of ``probs``) on ``probs``' device, when the caller has it.

    Returns:
        ``(K,)`` float64 scores, higher = more useful to ask.
    """
    if method not in ACQUISITION_METHODS:
        raise ValueError(f"unknown acquisition method {method!r}; choose from {', '.join(ACQUISITION_METHODS)}")
    check_probs(probs, superpixels)
    if tuple(labels.shape) != tuple(superpixels.shape):
        raise ValueError(f"labels has shape {tuple(labels.shape)} but superpixels has shape {tuple(superpixels.shape)}")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must lie in [0, 1], got {eps}")
    tensor = as_tensor(probs)
    device = tensor.device
    if segments is None:
        segments = Segments.from_map(superpixels, device)
    if method == "random":
        draws = (rng if rng is not None else np.random.default_rng()).random(segments.k)
        return like(torch.from_numpy(draws).to(device), probs)
    if method == "softmin":
        host_probs = tensor.cpu().numpy()
        host_labels = as_tensor(labels).cpu().numpy()
        host_segments = segments if segments.device.type == "cpu" else Segments.from_map(as_tensor(superpixels).cpu())
        quality = softmin_label_quality(host_probs, host_labels, host_segments)
        return like(torch.from_numpy(1.0 - quality).to(device), probs)
    num_classes = tensor.shape[0]
    flat = tensor.reshape(num_classes, -1)
    flat_predicted = None if predicted is None else as_tensor(predicted, device).reshape(-1)
    if method == "classbal":
        counts = None if class_counts is None else as_tensor(class_counts, device)
        return like(class_balanced_bvsb(flat, segments, counts, flat_predicted), probs)
    if method == "pixbal":
        prior = None if class_prior is None else as_tensor(class_prior, device)
        return like(pixel_balanced_bvsb(flat, segments, prior, nu, flat_predicted), probs)

    norms = column_norms(flat)
    if representatives is None:
        rep_flat = representative_indices(flat, segments, norms, flat_predicted)
    else:
        if tuple(representatives.shape) != (segments.k, 2):
            raise ValueError(f"representatives must have shape ({segments.k}, 2), got {tuple(representatives.shape)}")
        rows_cols = as_tensor(representatives, device).to(torch.int64)
        rep_flat = rows_cols[:, 0] * superpixels.shape[1] + rows_cols[:, 1]
    rep_probs = flat[:, rep_flat].to(torch.float64)  # (C, K)
    if method == "entropy":
        return like(-torch.sum(rep_probs * torch.log(rep_probs.clamp(min=1e-12)), dim=0), probs)
    if method == "bvsb":
        return like(bvsb_ratio(rep_probs), probs)
    label_map = as_tensor(labels, device)
    not_confident = 1.0 - label_confidence(tensor, label_map).reshape(-1)  # (N,)
    if method == "abc":
        if class_weights is None:
            class_weights = abc_class_weights(label_pixel_counts(label_map, num_classes).cpu().numpy())
        if tuple(class_weights.shape) != (num_classes,):
            raise ValueError(f"class_weights must have shape ({num_classes},), got {tuple(class_weights.shape)}")
        not_confident = not_confident * pixel_class_weights(label_map, as_tensor(class_weights, device)).reshape(-1)
    if method == "cil":
        return like(not_confident[rep_flat].to(torch.float64), probs)

    similarity = cosines_to_segment_vectors(flat, norms, flat[:, rep_flat], segments)
    if method == "lcil":
        in_region = (similarity >= eps).to(torch.float64)
        return like(segments.sum(not_confident * in_region) / segments.sum(in_region), probs)
    if eps > 0.0:
        similarity = similarity * (similarity >= eps)
    return like(segments.sum(similarity * not_confident), probs)  # sim, abc


def label_confidence(probs: Array, labels: Array) -> Array:
    """``f(y_x; x)``: the probability the model gives each pixel's current label.

    Args:
        probs: ``(C, H, W)`` softmax probabilities.
        labels: ``(H, W)`` labels, ``255`` = ignore (confidence 0).

    Returns:
        ``(H, W)`` float32, on ``probs``' device.
    """
    tensor = as_tensor(probs)
    num_classes = tensor.shape[0]
    label_map = as_tensor(labels, tensor.device).to(torch.int64)
    valid = label_map != IGNORE_INDEX
    safe = torch.where(valid, label_map, 0)
    if bool(torch.any(safe >= num_classes)):
        raise ValueError(f"labels hold values >= {num_classes} classes other than {IGNORE_INDEX}")
    confidence = torch.gather(tensor, 0, safe[None])[0].to(torch.float32)
    return like(confidence.masked_fill_(~valid, 0.0), probs)


def bvsb_ratio(probs: torch.Tensor) -> torch.Tensor:
    """Best-versus-second-best ratio ``p2 / p1`` along axis 0 of ``(C, ...)`` probabilities."""
    top_two = torch.topk(probs, 2, dim=0).values
    return top_two[1] / top_two[0].clamp(min=1e-12)


def class_balanced_bvsb(
    flat_probs: torch.Tensor,
    segments: Segments,
    class_counts: torch.Tensor | None,
    predicted: torch.Tensor | None = None,
) -> torch.Tensor:
    """``classbal``: mean ``p2/p1`` over each superpixel times ``1 / pi_{D(s)}`` (see module doc).

    Args:
        flat_probs: ``(C, N)`` softmax probabilities of the image's pixels.
        segments: the superpixels, grouped, on ``flat_probs``' device.
        class_counts: ``(C,)`` superpixels per dominant predicted class, data-set wide; this
            image's own counts when ``None``.
        predicted: ``(N,)`` int64 ``class_argmax(flat_probs)``, when the caller has it.

    Returns:
        ``(K,)`` float64 scores.
    """
    num_classes = flat_probs.shape[0]
    if predicted is None:
        predicted = class_argmax(flat_probs)
    dominant = segments.class_counts(predicted, num_classes).argmax(dim=1)
    if class_counts is None:
        class_counts = torch.bincount(dominant, minlength=num_classes)
    if tuple(class_counts.shape) != (num_classes,):
        raise ValueError(f"class_counts must have shape ({num_classes},), got {tuple(class_counts.shape)}")
    class_counts = class_counts.to(torch.float64)
    share = (class_counts + 1.0) / (class_counts.sum() + num_classes)
    return segments.mean(bvsb_ratio(flat_probs)) / share[dominant]


def softmin_label_quality(probs: np.ndarray, labels: np.ndarray, segments: Segments) -> np.ndarray:
    """Per-superpixel label quality in ``[0, 1]``: cleanlab's softmin of per-pixel ``f(y_x; x)``.

    The per-pixel scores come from ``cleanlab.segmentation.rank.get_label_quality_scores``;
    they are aggregated as cleanlab aggregates an image, but over each superpixel:
    ``sum_x q(x) w(x) / sum_x w(x)`` with ``w(x) = exp((1 - q(x)) / T)``, ``T = 0.1``.

    Args:
        probs: ``(C, H, W)`` softmax probabilities.
        labels: ``(H, W)`` labels, 255 = ignore (quality 0).
        segments: the superpixels, grouped, on the CPU.

    Returns:
        ``(K,)`` float64, lower = label more likely wrong.
    """
    valid = labels != IGNORE_INDEX
    safe_labels = np.where(valid, labels, 0).astype(np.int64)
    _, pixel_scores = get_label_quality_scores(
        safe_labels[None], probs[None].astype(np.float64), method="softmin", verbose=False
    )
    quality = np.where(valid, pixel_scores[0], 0.0).ravel()
    weights = np.exp((1.0 - quality) / SOFTMIN_TEMPERATURE)
    return segments.sum(quality * weights) / segments.sum(weights)


def label_pixel_counts(labels: Array, num_classes: int, include: Array | None = None) -> Array:
    """``(C,)`` int64 number of pixels per label in ``(H, W)`` ``labels``; 255 is not counted.

    ``include``, an ``(H, W)`` bool mask, restricts the count to its pixels (ABC counts only the
    superpixels nobody has answered yet).
    """
    label_map = as_tensor(labels).to(torch.int64)
    values = label_map if include is None else label_map[as_tensor(include, label_map.device).to(torch.bool)]
    values = values[values != IGNORE_INDEX]
    if values.numel() and int(values.max()) >= num_classes:
        raise ValueError(f"labels hold values >= {num_classes} classes other than {IGNORE_INDEX}")
    return like(torch.bincount(values, minlength=num_classes), labels)


def abc_class_weights(counts: np.ndarray, uniform_over: UniformOver = "present") -> np.ndarray:
    """ABC's adaptive class weights ``w_c = (min_c' n_c' / n_c) ^ (KL(P || U)^3)`` (A2LC).

    ``n_c`` counts the pixels labelled ``c`` (in superpixels not yet answered); ``P = n / sum n``.
    ``min`` runs over the classes present (``n_c > 0``): a class with no pixel has no rarity to
    weigh. ``U`` is uniform over the classes present (as the A2LC reference code does) or over
    all ``C`` classes. A balanced data set has ``KL = 0`` and every weight 1; the more
    imbalanced, the more the rarest class outweighs the rest. Absent classes get weight 1: no
    pixel carries them, so the weight is never used for a label.

    Args:
        counts: ``(C,)`` non-negative pixel counts per class.
        uniform_over: ``"present"`` or ``"all"``.

    Returns:
        ``(C,)`` float64 weights in ``(0, 1]``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or np.any(counts < 0):
        raise ValueError(f"counts must be a (C,) array of non-negative counts, got {counts}")
    if uniform_over not in get_args(UniformOver):
        raise ValueError(f"uniform_over must be 'present' or 'all', got {uniform_over!r}")
    present = counts > 0
    weights = np.ones_like(counts)
    if not present.any():
        return weights
    share = counts[present] / counts.sum()
    support = int(present.sum()) if uniform_over == "present" else counts.size
    divergence = float(np.sum(share * np.log(share * support)))
    weights[present] = (counts[present].min() / counts[present]) ** (divergence**3)
    return weights


def pixel_class_weights(labels: Array, class_weights: Array) -> Array:
    """``(H, W)`` float64 weight ``w(y_x)`` of each pixel's label; 255 (no label) weighs 1."""
    label_map = as_tensor(labels).to(torch.int64)
    weights = as_tensor(class_weights, label_map.device).to(torch.float64)
    num_classes = weights.shape[0]
    valid = label_map != IGNORE_INDEX
    safe = torch.where(valid, label_map, 0)
    if bool(torch.any(safe >= num_classes)):
        raise ValueError(f"labels hold values >= {num_classes} classes other than {IGNORE_INDEX}")
    return like(torch.where(valid, weights[safe], 1.0), labels)


def pixel_balanced_bvsb(
    flat_probs: torch.Tensor,
    segments: Segments,
    class_prior: torch.Tensor | None,
    nu: float,
    predicted: torch.Tensor | None = None,
) -> torch.Tensor:
    """``pixbal``: mean over each superpixel of ``(p2/p1)(x) / (1 + nu P(c_1(x)))^2`` (see module doc).

    Args:
        flat_probs: ``(C, N)`` softmax probabilities of the image's pixels.
        segments: the superpixels, grouped, on ``flat_probs``' device.
        class_prior: ``(C,)`` mean softmax over the data set; this image's own when ``None``.
        nu: class-balancing strength, ``>= 0``.
        predicted: ``(N,)`` int64 ``class_argmax(flat_probs)`` (``c_1``), when the caller has it.

    Returns:
        ``(K,)`` float64 scores.
    """
    num_classes = flat_probs.shape[0]
    if nu < 0:
        raise ValueError(f"nu must be >= 0, got {nu}")
    if class_prior is None:
        class_prior = flat_probs.to(torch.float64).mean(dim=1)
    if tuple(class_prior.shape) != (num_classes,):
        raise ValueError(f"class_prior must have shape ({num_classes},), got {tuple(class_prior.shape)}")
    if predicted is None:
        predicted = class_argmax(flat_probs)
    balance = (1.0 + nu * class_prior.to(torch.float64)[predicted]) ** -2
    return segments.mean(bvsb_ratio(flat_probs) * balance)
