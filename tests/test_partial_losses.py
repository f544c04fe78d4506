"""Tests of alc_backend.training.partial_losses against losses worked out by hand.

Logits are the logs of chosen probabilities (each pixel's row sums to 1), so softmax gives
those probabilities back exactly and every expected value is a short sum of ``math.log`` terms.
"""

from __future__ import annotations

import math

import pytest
import torch

from alc_backend import IGNORE_INDEX
from alc_backend.training.partial_losses import (
    PartialLossParts,
    PartialLossWeights,
    merged_positive_loss,
    partial_label_loss,
    partial_label_loss_with_parts,
    prototypical_pixel_loss,
)

N = -1  # no region
X = IGNORE_INDEX

# One row of three pixels (H = 1, W = 3), three classes; p[pixel] = (p_0, p_1, p_2).
P3 = [
    [0.5, 0.3, 0.2],  # pixel 0
    [0.1, 0.6, 0.3],  # pixel 1
    [0.2, 0.2, 0.6],  # pixel 2
]


def logits_of(images: list[list[list[float]]], requires_grad: bool = False) -> torch.Tensor:
    """Logits (B, C, 1, W) = log of ``images[b][w]``, the class probabilities of pixel w of image b."""
    probs = torch.tensor(images, dtype=torch.float64)  # (B, W, C)
    assert torch.allclose(probs.sum(-1), torch.ones((), dtype=torch.float64), atol=1e-12)
    return probs.log().permute(0, 2, 1).unsqueeze(2).clone().requires_grad_(requires_grad)


def row(values: list[list[int]]) -> torch.Tensor:
    """An int64 (B, 1, W) map from ``values[b][w]``."""
    return torch.tensor(values, dtype=torch.int64).unsqueeze(1)


def class_sets(sets: list[list[set[int]]], n_classes: int = 3) -> torch.Tensor:
    """``region_classes`` (B, R, C) bool from ``sets[b][r]``, the class set of region r of image b."""
    out = torch.zeros(len(sets), len(sets[0]), n_classes, dtype=torch.bool)
    for b, image_sets in enumerate(sets):
        for r, classes in enumerate(image_sets):
            out[b, r, sorted(classes)] = True
    return out


def test_logits_of_gives_back_the_chosen_probabilities() -> None:
    probs = torch.softmax(logits_of([P3]), dim=1)[0, :, 0].T  # (W, C)
    assert torch.allclose(probs, torch.tensor(P3, dtype=torch.float64))


