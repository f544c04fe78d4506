"""Building SAM models and loading their checkpoints.

The architectures of the published checkpoints are described by :class:`SamArchitecture` and
built from the modules of ``segment-anything`` (ViT image encoders) and ``mobilesam-mirror``
(MobileSAM's TinyViT image encoder; its prompt encoder and mask decoder are SAM's). One loader,
:func:`load_sam`, reads every checkpoint: on the CPU first (``weights_only``), checked key by key
and shape by shape against the architecture, then moved to the device.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

SAM_INSTALL_HINT = "pip install 'alc-backend[sam]'"
MOBILESAM_INSTALL_HINT = "pip install 'alc-backend[mobilesam]'"


class SamCheckpointError(ValueError):
    """A SAM checkpoint is missing, unreadable or does not fit the architecture it is loaded into."""


@dataclass(frozen=True)
class ViTEncoder:
    """SAM's ViT image encoder: ``depth`` blocks of ``embed_dim`` channels on 16 px patches."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    window_size: int = 14


@dataclass(frozen=True)
class TinyViTEncoder:
    """MobileSAM's TinyViT image encoder: four stages (a conv stage, then three attention stages).

    TinyViT's neck is fixed at 256 channels and a 64 x 64 embedding, so an architecture with it
    needs ``image_size=1024`` and ``prompt_dim=256``.
    """

    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    window_sizes: tuple[int, int, int, int] = (7, 7, 14, 7)


@dataclass(frozen=True)
class SamArchitecture:
    """Everything needed to build a SAM model before its weights are loaded.

    Attributes:
        encoder: the image encoder.
        image_size: side in px of the square the image encoder sees (longest image side resized to it).
        prompt_dim: channels of the image embedding, the prompt embeddings and the decoder.
        decoder_depth, decoder_mlp_dim, decoder_heads: the mask decoder's two-way transformer.
        iou_head_hidden_dim: width of the mask-quality head.
    """

    encoder: ViTEncoder | TinyViTEncoder
    image_size: int = 1024
    prompt_dim: int = 256
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    iou_head_hidden_dim: int = 256
    pixel_mean: tuple[float, float, float] = field(default=(123.675, 116.28, 103.53))
    pixel_std: tuple[float, float, float] = field(default=(58.395, 57.12, 57.375))


SAM_ARCHITECTURES: dict[str, SamArchitecture] = {
    "vit_b": SamArchitecture(ViTEncoder(768, 12, 12, (2, 5, 8, 11))),
    "vit_l": SamArchitecture(ViTEncoder(1024, 24, 16, (5, 11, 17, 23))),
    "vit_h": SamArchitecture(ViTEncoder(1280, 32, 16, (7, 15, 23, 31))),
    "vit_t": SamArchitecture(TinyViTEncoder((64, 128, 160, 320), (2, 2, 6, 2), (2, 4, 5, 10))),
}
"""The published checkpoints: SAM ViT-B/L/H (``sam_vit_*.pth``) and MobileSAM (``mobile_sam.pt``)."""


