"""Scoring on the model's device: numpy and torch inputs, and a round that keeps probability maps there."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from alc_backend import IGNORE_INDEX
from alc_backend.engine.acquisition import ACQUISITION_METHODS, label_confidence, score_superpixels
from alc_backend.engine.expansion import expansion_region
from alc_backend.engine.pool import dominant_classes, representative_pixels
from alc_backend.engine.query_cost import predicted_class_shares
from alc_backend.engine.segments import Segments
from alc_backend.rounds.images import VerifiedPixels
from alc_backend.rounds.queries import choose_queries
from alc_backend.rounds.settings import RoundSettings
from alc_backend.training.model import ModelConfig, build_model

NUM_CLASSES = 5
SIZE = 48


def random_inputs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax ``(C, H, W)`` float32 of blocky logits, labels ``(H, W)`` with 255s, 4×4 grid superpixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(scale=2.0, size=(NUM_CLASSES, SIZE // 8, SIZE // 8))
    logits = np.kron(coarse, np.ones((8, 8))) + rng.normal(size=(NUM_CLASSES, SIZE, SIZE))
    probs = np.exp(logits - logits.max(axis=0))
    probs = (probs / probs.sum(axis=0)).astype(np.float32)
    labels = np.where(rng.random((SIZE, SIZE)) < 0.8, probs.argmax(axis=0), rng.integers(0, NUM_CLASSES, (SIZE, SIZE)))
    labels[rng.random((SIZE, SIZE)) < 0.05] = IGNORE_INDEX
    rows, cols = np.mgrid[:SIZE, :SIZE]
    superpixels = (rows // (SIZE // 4)) * 4 + cols // (SIZE // 4)
    return probs, labels.astype(np.uint8), superpixels


def sim_one_superpixel_at_a_time(probs: np.ndarray, labels: np.ndarray, superpixels: np.ndarray) -> np.ndarray:
    """``sim`` (eqs. 4-6 and 9, ``eps = 0``) written out per superpixel in float64, as the paper states it."""
    scores = []
    for superpixel in range(int(superpixels.max()) + 1):
        member = superpixels == superpixel
        vectors = probs[:, member].astype(np.float64)  # (C, n)
        predicted = vectors.argmax(axis=0)
        dominant = np.bincount(predicted, minlength=NUM_CLASSES).argmax()
        core_mean = vectors[:, predicted == dominant].mean(axis=1)
        norms = np.linalg.norm(vectors, axis=0)
        representative = vectors[:, np.argmax(core_mean @ vectors / norms)]
        cosines = representative @ vectors / (np.linalg.norm(representative) * norms)
        own = labels[member].astype(np.int64)
        confidence = np.where(own == IGNORE_INDEX, 0.0, vectors[np.minimum(own, NUM_CLASSES - 1), np.arange(own.size)])
        scores.append(np.sum(cosines * (1.0 - confidence)))
    return np.array(scores)


@pytest.mark.parametrize("method", [m for m in ACQUISITION_METHODS if m != "random"])
def test_numpy_and_torch_inputs_give_the_same_scores(method: str) -> None:
    probs, labels, superpixels = random_inputs(1)
    from_numpy = score_superpixels(method, probs, labels, superpixels, eps=0.3)
    from_torch = score_superpixels(
        method, torch.from_numpy(probs.copy()), torch.from_numpy(labels), torch.from_numpy(superpixels), eps=0.3
    )
    assert isinstance(from_numpy, np.ndarray) and from_numpy.dtype == np.float64 and from_numpy.shape == (16,)
    assert isinstance(from_torch, torch.Tensor) and from_torch.dtype == torch.float64
    assert np.allclose(from_torch.numpy(), from_numpy, rtol=1e-6, atol=0.0)


def test_random_scores_come_back_as_the_input_kind() -> None:
    probs, labels, superpixels = random_inputs(2)
    drawn = score_superpixels("random", torch.from_numpy(probs), labels, superpixels, rng=np.random.default_rng(5))
    assert isinstance(drawn, torch.Tensor)
    assert drawn.tolist() == np.random.default_rng(5).random(16).tolist()


def test_sim_matches_the_formula_written_out_per_superpixel_to_float32_rounding() -> None:
    probs, labels, superpixels = random_inputs(3)
    expected = sim_one_superpixel_at_a_time(probs, labels, superpixels)
    scored = score_superpixels("sim", torch.from_numpy(probs), torch.from_numpy(labels), torch.from_numpy(superpixels))
    assert np.allclose(scored.numpy(), expected, rtol=1e-5)


def test_pool_and_statistics_keep_tensors_and_agree_with_numpy() -> None:
    probs, labels, superpixels = random_inputs(4)
    probs_t, labels_t, superpixels_t = (torch.from_numpy(a) for a in (probs, labels, superpixels))
    representatives = representative_pixels(probs_t, superpixels_t)
    assert isinstance(representatives, torch.Tensor)
    assert representatives.tolist() == representative_pixels(probs, superpixels).tolist()
    assert dominant_classes(probs_t, superpixels_t).tolist() == dominant_classes(probs, superpixels).tolist()
    assert np.array_equal(label_confidence(probs_t, labels_t).numpy(), label_confidence(probs, labels))
    predicted = probs.argmax(axis=0)
    shares = predicted_class_shares(torch.from_numpy(predicted), superpixels_t, NUM_CLASSES)
    assert np.array_equal(shares, predicted_class_shares(predicted, superpixels, NUM_CLASSES))
    row, col = (int(v) for v in representatives[6])
    region = expansion_region(probs_t, superpixels, 6, (row, col), eps=0.9)
    assert np.array_equal(region, expansion_region(probs, superpixels, 6, (row, col), eps=0.9))


def test_segments_reduce_by_hand() -> None:
    superpixels = np.array([[0, 0, 1], [2, 1, 1]])
    segments = Segments.from_map(torch.from_numpy(superpixels))
    values = torch.tensor([1.0, 3.0, 2.0, 5.0, 2.0, 0.5])
    assert segments.sum(values).tolist() == [4.0, 4.5, 5.0]
    assert segments.mean(values).tolist() == [2.0, 1.5, 5.0]
    assert segments.argmax(values).tolist() == [1, 2, 3]  # the tie at 2.0 in superpixel 1 goes to pixel 2
    assert segments.class_counts(torch.tensor([0, 1, 1, 1, 1, 0]), 2).tolist() == [[1, 1], [1, 2], [0, 1]]
    with pytest.raises(ValueError, match=r"ids must be contiguous 0\.\.K-1; ids \[1\] cover no pixel"):
        Segments.from_map(torch.tensor([[0, 2]]))


class InMemoryImages:
    """A :class:`~alc_backend.rounds.images.RoundImages` over arrays held in memory."""

    def __init__(self, count: int) -> None:
        rng = np.random.default_rng(0)
        self.num_classes = NUM_CLASSES
        self._images = {str(i): rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for i in range(count)}
        self._labels = {key: rng.integers(0, NUM_CLASSES, (SIZE, SIZE)).astype(np.uint8) for key in self._images}
        rows, cols = np.mgrid[:SIZE, :SIZE]
        self._superpixels = (rows // 12) * 4 + cols // 12

    def keys(self) -> Sequence[str]:
        return list(self._images)

    def image(self, key: str) -> np.ndarray:
        return self._images[key]

    def superpixels(self, key: str) -> np.ndarray:
        return self._superpixels

    def labels(self, key: str) -> np.ndarray:
        return self._labels[key]

    def asked(self, key: str) -> set[int]:
        return set()

    def verified(self, key: str) -> VerifiedPixels:
        return VerifiedPixels.none((SIZE, SIZE))

    def apply_corrections(self, records: Sequence[object]) -> None:
        raise AssertionError("choosing queries changes no label")

    def mixed(self, key: str) -> None:
        return None


class HostCopies(TorchFunctionMode):
    """Records the size of every tensor handed to the host (``.cpu()``, ``.numpy()``, ``.tolist()``, ``.item()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.tolist, torch.Tensor.item):
            self.sizes.append(args[0].numel())
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("query", ["correction", "multiclass", "auto"])
def test_a_round_hands_only_per_superpixel_values_to_the_host(query: str) -> None:
    images = InMemoryImages(3)
    model = build_model(ModelConfig(NUM_CLASSES, "resnet18", None))
    settings = RoundSettings(method=f"{query}:abc", queries_per_round=5, image_size=SIZE, device="cpu")
    with HostCopies() as copies:
        choice = choose_queries(images, model, settings, round_index=1)
    assert len(choice.queries) == 5
    superpixels = 16
    assert copies.sizes, "nothing reached the host: the test watches the wrong calls"
    assert max(copies.sizes) <= superpixels * NUM_CLASSES < SIZE * SIZE
