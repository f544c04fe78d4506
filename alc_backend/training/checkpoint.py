"""Saving and loading trained models as safetensors files with their ModelConfig."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from alc_backend.atomic import write_atomically
from alc_backend.training.device import pick_device
from alc_backend.training.model import ModelConfig, build_model

CONFIG_KEY = "alc_backend.model_config"
"""Metadata key of the ModelConfig, stored as a JSON object."""
EXTRA_KEY = "alc_backend.extra"
"""Metadata key of the caller's extra strings, stored as a JSON object."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, is not a safetensors file or does not fit its model."""


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    config: ModelConfig,
    extra: dict[str, str] | None = None,
) -> None:
    """Write ``model``'s state dict to the safetensors file ``path``, atomically.

    ``config`` (which must describe ``model``) and ``extra`` go into the file's metadata as
    JSON under ``CONFIG_KEY`` and ``EXTRA_KEY``. An interrupted save leaves any previous file
    at ``path`` as it was.
    """
    tensors = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    metadata = {CONFIG_KEY: json.dumps(asdict(config)), EXTRA_KEY: json.dumps(extra or {})}

    def write(tmp_path: str) -> None:
        save_file(tensors, tmp_path, metadata=metadata)

    write_atomically(path, write)


def load_checkpoint(
    path: str | os.PathLike[str], device: torch.device | None = None
) -> tuple[torch.nn.Module, ModelConfig, dict[str, str]]:
    """Rebuild the model saved in ``path``; return it (in eval mode), its config and extra.

    The model is built from the stored config without reading its ``encoder_weights``
    (the checkpoint holds all weights) and moved to ``device`` (default: ``pick_device()``).
    Raises ``CheckpointError`` for a missing or malformed file, missing metadata, or weights
    that do not match the model strictly.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except SafetensorError as error:
        raise CheckpointError(f"{path} is not a valid safetensors file: {error}") from error
    config = _parse_config(path, metadata)
    extra = _parse_extra(path, metadata)
    model = build_model(replace(config, encoder_weights=None))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        torch_message = " ".join(str(error).split())[:400]
        raise CheckpointError(
            f"the weights in {path} do not fit the model of its config {config}: {torch_message}"
        ) from error
    return model.to(device if device is not None else pick_device()).eval(), config, extra


def _parse_config(path: Path, metadata: dict[str, str]) -> ModelConfig:
    """Read the ModelConfig stored under ``CONFIG_KEY`` in a checkpoint's metadata."""
    if CONFIG_KEY not in metadata:
        raise CheckpointError(f"{path} has no {CONFIG_KEY!r} metadata: not an alc-backend checkpoint")
    try:
        record = json.loads(metadata[CONFIG_KEY])
        if isinstance(record, dict) and "encoder_weights_path" in record:  # written before "imagenet" existed
            record["encoder_weights"] = record.pop("encoder_weights_path")
        return ModelConfig(**record)
    except (json.JSONDecodeError, TypeError) as error:
        raise CheckpointError(f"{path} has an unreadable {CONFIG_KEY!r} metadata entry: {error}") from error


def _parse_extra(path: Path, metadata: dict[str, str]) -> dict[str, str]:
    """Read the extra strings stored under ``EXTRA_KEY`` in a checkpoint's metadata."""
    if EXTRA_KEY not in metadata:
        raise CheckpointError(f"{path} has no {EXTRA_KEY!r} metadata: not an alc-backend checkpoint")
    try:
        extra = json.loads(metadata[EXTRA_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} has an unreadable {EXTRA_KEY!r} metadata entry: {error}") from error
    if not isinstance(extra, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in extra.items()
    ):
        raise CheckpointError(f"{path}: {EXTRA_KEY!r} metadata is not a JSON object of strings")
    return extra
