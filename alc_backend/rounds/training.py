"""The round's training: a model on the current labels, and its probabilities image by image."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from alc_backend import IGNORE_INDEX
from alc_backend.rounds.images import RoundImages, TrainingImages, VerifiedTrainingImages
from alc_backend.rounds.settings import RoundSettings
from alc_backend.training.device import pick_device
from alc_backend.training.encoder_weights import RANDOM_WEIGHTS
from alc_backend.training.inference import iter_device_probs, iter_probs, iter_probs_and_features
from alc_backend.training.model import ModelConfig, default_encoder
from alc_backend.training.partial_losses import PartialLossWeights
from alc_backend.training.trainer import TrainConfig, train_model
from alc_backend.training.tsf import TSFConfig, train_tsf


def model_config(settings: RoundSettings, num_classes: int) -> ModelConfig:
    """The network the settings describe: the encoder (by default the device's) and its initial weights."""
    return ModelConfig(
        num_classes=num_classes,
        encoder=settings.encoder or default_encoder(pick_device(settings.device)),
        encoder_weights=None if settings.encoder_weights == RANDOM_WEIGHTS else settings.encoder_weights,
    )


def train_round_model(images: RoundImages, settings: RoundSettings, progress: bool = False) -> torch.nn.Module:
    """A model trained from its initial weights on the current labels of every image with a labelled pixel.

    With ``settings.multiclass_loss == "partial"``, regions whose answers ticked several classes
    train it by the partial losses of eq. 10 instead of by their labels. With
    ``settings.trainer == "tsf"`` it is the teacher of Teacher-Student-Friend training, the
    verified pixels labelled and the rest pseudo-labelled, once answers have verified a pixel;
    before that, TSF has no labelled pixel to anchor it (eq. 1 is empty) and the model trains
    supervised on the current labels.

    Every round trains with ``settings.seed``: the initial weights and the order of the
    batches are the same in each round, so what differs between rounds and methods is the labels.
    """
    keys = [key for key in images.keys() if (images.labels(key) != IGNORE_INDEX).any()]
    train_config = TrainConfig(
        image_size=settings.image_size,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=settings.seed,
        partial_weights=PartialLossWeights(settings.partial_ce_weight, settings.partial_mp_weight),
    )
    config = model_config(settings, images.num_classes)
    device = pick_device(settings.device)
    if settings.trainer == "tsf" and any(images.verified(key).mask.any() for key in keys):
        tsf = TSFConfig(ema_decay=settings.tsf_ema_decay, confidence_threshold=settings.tsf_threshold)
        return train_tsf(VerifiedTrainingImages(images, keys), config, train_config, tsf, device, progress)
    data = TrainingImages(images, keys, with_mixed=settings.multiclass_loss == "partial")
    return train_model(data, config, train_config, device, progress)


def probabilities(
    images: RoundImages, model: torch.nn.Module, keys: Sequence[str], settings: RoundSettings
) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, (C, H, W) float32 probabilities)`` for ``keys``, one image at a time."""
    pairs = ((key, images.image(key)) for key in keys)
    return iter_probs(model, pairs, settings.image_size, pick_device(settings.device))


def device_probabilities(
    images: RoundImages, model: torch.nn.Module, keys: Sequence[str], settings: RoundSettings
) -> Iterator[tuple[str, torch.Tensor]]:
    """``(key, (C, H, W) float32 probabilities)`` for ``keys``, one image at a time, on the model's device."""
    pairs = ((key, images.image(key)) for key in keys)
    return iter_device_probs(model, pairs, settings.image_size, pick_device(settings.device))


def probabilities_and_features(
    images: RoundImages, model: torch.nn.Module, keys: Sequence[str], settings: RoundSettings, with_decoder: bool
) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
    """``(key, probabilities (C, H, W), decoder features (F, H, W) or None)`` for ``keys``, one at a time."""
    if not with_decoder:
        for key, probs in probabilities(images, model, keys, settings):
            yield key, probs, None
        return
    pairs = ((key, images.image(key)) for key in keys)
    yield from iter_probs_and_features(model, pairs, settings.image_size, pick_device(settings.device))
