"""Tests of alc_backend.training: tiny images, a few iterations, CPU only."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from alc_backend import IGNORE_INDEX
from alc_backend.training import checkpoint as checkpoint_module
from alc_backend.training.augment import augment
from alc_backend.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from alc_backend.training.device import pick_device
from alc_backend.training.encoder_weights import EncoderWeightsError
from alc_backend.training.inference import (
    iter_probs,
    iter_probs_and_features,
    predict_probs,
    predict_probs_and_features,
)
from alc_backend.training.model import ModelConfig, build_model
from alc_backend.training.partial_losses import PartialLossWeights, partial_label_loss
from alc_backend.training.schedule import poly_lr
from alc_backend.training.trainer import (
    MixedRegions,
    TrainConfig,
    TrainStep,
    _AugmentedViews,
    _optimise,
    train_model,
)

CPU = torch.device("cpu")
TINY = TrainConfig(image_size=32, epochs=2, batch_size=4, lr=0.01, scale_range=(0.75, 1.25))


class HalvesDataset:
    """Left half class 0 (reddish), right half class 1 (bluish); widths vary by image."""

    def __init__(self, count: int, ignore_all: bool = False) -> None:
        self.count = count
        self.ignore_all = ignore_all

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(index)
        height, width = 32, 32 + 8 * (index % 3)
        image = np.empty((height, width, 3), np.int64)
        image[:, : width // 2] = (200, 50, 40)
        image[:, width // 2 :] = (40, 60, 200)
        image += rng.integers(-25, 26, image.shape)
        labels = np.zeros((height, width), np.uint8)
        labels[:, width // 2 :] = 1
        if self.ignore_all:
            labels[:] = IGNORE_INDEX
        return np.clip(image, 0, 255).astype(np.uint8), labels


def state_dicts_equal(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


@pytest.fixture(scope="module")
def trained_halves() -> tuple[torch.nn.Module, list[TrainStep]]:
    steps: list[TrainStep] = []
    config = TrainConfig(image_size=32, epochs=16, batch_size=4, lr=0.05, seed=0)
    model = train_model(HalvesDataset(8), ModelConfig(num_classes=2), config, CPU, False, steps.append)
    return model, steps


def test_pick_device() -> None:
    assert pick_device("cpu") == CPU
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("auto") == pick_device()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


def test_augment_shapes_and_padding() -> None:
    image = np.full((10, 20, 3), 255, np.uint8)
    labels = np.ones((10, 20), np.uint8)
    rng = np.random.default_rng(0)
    crop, crop_labels = augment(image, labels, 32, (1.0, 1.0), rng)
    assert crop.shape == (3, 32, 32) and crop.dtype == torch.float32
    assert crop_labels.shape == (32, 32) and crop_labels.dtype == torch.int64
    # resized to 16 x 32: the top half keeps its labels, the bottom half is padding
    assert set(crop_labels[:16].unique().tolist()) == {1}
    assert set(crop_labels[16:].unique().tolist()) == {IGNORE_INDEX}
    assert torch.all(crop[:, 16:] == 0.0)


@pytest.mark.slow
def test_training_learns_a_simple_problem(
    trained_halves: tuple[torch.nn.Module, list[TrainStep]],
) -> None:
    model, steps = trained_halves
    losses = [step.loss for step in steps]
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
    data = HalvesDataset(8)
    for index in range(len(data)):
        image, labels = data[index]
        predicted = predict_probs(model, image, 32, CPU).argmax(axis=0)
        assert (predicted == labels).mean() >= 0.9


def test_all_ignored_labels_return_the_initial_model() -> None:
    steps: list[TrainStep] = []
    config = ModelConfig(num_classes=2)
    model = train_model(HalvesDataset(4, ignore_all=True), config, TINY, CPU, False, steps.append)
    assert steps == []
    torch.manual_seed(TINY.seed)
    assert state_dicts_equal(model, build_model(config))
    image, _ = HalvesDataset(1)[0]
    assert np.isfinite(predict_probs(model, image, 32, CPU)).all()


def test_partly_ignored_labels_give_finite_losses() -> None:
    class PartlyIgnored(HalvesDataset):
        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            image, labels = super().__getitem__(index)
            labels[: 16 + index] = IGNORE_INDEX
            return image, labels

    steps: list[TrainStep] = []
    train_model(PartlyIgnored(4), ModelConfig(num_classes=2), TINY, CPU, True, steps.append)
    assert steps and all(math.isfinite(step.loss) for step in steps)


@pytest.mark.parametrize("count", [1, 5])
def test_no_batch_of_one_sample(count: int) -> None:
    # 1 image and 5 images with batch size 4 would otherwise leave a batch of 1 (BatchNorm fails)
    steps: list[TrainStep] = []
    train_model(HalvesDataset(count), ModelConfig(num_classes=2), TINY, CPU, False, steps.append)
    assert len(steps) == TINY.epochs


def test_labels_beyond_the_classes_are_rejected() -> None:
    with pytest.raises(ValueError, match="label 1 found"):
        train_model(HalvesDataset(2), ModelConfig(num_classes=1), TINY, CPU, progress=False)


@pytest.mark.slow
def test_same_seed_same_weights_other_seed_other_weights() -> None:
    data, config = HalvesDataset(4), ModelConfig(num_classes=2)
    first = train_model(data, config, TINY, CPU, progress=False)
    second = train_model(data, config, TINY, CPU, progress=False)
    other = train_model(data, config, replace(TINY, seed=1), CPU, False)
    assert state_dicts_equal(first, second)
    assert not state_dicts_equal(first, other)


def test_poly_learning_rate() -> None:
    assert poly_lr(0.1, 0, 100, 0.9) == pytest.approx(0.1)
    assert poly_lr(0.1, 50, 100, 0.9) == pytest.approx(0.1 * 0.5**0.9)
    assert poly_lr(0.1, 99, 100, 0.9) == pytest.approx(0.1 * 0.01**0.9)
    with pytest.raises(ValueError):
        poly_lr(0.1, 100, 100, 0.9)


def test_training_applies_the_poly_schedule() -> None:
    # 4 images in batches of 2 for 5 epochs: 10 iterations
    steps: list[TrainStep] = []
    config = TrainConfig(image_size=32, epochs=5, batch_size=2, lr=0.05, poly_power=0.9)
    train_model(HalvesDataset(4), ModelConfig(num_classes=2), config, CPU, False, steps.append)
    assert [step.iteration for step in steps] == list(range(10))
    assert all(step.max_iterations == 10 for step in steps)
    assert steps[0].lr == pytest.approx(0.05)
    assert steps[5].lr == pytest.approx(0.05 * 0.5**0.9)
    assert steps[9].lr == pytest.approx(0.05 * 0.1**0.9)


def test_predict_probs_keeps_the_original_size() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=3))
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    probs = predict_probs(model, image, 40, CPU)
    assert probs.shape == (3, 37, 53) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    assert model.training  # the mode is restored
    streamed = list(iter_probs(model, [("a", image), ("b", image[:20])], 40, CPU))
    assert [key for key, _ in streamed] == ["a", "b"]
    assert np.allclose(streamed[0][1], probs, atol=1e-6)
    assert streamed[1][1].shape == (3, 20, 53)


@pytest.mark.slow
def test_checkpoint_round_trip(tmp_path: Path, trained_halves: tuple[torch.nn.Module, list[TrainStep]]) -> None:
    model, _ = trained_halves
    config = ModelConfig(num_classes=2)
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model, config, extra={"round": "3"})
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata[checkpoint_module.CONFIG_KEY]) == {
        "num_classes": 2,
        "encoder": "resnet18",
        "encoder_weights": None,
    }
    assert json.loads(metadata[checkpoint_module.EXTRA_KEY]) == {"round": "3"}

    loaded, loaded_config, extra = load_checkpoint(path, CPU)
    assert loaded_config == config and extra == {"round": "3"}
    assert state_dicts_equal(model, loaded)
    image, _ = HalvesDataset(1)[0]
    assert np.array_equal(predict_probs(model, image, 32, CPU), predict_probs(loaded, image, 32, CPU))


def test_bad_checkpoints_raise_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors", CPU)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a safetensors file")
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(garbage, CPU)

    model = build_model(ModelConfig(num_classes=2))
    truncated = tmp_path / "truncated.safetensors"
    save_checkpoint(truncated, model, ModelConfig(num_classes=2))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(truncated, CPU)

    bare = tmp_path / "bare.safetensors"
    save_file({"weight": torch.zeros(2)}, bare)
    with pytest.raises(CheckpointError, match="metadata"):
        load_checkpoint(bare, CPU)


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = ModelConfig(num_classes=2)
    path = tmp_path / "model.safetensors"
    torch.manual_seed(0)
    previous = build_model(config)
    save_checkpoint(path, previous, config, extra={"version": "1"})

    def failing_save_file(tensors: object, filename: str, metadata: object = None) -> None:
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_file", failing_save_file)
    torch.manual_seed(1)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, build_model(config), config, extra={"version": "2"})

    assert [entry.name for entry in tmp_path.iterdir()] == ["model.safetensors"]
    loaded, _, extra = load_checkpoint(path, CPU)
    assert extra == {"version": "1"}
    assert state_dicts_equal(previous, loaded)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_encoder_weights_from_a_local_file(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(0)
    source = build_model(ModelConfig(num_classes=2)).encoder.state_dict()
    path = tmp_path / f"encoder{suffix}"
    if suffix == ".safetensors":
        save_file({name: value.contiguous() for name, value in source.items()}, path)
    else:
        torch.save(source, path)
    torch.manual_seed(1)
    model = build_model(ModelConfig(num_classes=2, encoder_weights=str(path)))
    loaded = model.encoder.state_dict()
    assert loaded.keys() == source.keys()
    assert all(torch.equal(loaded[name], source[name]) for name in source)


def test_bad_encoder_weights_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="encoder weights file not found"):
        build_model(ModelConfig(num_classes=2, encoder_weights=str(tmp_path / "none.pt")))

    source = build_model(ModelConfig(num_classes=2)).encoder.state_dict()
    renamed = {f"backbone.{name}": value.contiguous() for name, value in source.items()}
    path = tmp_path / "renamed.safetensors"
    save_file(renamed, path)
    count = len(source)
    with pytest.raises(EncoderWeightsError, match=f"{count} missing.*{count} unexpected"):
        build_model(ModelConfig(num_classes=2, encoder_weights=str(path)))

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a state dict")
    with pytest.raises(EncoderWeightsError, match="not a readable torch state dict"):
        build_model(ModelConfig(num_classes=2, encoder_weights=str(garbage)))


def test_checkpoint_with_a_config_that_does_not_fit_its_weights(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, build_model(ModelConfig(num_classes=2)), ModelConfig(num_classes=3))
    with pytest.raises(CheckpointError, match=r"do not fit the model.*size mismatch"):
        load_checkpoint(path, CPU)


def test_encoder_weights_of_another_encoder_are_rejected(tmp_path: Path) -> None:
    source = build_model(ModelConfig(num_classes=2, encoder="mobilenet_v2")).encoder.state_dict()
    path = tmp_path / "mobilenet.pt"
    torch.save(source, path)
    with pytest.raises(EncoderWeightsError, match="do not fit the encoder"):
        build_model(ModelConfig(num_classes=2, encoder_weights=str(path)))


def test_predict_probs_and_features() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=3))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    other = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    probs, features = predict_probs_and_features(model, image, 40, CPU)
    decoder_channels = model.segmentation_head[0].in_channels
    assert decoder_channels == 256
    assert probs.shape == (3, 37, 53) and probs.dtype == np.float32
    assert features.shape == (decoder_channels, 37, 53) and features.dtype == np.float32
    assert np.isfinite(features).all()
    np.testing.assert_allclose(probs, predict_probs(model, image, 40, CPU), rtol=0, atol=0)
    assert model.training  # the mode is restored
    _, other_features = predict_probs_and_features(model, other, 40, CPU)
    assert not np.allclose(features, other_features)
    streamed = list(iter_probs_and_features(model, [("a", image), ("b", image[:20])], 40, CPU))
    assert [key for key, _, _ in streamed] == ["a", "b"]
    np.testing.assert_array_equal(streamed[0][1], probs)
    np.testing.assert_array_equal(streamed[0][2], features)
    assert streamed[1][1].shape == (3, 20, 53) and streamed[1][2].shape == (decoder_channels, 20, 53)


def test_a_mixed_region_loses_its_labels_and_carries_its_classes_through_augmentation() -> None:
    """A 32×32 sample, columns 0-15 labelled 0 and 16-31 labelled 1; a mixed region over rows 0-7
    ticked {1, 2}. At scale 1 and crop 32 the view is the image, maybe flipped: the region's rows
    lose their labels and hold id 0, the others keep theirs and hold -1."""
    image = np.zeros((32, 32, 3), np.uint8)
    labels = np.zeros((32, 32), np.uint8)
    labels[:, 16:] = 1
    ids = np.full((32, 32), -1, np.int32)
    ids[:8] = 0
    config = TrainConfig(image_size=32, scale_range=(1.0, 1.0))
    views = _AugmentedViews([(image, labels, MixedRegions(ids, ((1, 2),)))], config, num_classes=3)
    _, view_labels, view_ids, region_classes = views[0]
    assert torch.all(view_labels[:8] == IGNORE_INDEX) and torch.all(view_ids[:8] == 0)
    assert torch.all(view_ids[8:] == -1)
    assert sorted(view_labels[8:].unique().tolist()) == [0, 1]
    assert region_classes.tolist() == [[False, True, True]]


def test_a_batch_with_mixed_regions_steps_on_eq_10_over_lambda_ce() -> None:
    """The step's loss is (16·CE + 8·MP + PP) / 16 of the model's logits before the step (the same
    dropout draws: the generator is reseeded before each forward pass)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=3, encoder="resnet18")).train()
    images = torch.randn(2, 3, 32, 32)
    labels = torch.full((2, 32, 32), IGNORE_INDEX, dtype=torch.int64)
    labels[:, 16:] = 0
    regions = torch.full((2, 32, 32), -1, dtype=torch.int64)
    regions[0, :16] = 0
    region_classes = torch.zeros((2, 1, 3), dtype=torch.bool)
    region_classes[0, 0, 1:] = True
    weights = PartialLossWeights()
    torch.manual_seed(1)
    expected = partial_label_loss(copy.deepcopy(model)(images), labels, regions, region_classes, weights) / 16
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    torch.manual_seed(1)
    loss = _optimise(model, optimizer, (images, labels, regions, region_classes), 0.01, 3, weights)
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    # without a mixed region the step is the plain cross-entropy of the labelled pixels
    torch.manual_seed(2)
    expected_plain = torch.nn.functional.cross_entropy(copy.deepcopy(model)(images), labels, ignore_index=IGNORE_INDEX)
    no_regions = torch.full_like(regions, -1)
    torch.manual_seed(2)
    plain = _optimise(model, optimizer, (images, labels, no_regions, region_classes), 0.01, 3, weights)
    assert plain == pytest.approx(expected_plain.item(), rel=1e-5)
