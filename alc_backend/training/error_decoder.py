"""The error-mask decoder: a small CNN that predicts, per pixel, whether the current label is wrong.

After the error-mask decoder (EMD) of Ma et al. 2025, "Integrating Semi-Supervised and
Active Learning for Semantic Segmentation". Its input is any per-pixel map (Cin, H, W),
e.g. the segmentation model's decoder features concatenated with its class probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from alc_backend import IGNORE_INDEX

LABEL_RIGHT = 0
"""Target value of a pixel whose current label is right."""
LABEL_WRONG = 1
"""Target value of a pixel whose current label is wrong."""
MAX_POS_WEIGHT = 100.0
"""Upper bound of the weight of wrong-label pixels in the loss (the lower bound is 1)."""


@dataclass(frozen=True)
class ErrorDecoderConfig:
    """Hyper-parameters of the error-mask decoder and of its training.

    ``hidden_channels`` is the width of both 3x3 convolutions; ``epochs`` the number of
    passes over the training images, one Adam step per image at learning rate ``lr``;
    ``seed`` fixes the initial weights and the order of the images.
    """

    hidden_channels: int = 64
    epochs: int = 30
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden_channels < 1:
            raise ValueError(f"hidden_channels must be >= 1, got {self.hidden_channels}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


class ErrorMaskDecoder(torch.nn.Module):
    """Three convolutions mapping an (N, Cin, H, W) input to (N, 1, H, W) logits of "label wrong".

    Conv 3x3 + BatchNorm + ReLU, conv 3x3 + BatchNorm + ReLU, conv 1x1; sizes are kept.
    """

    def __init__(self, in_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.layers = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, hidden_channels, kernel_size=3, padding=1, bias=False),
            torch.nn.BatchNorm2d(hidden_channels),
            torch.nn.ReLU(),
            torch.nn.Conv2d(hidden_channels, hidden_channels, kernel_size=3, padding=1, bias=False),
            torch.nn.BatchNorm2d(hidden_channels),
            torch.nn.ReLU(),
            torch.nn.Conv2d(hidden_channels, 1, kernel_size=1),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)


def train_error_decoder(
    inputs: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    config: ErrorDecoderConfig,
    device: torch.device,
) -> ErrorMaskDecoder:
    """Train a fresh error-mask decoder and return it on ``device`` in eval mode.

    ``inputs[i]`` is a (Cin, H, W) float32 map and ``targets[i]`` its (H, W) uint8 target:
    1 = label wrong, 0 = label right, 255 = unknown; sizes may differ between images but
    Cin may not. The loss is the binary cross-entropy of the known pixels, wrong-label
    pixels weighted by (right / wrong pixel count over all images), clipped to [1, 100].
    Each epoch visits the images one at a time in an order drawn from a generator seeded
    by ``config.seed``; images without a known pixel are skipped. On the CPU the result is
    the same for the same seed. Raises ``ValueError`` for inputs that do not fit together
    and when no pixel is known.
    """
    pos_weight = _positive_weight(inputs, targets)
    torch.manual_seed(config.seed)
    decoder = ErrorMaskDecoder(inputs[0].shape[0], config.hidden_channels).to(device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    weight = torch.tensor(pos_weight, device=device)
    decoder.train()
    for _ in range(config.epochs):
        for index in torch.randperm(len(inputs), generator=generator).tolist():
            target = torch.from_numpy(targets[index].astype(np.int64)).to(device)
            known = target != IGNORE_INDEX
            if not known.any():
                continue
            batch = torch.from_numpy(inputs[index].astype(np.float32)).unsqueeze(0).to(device)
            logits = decoder(batch)[0, 0]
            loss = F.binary_cross_entropy_with_logits(logits[known], target[known].float(), pos_weight=weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return decoder.eval()


def predict_error_probability(decoder: ErrorMaskDecoder, inputs: np.ndarray, device: torch.device) -> np.ndarray:
    """Return the probability (H, W) float32 in [0, 1] that each pixel's label is wrong.

    ``inputs`` is a (Cin, H, W) float32 map built like the training inputs. ``decoder`` must
    already be on ``device``; it runs in eval mode and its train/eval mode is restored.
    """
    if inputs.ndim != 3 or inputs.shape[0] != decoder.in_channels:
        raise ValueError(f"expected an input of shape ({decoder.in_channels}, H, W), got shape {inputs.shape}")
    batch = torch.from_numpy(inputs.astype(np.float32)).unsqueeze(0).to(device)
    was_training = decoder.training
    decoder.eval()
    try:
        with torch.inference_mode():
            probability = torch.sigmoid(decoder(batch)[0, 0].float())
    finally:
        decoder.train(was_training)
    return probability.cpu().numpy()


def _positive_weight(inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> float:
    """Check that ``inputs`` and ``targets`` fit together; return the loss weight of wrong-label pixels."""
    if len(inputs) != len(targets):
        raise ValueError(f"got {len(inputs)} inputs but {len(targets)} targets")
    right = wrong = 0
    for index, (image_inputs, target) in enumerate(zip(inputs, targets, strict=True)):
        if image_inputs.ndim != 3 or target.ndim != 2 or image_inputs.shape[1:] != target.shape:
            raise ValueError(
                f"input {index} of shape {image_inputs.shape} does not fit its target of shape {target.shape}: "
                "expected (Cin, H, W) and (H, W)"
            )
        if image_inputs.shape[0] != inputs[0].shape[0]:
            raise ValueError(
                f"input {index} has {image_inputs.shape[0]} channels, but input 0 has {inputs[0].shape[0]}"
            )
        image_right = int(np.count_nonzero(target == LABEL_RIGHT))
        image_wrong = int(np.count_nonzero(target == LABEL_WRONG))
        if image_right + image_wrong + np.count_nonzero(target == IGNORE_INDEX) != target.size:
            raise ValueError(
                f"target {index} holds values other than {LABEL_RIGHT} (right), {LABEL_WRONG} (wrong) "
                f"and {IGNORE_INDEX} (unknown): {sorted(set(np.unique(target).tolist()))}"
            )
        right += image_right
        wrong += image_wrong
    if right + wrong == 0:
        raise ValueError(f"no known pixel to train the error decoder on: every target pixel is {IGNORE_INDEX}")
    return float(np.clip(right / max(wrong, 1), 1.0, MAX_POS_WEIGHT))
