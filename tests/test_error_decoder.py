"""Tests of alc_backend.training.error_decoder: tiny maps, CPU only."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

from alc_backend import IGNORE_INDEX
from alc_backend.training.error_decoder import (
    ErrorDecoderConfig,
    ErrorMaskDecoder,
    predict_error_probability,
    train_error_decoder,
)

CPU = torch.device("cpu")
QUICK = ErrorDecoderConfig(hidden_channels=16, epochs=30, lr=1e-2)


def crafted_task(seed: int, count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random (3, H, W) maps of varying sizes; a label is wrong where channel 0 exceeds 0.7 (about 30 %)."""
    rng = np.random.default_rng(seed)
    inputs, targets = [], []
    for index in range(count):
        maps = rng.random((3, 32, 24 + 8 * (index % 2)), dtype=np.float32)
        inputs.append(maps)
        targets.append((maps[0] > 0.7).astype(np.uint8))
    return inputs, targets


def state_dicts_equal(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_learns_an_error_that_depends_on_the_inputs() -> None:
    inputs, targets = crafted_task(0, 8)
    decoder = train_error_decoder(inputs, targets, QUICK, CPU)
    assert not decoder.training
    [new_inputs], [new_targets] = crafted_task(100, 1)
    probability = predict_error_probability(decoder, new_inputs, CPU)
    assert probability.shape == new_targets.shape and probability.dtype == np.float32
    assert probability.min() >= 0.0 and probability.max() <= 1.0
    assert ((probability > 0.5) == new_targets.astype(bool)).mean() > 0.95


def test_unknown_pixels_do_not_influence_training() -> None:
    inputs, targets = crafted_task(0, 3)
    targets[0][:10] = IGNORE_INDEX
    targets[2][:] = IGNORE_INDEX
    first = train_error_decoder(inputs, targets, QUICK, CPU)
    # Another map under the all-unknown target: it must be skipped, as must its pixels' values.
    other_inputs = [inputs[0], inputs[1], np.full_like(inputs[2], 5.0)]
    second = train_error_decoder(other_inputs, targets, QUICK, CPU)
    assert state_dicts_equal(first, second)


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    inputs, targets = crafted_task(0, 2)
    config = ErrorDecoderConfig(hidden_channels=8, epochs=3)
    first = train_error_decoder(inputs, targets, config, CPU)
    second = train_error_decoder(inputs, targets, config, CPU)
    other = train_error_decoder(inputs, targets, ErrorDecoderConfig(hidden_channels=8, epochs=3, seed=1), CPU)
    assert state_dicts_equal(first, second)
    assert not state_dicts_equal(first, other)
    probability = predict_error_probability(first.train(), inputs[0], CPU)
    assert first.training  # the mode is restored
    np.testing.assert_array_equal(probability, predict_error_probability(second, inputs[0], CPU))


def test_architecture_keeps_the_size() -> None:
    decoder = ErrorMaskDecoder(in_channels=5, hidden_channels=4)
    assert decoder(torch.zeros(2, 5, 7, 9)).shape == (2, 1, 7, 9)


MAPS = np.zeros((3, 4, 5), np.float32)
RIGHT = np.zeros((4, 5), np.uint8)


@pytest.mark.parametrize(
    ("inputs", "targets", "message"),
    [
        ([MAPS], [RIGHT, RIGHT], "got 1 inputs but 2 targets"),
        (
            [MAPS],
            [np.zeros((4, 6), np.uint8)],
            "input 0 of shape (3, 4, 5) does not fit its target of shape (4, 6): expected (Cin, H, W) and (H, W)",
        ),
        (
            [MAPS, np.zeros((2, 4, 5), np.float32)],
            [RIGHT, RIGHT],
            "input 1 has 2 channels, but input 0 has 3",
        ),
        (
            [MAPS],
            [np.full((4, 5), 2, np.uint8)],
            "target 0 holds values other than 0 (right), 1 (wrong) and 255 (unknown): [2]",
        ),
        (
            [MAPS, MAPS],
            [np.full((4, 5), IGNORE_INDEX, np.uint8)] * 2,
            "no known pixel to train the error decoder on: every target pixel is 255",
        ),
        ([], [], "no known pixel to train the error decoder on: every target pixel is 255"),
    ],
)
def test_bad_training_data_is_rejected(inputs: list[np.ndarray], targets: list[np.ndarray], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        train_error_decoder(inputs, targets, QUICK, CPU)


def test_bad_prediction_input_is_rejected() -> None:
    decoder = ErrorMaskDecoder(in_channels=3, hidden_channels=4)
    with pytest.raises(ValueError, match=re.escape("expected an input of shape (3, H, W), got shape (2, 4, 5)")):
        predict_error_probability(decoder, np.zeros((2, 4, 5), np.float32), CPU)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hidden_channels": 0}, "hidden_channels must be >= 1, got 0"),
        ({"epochs": -1}, "epochs must be >= 0, got -1"),
        ({"lr": 0.0}, "lr must be > 0, got 0.0"),
        ({"seed": -1}, "seed must be >= 0, got -1"),
    ],
)
def test_bad_config_is_rejected(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ErrorDecoderConfig(**changes)
