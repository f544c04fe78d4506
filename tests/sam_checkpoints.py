"""SAM checkpoints the tests build and save themselves (no download)."""

from __future__ import annotations

from pathlib import Path

import torch

from alc_backend.preannotation.sam_models import (
    SAM_ARCHITECTURES,
    SamArchitecture,
    TinyViTEncoder,
    ViTEncoder,
    build_sam,
)

TINY_VIT_SAM = SamArchitecture(
    ViTEncoder(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,), window_size=4),
    image_size=128,
    prompt_dim=32,
    decoder_depth=1,
    decoder_mlp_dim=64,
    decoder_heads=2,
    iou_head_hidden_dim=32,
)
"""A ViT SAM of a few hundred kB that sees images at 128 px."""

TINY_MOBILE_SAM = SamArchitecture(
    # TinyViT's last stage must have 320 channels (it skips downsampling only then) and the
    # neck fixes 1024 px input and 256 prompt channels; everything else is made small
    TinyViTEncoder(embed_dims=(8, 16, 24, 320), depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 2)),
    decoder_depth=1,
    decoder_mlp_dim=64,
    decoder_heads=2,
    iou_head_hidden_dim=32,
)
"""A MobileSAM (TinyViT encoder) of about 15 MB."""


def save_random_sam(path: Path, architecture: SamArchitecture | str, seed: int = 0) -> Path:
    """Save the state dict of a randomly initialised SAM model of ``architecture`` to ``path``."""
    if isinstance(architecture, str):
        architecture = SAM_ARCHITECTURES[architecture]
    torch.manual_seed(seed)
    torch.save(build_sam(architecture).state_dict(), path)
    return path
