"""Label expansion from a mixed region (eq. 13) as the round proposes it, on a hand-made 32×32 image.

The model is a real torch module run through the round's inference, whose decoder features are
fixed 2-vectors, so that every cosine and threshold can be worked out by hand:

- superpixel 0 (columns 0-15) was answered {1, 2}. Its rows 0-7 hold the feature (1, 0), rows
  8-15 (0.8, 0.6), rows 16-23 (0, 1), rows 24-31 (0.6, 0.8). The head's logits are 5·f for
  classes 1 and 2 (class 0: 0), so class 1's prototype is the first (1, 0) pixel and class 2's
  the first (0, 1) pixel. Rows 0-15 take class 1 (cosine 1 or 0.8 to its prototype, against 0 or
  0.6), rows 16-31 class 2; each threshold is the median of 128 ones and 128 values 0.8: 0.9.
- superpixel 1 (columns 16-23) borders it and holds the same four bands: rows 0-7 pass class 1's
  threshold (cosine 1 > 0.9), rows 16-23 class 2's; rows 8-15 and 24-31 (cosine 0.8) pass none.
- superpixel 2 (columns 24-31) holds (1, 0) everywhere but does not border superpixel 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from alc_backend.data.dataset import write_superpixel_png
from alc_backend.data.synthetic import make_synthetic
from alc_backend.rounds.answers import answer_of, localise_mixed_answers
from alc_backend.rounds.corrections import correct_round
from alc_backend.rounds.expand import expand_proposals
from alc_backend.rounds.images import Query, flat_runs
from alc_backend.rounds.settings import RoundSettings
from alc_backend.simulation.state import LabelStore, SimulationImages, SuperpixelSource

SIZE = 32
BANDS = ((1.0, 0.0), (0.8, 0.6), (0.0, 1.0), (0.6, 0.8))
"""The feature of rows 0-7, 8-15, 16-23 and 24-31 in superpixels 0 and 1."""


class FixedFeatures(torch.nn.Module):
    """An encoder that ignores its input and gives the same ``(1, 2, H, W)`` features for every image."""

    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("features", features)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.features.expand(batch.shape[0], -1, -1, -1)


class FixedFeatureNetwork(torch.nn.Module):
    """Encoder, decoder and segmentation head, as the round's inference runs a model."""

    def __init__(self, features: np.ndarray) -> None:
        super().__init__()
        self.encoder = FixedFeatures(torch.from_numpy(features)[None])
        self.decoder = torch.nn.Identity()
        self.segmentation_head = torch.nn.Conv2d(2, 3, kernel_size=1, bias=False)
        with torch.no_grad():
            self.segmentation_head.weight.copy_(torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])[:, :, None, None])


def hand_made_scene() -> tuple[np.ndarray, np.ndarray]:
    """``(2, 32, 32)`` float32 features and ``(32, 32)`` superpixel ids, as the module docstring says."""
    features = np.zeros((2, SIZE, SIZE), dtype=np.float32)
    for band, vector in enumerate(BANDS):
        features[:, band * 8 : band * 8 + 8, :24] = np.array(vector, dtype=np.float32)[:, None, None]
    features[:, :, 24:] = np.array([1.0, 0.0], dtype=np.float32)[:, None, None]
    superpixels = np.zeros((SIZE, SIZE), dtype=np.int32)
    superpixels[:, 16:24] = 1
    superpixels[:, 24:] = 2
    return features, superpixels


def scene(tmp_path: Path) -> tuple[SimulationImages, FixedFeatureNetwork]:
    """The hand-made image, every label 0, and its model."""
    dataset = make_synthetic(tmp_path / "data", 1, 0, size=SIZE, val_fraction=0.0, progress=False)
    name = dataset.train_names[0]
    features, superpixels = hand_made_scene()
    write_superpixel_png(tmp_path / "cache" / f"{name}.png", superpixels)
    LabelStore(tmp_path / "run" / "labels").write(name, np.zeros((SIZE, SIZE), dtype=np.uint8))
    source = SuperpixelSource(dataset, tmp_path / "cache", compute=True)
    return SimulationImages(dataset, source, [name], tmp_path / "run"), FixedFeatureNetwork(features)


def test_a_mixed_region_proposes_its_classes_to_the_similar_pixels_of_its_neighbours(tmp_path: Path) -> None:
    images, model = scene(tmp_path)
    name = images.names[0]
    superpixels = images.superpixels(name)
    settings = RoundSettings(method="multiclass:abc+expand", image_size=SIZE, device="cpu")
    region = superpixels == 0
    query = Query(name, 0, 0, 0, 0, 0, flat_runs(region), kind="multiclass")
    given = [(query, (1, 2))]
    localised = localise_mixed_answers(images, model, settings, given)
    expected_region = np.where(np.arange(SIZE)[:, None] < 16, 1, 2) * np.ones((1, 16), dtype=np.uint8)
    np.testing.assert_array_equal(localised[0][:, :16], expected_region)
    images.answer(given, localised)
    answers = [answer_of(query, (1, 2), 1)]

    records, notes = expand_proposals(images, model, answers, settings, 1)

    assert notes == {"mixed_regions": 1, "expanded_pixels": 128}
    assert [(r.superpixel, r.new_class, r.pixels) for r in records] == [(1, 1, 64), (1, 2, 64)]
    assert all(r.corrector == "expand" and r.round == 1 and r.image == name for r in records)

    # audited by default: the proposals wait for the next round's audits, nothing is written yet
    outcome = correct_round(images, model, answers, settings, 1)
    assert outcome.written == [] and len(outcome.proposals) == 2
    assert outcome.notes["expand"]["held_back"] == 2
    assert not images.labels(name)[:, 16:].any()


def test_expansion_abstains_without_mixed_answers_and_never_reaches_answered_pixels(tmp_path: Path) -> None:
    images, model = scene(tmp_path)
    name = images.names[0]
    superpixels = images.superpixels(name)
    settings = RoundSettings(method="multiclass:abc+expand", image_size=SIZE, device="cpu")
    nothing_mixed = ([], {"abstained": "no answer ticked several classes yet"})
    assert expand_proposals(images, model, [], settings, 1) == nothing_mixed

    mixed = Query(name, 0, 0, 0, 0, 0, flat_runs(superpixels == 0), kind="multiclass")
    neighbour = Query(name, 1, 0, 16, 0, 0, flat_runs(superpixels == 1))
    given = [(mixed, (1, 2)), (neighbour, (0,))]
    images.answer(given, localise_mixed_answers(images, model, settings, given))
    answers = [answer_of(mixed, (1, 2), 1), answer_of(neighbour, (0,), 1)]
    assert expand_proposals(images, model, answers, settings, 1) == ([], {"mixed_regions": 1, "expanded_pixels": 0})