def test_merged_positive_one_region() -> None:
    # region 0 = pixels 0 and 1, Y = {0, 1}; pixel 2 is in no region
    # pixel 0: p_0 + p_1 = 0.5 + 0.3 = 0.8; pixel 1: 0.1 + 0.6 = 0.7
    loss = merged_positive_loss(logits_of([P3]), row([[0, 0, N]]), class_sets([[{0, 1}]]))
    expected = (-math.log(0.8) - math.log(0.7)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_merged_positive_is_a_mean_over_regions_not_over_pixels() -> None:
    # region 0 = pixels 0, 1, 2 with Y = {0, 2}: 0.5 + 0.2 = 0.7, 0.1 + 0.3 = 0.4, 0.2 + 0.6 = 0.8
    # region 1 = pixel 3 with Y = {1}: 0.1
    probs = [[*P3, [0.45, 0.1, 0.45]]]
    loss = merged_positive_loss(logits_of(probs), row([[0, 0, 0, 1]]), class_sets([[{0, 2}, {1}]]))
    region_0 = (-math.log(0.7) - math.log(0.4) - math.log(0.8)) / 3
    region_1 = -math.log(0.1)
    region_mean = (region_0 + region_1) / 2
    pixel_mean = (3 * region_0 + region_1) / 4
    assert abs(region_mean - pixel_mean) > 0.4  # 1.40 vs 0.95
    assert loss.item() == pytest.approx(region_mean, rel=1e-12)


def test_regions_without_pixels_do_not_count() -> None:
    # R = 3 slots: slot 1 (classes {2}) lost all its pixels to cropping, slot 2 is unused (empty set)
    # only region 0 = pixels 0 and 1 with Y = {0, 1} counts: MP as in the one-region test,
    # PP: best p_0 = 0.5 (pixel 0), best p_1 = 0.6 (pixel 1)
    logits, regions = logits_of([P3]), row([[0, 0, N]])
    sets = class_sets([[{0, 1}, {2}, set()]])
    assert merged_positive_loss(logits, regions, sets).item() == pytest.approx(
        (-math.log(0.8) - math.log(0.7)) / 2, rel=1e-12
    )
    assert prototypical_pixel_loss(logits, regions, sets).item() == pytest.approx(
        (-math.log(0.5) - math.log(0.6)) / 2, rel=1e-12
    )


def test_prototypical_pixel_takes_the_most_confident_pixel_per_class() -> None:
    # region 0 = all three pixels, Y = {0, 2}
    # class 0: p_0 = 0.5, 0.1, 0.2 -> pixel 0 (0.5); class 2: p_2 = 0.2, 0.3, 0.6 -> pixel 2 (0.6)
    # class 1 is not in Y and is ignored (its best would be 0.6 at pixel 1)
    loss = prototypical_pixel_loss(logits_of([P3]), row([[0, 0, 0]]), class_sets([[{0, 2}]]))
    assert loss.item() == pytest.approx((-math.log(0.5) - math.log(0.6)) / 2, rel=1e-12)


def test_prototypical_pixel_is_a_mean_over_classes_then_regions() -> None:
    # region 0 = pixels 0, 1 with Y = {0, 1, 2}: best p_0 = 0.5, p_1 = 0.6, p_2 = 0.3
    # region 1 = pixel 2 with Y = {2}: p_2 = 0.6
    loss = prototypical_pixel_loss(logits_of([P3]), row([[0, 0, 1]]), class_sets([[{0, 1, 2}, {2}]]))
    region_0 = (-math.log(0.5) - math.log(0.6) - math.log(0.3)) / 3
    region_1 = -math.log(0.6)
    assert loss.item() == pytest.approx((region_0 + region_1) / 2, rel=1e-12)


def test_regions_are_per_image() -> None:
    # image 0: region 0 = pixels 0, 1 with Y = {0, 1}
    # image 1: region 0 = pixels 0, 1 with Y = {2}, region 1 = pixel 2 with Y = {0, 1}
    image_0 = P3
    image_1 = [[0.2, 0.2, 0.6], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]]
    logits = logits_of([image_0, image_1])
    regions = row([[0, 0, N], [0, 0, 1]])
    sets = class_sets([[{0, 1}, set()], [{2}, {0, 1}]])
    # MP: image 0 region 0: (-log 0.8 - log 0.7) / 2; image 1 region 0: (-log 0.6 - log 0.1) / 2;
    #     image 1 region 1: -log(0.3 + 0.3)
    mp = ((-math.log(0.8) - math.log(0.7)) / 2 + (-math.log(0.6) - math.log(0.1)) / 2 - math.log(0.6)) / 3
    # PP: image 0 region 0: best p_0 = 0.5, best p_1 = 0.6; image 1 region 0: best p_2 = 0.6;
    #     image 1 region 1: p_0 = 0.3, p_1 = 0.3
    pp = ((-math.log(0.5) - math.log(0.6)) / 2 - math.log(0.6) + (-math.log(0.3) - math.log(0.3)) / 2) / 3
    assert merged_positive_loss(logits, regions, sets).item() == pytest.approx(mp, rel=1e-12)
    assert prototypical_pixel_loss(logits, regions, sets).item() == pytest.approx(pp, rel=1e-12)


def test_no_region_gives_zero_and_backward_works() -> None:
    logits = logits_of([P3, P3], requires_grad=True)
    regions = row([[N, N, N], [N, N, N]])
    for sets in (class_sets([[{0}], [{1, 2}]]), torch.zeros(2, 0, 3, dtype=torch.bool)):
        mp = merged_positive_loss(logits, regions, sets)
        pp = prototypical_pixel_loss(logits, regions, sets)
        assert mp.item() == 0.0 and pp.item() == 0.0
        total = partial_label_loss(logits, row([[X, X, X], [X, X, X]]), regions, sets)
        assert total.item() == 0.0
        assert total.requires_grad
        logits.grad = None
        total.backward()
        assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))