def build_sam(architecture: SamArchitecture) -> torch.nn.Module:
    """A ``segment_anything.modeling.Sam`` with random weights, in eval mode."""
    modeling = _segment_anything_modeling()
    patch_size = 16
    embedding_side = architecture.image_size // patch_size
    encoder = architecture.encoder
    if isinstance(encoder, ViTEncoder):
        image_encoder: torch.nn.Module = modeling.ImageEncoderViT(
            depth=encoder.depth,
            embed_dim=encoder.embed_dim,
            img_size=architecture.image_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=encoder.num_heads,
            patch_size=patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=encoder.global_attn_indexes,
            window_size=encoder.window_size,
            out_chans=architecture.prompt_dim,
        )
    else:
        if architecture.image_size != 1024 or architecture.prompt_dim != 256:
            raise ValueError("a TinyViT encoder needs image_size=1024 and prompt_dim=256 (its neck is fixed)")
        image_encoder = _tiny_vit_class()(
            img_size=architecture.image_size,
            in_chans=3,
            num_classes=1000,
            embed_dims=list(encoder.embed_dims),
            depths=list(encoder.depths),
            num_heads=list(encoder.num_heads),
            window_sizes=list(encoder.window_sizes),
            mlp_ratio=4.0,
            drop_rate=0.0,
            drop_path_rate=0.0,
            use_checkpoint=False,
            mbconv_expand_ratio=4.0,
            local_conv_size=3,
            layer_lr_decay=0.8,
        )
    sam = modeling.Sam(
        image_encoder=image_encoder,
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=architecture.prompt_dim,
            image_embedding_size=(embedding_side, embedding_side),
            input_image_size=(architecture.image_size, architecture.image_size),
            mask_in_chans=16,
        ),
        mask_decoder=modeling.MaskDecoder(
            num_multimask_outputs=3,
            transformer=modeling.TwoWayTransformer(
                depth=architecture.decoder_depth,
                embedding_dim=architecture.prompt_dim,
                mlp_dim=architecture.decoder_mlp_dim,
                num_heads=architecture.decoder_heads,
            ),
            transformer_dim=architecture.prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=architecture.iou_head_hidden_dim,
        ),
        pixel_mean=list(architecture.pixel_mean),
        pixel_std=list(architecture.pixel_std),
    )
    return sam.eval()


def load_sam(
    checkpoint: str | Path, architecture: SamArchitecture | str, device: torch.device | str = "cpu"
) -> torch.nn.Module:
    """Build a SAM model and load a checkpoint (a state dict saved with ``torch.save``) into it.

    Args:
        checkpoint: path of the ``.pth``/``.pt`` file.
        architecture: a :class:`SamArchitecture`, or the name of a published one
            (``vit_b``, ``vit_l``, ``vit_h``, ``vit_t``).
        device: where the model runs.

    Returns:
        the model in eval mode on ``device``.

    Raises:
        SamCheckpointError: the file is missing or unreadable, or its tensors do not fit.
    """
    name = architecture if isinstance(architecture, str) else "the given architecture"
    if isinstance(architecture, str):
        if architecture not in SAM_ARCHITECTURES:
            raise SamCheckpointError(
                f"unknown SAM model type {architecture!r}; choose from {', '.join(SAM_ARCHITECTURES)}"
            )
        architecture = SAM_ARCHITECTURES[architecture]
    path = Path(checkpoint)
    if not path.is_file():
        raise SamCheckpointError(f"SAM checkpoint {path} does not exist")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise SamCheckpointError(f"SAM checkpoint {path} is not a readable PyTorch state dict: {error}") from error
    state = _state_dict(loaded, path)
    model = build_sam(architecture)
    _check_fits(state, model.state_dict(), path, name)
    model.load_state_dict(state)
    return model.to(torch.device(device)).eval()


def _state_dict(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint: a plain state dict, or one under a ``"model"`` key."""
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        loaded = loaded["model"]
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise SamCheckpointError(f"SAM checkpoint {path} does not hold a state dict (a mapping of names to tensors)")
    return loaded


def _check_fits(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path, name: str) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{key}: {tuple(state[key].shape)} in the file, {tuple(expected[key].shape)} in the model"
        for key in sorted(set(state) & set(expected))
        if state[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing (first: {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (first: {unexpected[0]})")
    if mismatched:
        problems.append(f"{len(mismatched)} tensors of another shape (first: {mismatched[0]})")
    if problems:
        raise SamCheckpointError(f"SAM checkpoint {path} does not fit {name}: {'; '.join(problems)}")


def _segment_anything_modeling() -> Any:
    try:
        from segment_anything import modeling
    except ImportError as error:
        raise ImportError(f"SAM superpixels need the segment-anything package: {SAM_INSTALL_HINT}") from error
    return modeling


def _tiny_vit_class() -> type[torch.nn.Module]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # mobile_sam imports timm.models.layers
            warnings.simplefilter("ignore", UserWarning)  # and re-registers timm's tiny_vit_* names
            from mobile_sam.modeling.tiny_vit_sam import TinyViT
    except ImportError as error:
        raise ImportError(f"MobileSAM needs the mobilesam-mirror package: {MOBILESAM_INSTALL_HINT}") from error
    return TinyViT
