"""Class probabilities and decoder features of a trained model for whole images, at their original resolution."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from alc_backend.training.trainer import SIZE_MULTIPLE
from alc_backend.training.transforms import image_to_tensor, resize_image, scaled_size


def predict_probs(model: torch.nn.Module, image: np.ndarray, image_size: int, device: torch.device) -> np.ndarray:
    """Return :func:`predict_device_probs`'s probabilities (C, H, W) float32, copied to the host."""
    return predict_device_probs(model, image, image_size, device).cpu().numpy()


def predict_device_probs(
    model: torch.nn.Module, image: np.ndarray, image_size: int, device: torch.device
) -> torch.Tensor:
    """Return the softmax class probabilities (C, H, W) float32 of an (H, W, 3) uint8 image, on ``device``.

    The image is resized so its longer side is ``image_size`` px (aspect ratio kept),
    padded at the bottom and right to a multiple of 16 px with 0 (the ImageNet mean colour
    after normalisation) and run through ``model`` in eval mode; the logits of the padding
    are cut off, the rest is upsampled bilinearly to (H, W) and turned into probabilities.
    ``model`` is a segmentation-models-pytorch model as built by ``build_model`` and must
    already be on ``device``; its train/eval mode is restored afterwards.
    """
    with _eval_mode(model), torch.inference_mode():
        logits, _, size = _run_network(model, image, image_size, device)
        return _probs(logits, size, image.shape)


def predict_probs_and_features(
    model: torch.nn.Module, image: np.ndarray, image_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``predict_probs``'s probabilities (C, H, W) and the decoder features (D, H, W), float32.

    The features are the decoder's output, the map the segmentation head turns into logits
    (D = 256 channels for DeepLabV3+, at a quarter of the network input's resolution). They
    are upsampled to the network input the way the head upsamples its logits (bilinear,
    corners aligned), then cut and resized to (H, W) like the logits. The result takes
    D * H * W * 4 bytes.
    """
    with _eval_mode(model), torch.inference_mode():
        logits, decoded, size = _run_network(model, image, image_size, device)
        probs = _probs(logits, size, image.shape)
        decoded = F.interpolate(decoded, size=logits.shape[-2:], mode="bilinear", align_corners=True)
        features = _crop_and_resize(decoded, size, image.shape[:2]).float()[0]
    return probs.cpu().numpy(), features.cpu().numpy()


def iter_probs(
    model: torch.nn.Module,
    images: Iterable[tuple[str, np.ndarray]],
    image_size: int,
    device: torch.device,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(key, predict_probs(model, image, ...))`` for each ``(key, image)`` in turn.

    Images are read and predicted one at a time: only the probability map (C, H, W)
    float32 of the current image is held, so memory does not grow with the number of images.
    """
    for key, probs in iter_device_probs(model, images, image_size, device):
        yield key, probs.cpu().numpy()


def iter_device_probs(
    model: torch.nn.Module,
    images: Iterable[tuple[str, np.ndarray]],
    image_size: int,
    device: torch.device,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(key, predict_device_probs(model, image, ...))`` for each ``(key, image)`` in turn.

    Like :func:`iter_probs`, but the probability map (C, H, W) stays on ``device``: scoring it
    there means only per-superpixel values have to reach the host.
    """
    for key, image in images:
        yield key, predict_device_probs(model, image, image_size, device)


def iter_probs_and_features(
    model: torch.nn.Module,
    images: Iterable[tuple[str, np.ndarray]],
    image_size: int,
    device: torch.device,
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(key, probs, features)`` of ``predict_probs_and_features`` for each ``(key, image)`` in turn.

    Images are read and predicted one at a time, so memory holds only the current image's
    probabilities (C, H, W) and features (D, H, W).
    """
    for key, image in images:
        probs, features = predict_probs_and_features(model, image, image_size, device)
        yield key, probs, features


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode for the duration of the block, then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _run_network(
    model: torch.nn.Module, image: np.ndarray, image_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Run an (H, W, 3) uint8 image through ``model``'s encoder, decoder and segmentation head.

    Returns the logits (1, C, h, w) and decoder output (1, D, h', w') of the padded network
    input (h, w multiples of 16), and the size (height, width) of the image within it, px.
    This is what ``model(x)`` computes, with the decoder output kept.
    """
    size = scaled_size(image.shape[0], image.shape[1], image_size)
    pixels = resize_image(image_to_tensor(image), size)
    pad_bottom = -size[0] % SIZE_MULTIPLE
    pad_right = -size[1] % SIZE_MULTIPLE
    batch = F.pad(pixels, (0, pad_right, 0, pad_bottom), value=0.0).unsqueeze(0).to(device)
    decoded = model.decoder(model.encoder(batch))
    return model.segmentation_head(decoded), decoded, size


def _probs(logits: torch.Tensor, size: tuple[int, int], image_shape: tuple[int, ...]) -> torch.Tensor:
    """Turn (1, C, h, w) logits of a padded input into probabilities (C, H, W) of the image (``image_shape`` H, W)."""
    return torch.softmax(_crop_and_resize(logits, size, image_shape).float(), dim=1)[0]


def _crop_and_resize(maps: torch.Tensor, size: tuple[int, int], image_shape: tuple[int, ...]) -> torch.Tensor:
    """Cut (1, K, h, w) maps of a padded input to ``size`` and resize them bilinearly to ``image_shape`` (H, W)."""
    cropped = maps[:, :, : size[0], : size[1]]
    return F.interpolate(cropped, size=image_shape[:2], mode="bilinear", align_corners=False)