def test_merged_positive_is_stable_for_large_logits() -> None:
    # pixel logits (1000, 1000, -1000): p_0 = p_1 = 0.5, p_2 = exp(-2000) / 2 (underflows as a probability)
    logits = torch.tensor([1000.0, 1000.0, -1000.0]).reshape(1, 3, 1, 1)
    regions = row([[0]])
    assert merged_positive_loss(logits, regions, class_sets([[{0, 1}]])).item() == pytest.approx(0.0, abs=1e-6)
    # -log p_2 = 2000 + log 2
    pp = prototypical_pixel_loss(logits, regions, class_sets([[{2}]])).item()
    assert pp == pytest.approx(2000 + math.log(2), rel=1e-6)


def weighted_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float, float, float]:
    # labels: pixel 0 -> class 0 (p = 0.5), pixel 2 -> class 2 (p = 0.6); pixel 1 unlabelled
    # region 0 = pixel 1 with Y = {1, 2}: MP = -log(0.6 + 0.3); PP = (-log 0.6 - log 0.3) / 2
    ce = (-math.log(0.5) - math.log(0.6)) / 2
    mp = -math.log(0.9)
    pp = (-math.log(0.6) - math.log(0.3)) / 2
    labels = row([[0, X, 2]])
    return logits_of([P3], requires_grad=True), labels, row([[N, 0, N]]), class_sets([[{1, 2}]]), ce, mp, pp


def test_weighted_total() -> None:
    logits, labels, regions, sets, ce, mp, pp = weighted_case()
    total = partial_label_loss(logits, labels, regions, sets, PartialLossWeights(ce=2.0, mp=3.0))
    assert total.item() == pytest.approx(2 * ce + 3 * mp + pp, rel=1e-12)
    default = partial_label_loss(logits, labels, regions, sets)
    assert default.item() == pytest.approx(16 * ce + 8 * mp + pp, rel=1e-12)
    only_pp = partial_label_loss(logits, labels, regions, sets, PartialLossWeights(ce=0.0, mp=0.0))
    assert only_pp.item() == pytest.approx(pp, rel=1e-12)


def test_parts_for_logging() -> None:
    logits, labels, regions, sets, ce, mp, pp = weighted_case()
    total, parts = partial_label_loss_with_parts(logits, labels, regions, sets, PartialLossWeights(ce=2.0, mp=3.0))
    expected_total = 2 * ce + 3 * mp + pp
    assert total.item() == pytest.approx(expected_total, rel=1e-12)
    assert parts == PartialLossParts(
        ce=pytest.approx(ce, rel=1e-12),
        mp=pytest.approx(mp, rel=1e-12),
        pp=pytest.approx(pp, rel=1e-12),
        total=pytest.approx(expected_total, rel=1e-12),
        labelled_pixels=2,
        regions=1,
    )


def test_no_labelled_pixel_gives_zero_cross_entropy() -> None:
    logits, _, regions, sets, _, mp, pp = weighted_case()
    total, parts = partial_label_loss_with_parts(logits, row([[X, X, X]]), regions, sets)
    assert parts.ce == 0.0 and parts.labelled_pixels == 0
    assert total.item() == pytest.approx(8 * mp + pp, rel=1e-12)


def test_prototypical_pixel_gradient_reaches_only_the_prototypical_pixels() -> None:
    # region 0 = pixels 0, 1, 2 with Y = {0, 2}: prototypes are pixel 0 (class 0) and pixel 2 (class 2)
    logits = logits_of([[*P3, [0.4, 0.4, 0.2]]], requires_grad=True)  # pixel 3 in no region
    prototypical_pixel_loss(logits, row([[0, 0, 0, N]]), class_sets([[{0, 2}]])).backward()
    assert logits.grad is not None
    per_pixel = logits.grad[0, :, 0].abs().sum(dim=0)  # (W,)
    assert per_pixel[0] > 0 and per_pixel[2] > 0
    assert per_pixel[1] == 0 and per_pixel[3] == 0
    # d/dz of -log softmax(z)_c / 2 (mean over the 2 classes) = (p - onehot(c)) / 2
    expected_pixel_0 = (torch.tensor(P3[0], dtype=torch.float64) - torch.tensor([1.0, 0, 0], dtype=torch.float64)) / 2
    assert torch.allclose(logits.grad[0, :, 0, 0], expected_pixel_0)


