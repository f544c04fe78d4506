"""Initial encoder weights from a local file: reading a state dict and loading it into an encoder.

An encoder starts from ``encoder_weights``: :data:`IMAGENET` (see :mod:`alc_backend.training.pretrained`),
the path of a local file read here, or None for random weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

IMAGENET = "imagenet"
"""The ``encoder_weights`` value that asks for an encoder's ImageNet weights."""
RANDOM_WEIGHTS = "none"
"""The round settings' ``encoder_weights`` value for random initialisation (None in a ModelConfig)."""


class EncoderWeightsError(ValueError):
    """Encoder weights cannot be read, do not fit the encoder, or cannot be obtained."""


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a name -> tensor mapping from a safetensors file or a torch state-dict file (without pickle).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        EncoderWeightsError: the file is not a readable mapping of names to tensors.
    """
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(path, device="cpu")
        except SafetensorError as error:
            raise EncoderWeightsError(f"{path} is not a valid safetensors file: {error}") from error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file it cannot unpickle
        raise EncoderWeightsError(f"{path} is not a readable torch state dict: {error}") from error
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise EncoderWeightsError(f"{path} does not hold a mapping of names to tensors")
    return state


def load_encoder_weights(encoder: torch.nn.Module, path: str | os.PathLike[str]) -> None:
    """Copy the weights stored in ``path`` into ``encoder`` (all names must match)."""
    state = read_state_dict(Path(path))
    expected = set(encoder.state_dict())
    # Some smp encoders drop an ImageNet classifier head ("fc.*") from the dict they are
    # given before loading it; pass a copy so that the key check below sees what remained.
    remaining = dict(state)
    try:
        encoder.load_state_dict(remaining)
    except RuntimeError as error:
        missing = sorted(expected - remaining.keys())
        unexpected = sorted(remaining.keys() - expected)
        torch_message = " ".join(str(error).split())[:400]
        raise EncoderWeightsError(
            f"encoder weights in {path} do not fit the encoder: "
            f"{len(missing)} missing key(s) {missing[:5]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:5]}; "
            f"torch said: {torch_message}"
        ) from error