def test_merged_positive_gradient_reaches_every_region_pixel_only() -> None:
    logits = logits_of([P3], requires_grad=True)
    merged_positive_loss(logits, row([[0, 0, N]]), class_sets([[{0, 1}]])).backward()
    assert logits.grad is not None
    per_pixel = logits.grad[0, :, 0].abs().sum(dim=0)
    assert per_pixel[0] > 0 and per_pixel[1] > 0 and per_pixel[2] == 0
    # d/dz_k of -log Σ_{c∈Y} p_c = p_k - [k∈Y] p_k / Σ_{c∈Y} p_c, halved by the mean over 2 pixels
    p = torch.tensor(P3[0], dtype=torch.float64)
    in_set = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    expected = (p - in_set * p / 0.8) / 2
    assert torch.allclose(logits.grad[0, :, 0, 0], expected)


def test_total_backward_from_all_terms() -> None:
    logits, labels, regions, sets, *_ = weighted_case()
    partial_label_loss(logits, labels, regions, sets).backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[0, :, 0].abs().sum(dim=0) > 0).all()  # pixels 0, 2 by CE, pixel 1 by MP and PP


@pytest.mark.parametrize("ce, mp", [(-1.0, 8.0), (16.0, -0.5), (math.nan, 8.0), (16.0, math.inf)])
def test_weights_are_validated(ce: float, mp: float) -> None:
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        PartialLossWeights(ce=ce, mp=mp)


def test_default_weights_are_the_papers() -> None:
    assert PartialLossWeights() == PartialLossWeights(ce=16.0, mp=8.0)


def test_shape_and_type_validation() -> None:
    logits, labels, regions, sets = logits_of([P3]), row([[0, X, 2]]), row([[0, 0, N]]), class_sets([[{0, 1}]])
    with pytest.raises(ValueError, match=r"logits must have shape \(B, C, H, W\)"):
        merged_positive_loss(logits[0], regions, sets)
    with pytest.raises(ValueError, match="logits must be a floating-point tensor"):
        merged_positive_loss(logits.long(), regions, sets)
    with pytest.raises(ValueError, match=r"regions must have shape \(B, H, W\) = \(1, 1, 3\)"):
        prototypical_pixel_loss(logits, row([[0, 0]]), sets)
    with pytest.raises(ValueError, match="regions must be int64"):
        prototypical_pixel_loss(logits, regions.int(), sets)
    with pytest.raises(ValueError, match=r"labels must have shape \(B, H, W\)"):
        partial_label_loss(logits, row([[0, X, 2, 1]]), regions, sets)
    with pytest.raises(ValueError, match=r"region_classes must have shape \(B, R, C\) with B = 1 and C = 3"):
        merged_positive_loss(logits, regions, class_sets([[{0, 1}]], n_classes=4))
    with pytest.raises(ValueError, match=r"region_classes must have shape \(B, R, C\)"):
        merged_positive_loss(logits, regions, sets[0])
    with pytest.raises(ValueError, match="region_classes must be bool"):
        merged_positive_loss(logits, regions, sets.float())
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) or IGNORE_INDEX \(255\), found 3"):
        partial_label_loss(logits, row([[0, 3, 2]]), regions, sets)
    with pytest.raises(ValueError, match="found -2"):
        partial_label_loss(logits, row([[0, -2, 2]]), regions, sets)
    assert partial_label_loss(logits, labels, regions, sets).isfinite()  # the valid inputs pass


def test_region_index_validation() -> None:
    logits, sets = logits_of([P3]), class_sets([[{0, 1}, {2}]])  # R = 2
    with pytest.raises(ValueError, match="region index 2 is out of range: region_classes has R = 2"):
        merged_positive_loss(logits, row([[0, 2, N]]), sets)
    with pytest.raises(ValueError, match="region index 0 is out of range: region_classes has R = 0"):
        prototypical_pixel_loss(logits, row([[0, N, N]]), torch.zeros(1, 0, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"regions must be -1 \(no region\) or a region index >= 0, found -3"):
        merged_positive_loss(logits, row([[0, -3, N]]), sets)


def test_region_with_pixels_and_empty_class_set_is_rejected() -> None:
    logits = logits_of([P3, P3])
    sets = class_sets([[{0, 1}, {2}], [{0}, set()]])
    for loss in (merged_positive_loss, prototypical_pixel_loss):
        with pytest.raises(ValueError, match=r"region 1 of image 1 has pixels but an empty class set \(1 such"):
            loss(logits, row([[0, 1, N], [0, 1, 1]]), sets)
    # the same empty slot without pixels is fine (an unused slot)
    assert merged_positive_loss(logits, row([[0, 1, N], [0, 0, N]]), sets).isfinite()
