"""The superpixel sources a data set or a Label Studio project can be prepared with.

``slic`` and ``felzenszwalb`` come from scikit-image; ``sam`` (ViT-B/L/H checkpoints) and
``mobilesam`` (TinyViT) from SAM's automatic mask generator. :func:`superpixel_maker` turns a
:class:`SuperpixelConfig` into a function from an image to its superpixel map; SAM models are
loaded once per process and checkpoint.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from alc_backend.engine.superpixels import SUPERPIXEL_ALGORITHMS, compute_superpixels
from alc_backend.preannotation.sam_models import MOBILESAM_INSTALL_HINT, SAM_ARCHITECTURES, SAM_INSTALL_HINT, load_sam
from alc_backend.preannotation.sam_superpixels import SamGeneratorSettings, SamSuperpixels
from alc_backend.training.device import pick_device

SAM_SOURCES = ("sam", "mobilesam")
SUPERPIXEL_SOURCES: tuple[str, ...] = (*SUPERPIXEL_ALGORITHMS, *SAM_SOURCES)
DEFAULT_SAM_MODEL_TYPES = {"sam": "vit_b", "mobilesam": "vit_t"}


def default_superpixel_source(sam_checkpoint: str, sam_model_type: str) -> str:
    """The source to use when none is named: SAM's masks when a checkpoint is set, SLIC otherwise.

    ``mobilesam`` for a checkpoint of type ``vit_t`` or of no stated type, ``sam`` for
    ``vit_b``/``vit_l``/``vit_h``. SLIC needs no weights and takes milliseconds per image; SAM's
    superpixels follow objects and make each answer worth more, at seconds per image on a CPU
    (benchmarks sections 7, 8 and 10).
    """
    if not sam_checkpoint:
        return "slic"
    return "mobilesam" if sam_model_type in ("", "vit_t") else "sam"


SuperpixelMaker = Callable[[np.ndarray], np.ndarray]
"""``(H, W, 3)`` uint8 RGB image -> ``(H, W)`` int32 superpixel ids ``0..K-1``."""


@dataclass(frozen=True)
class SuperpixelConfig:
    """Which superpixels to compute and how.

    Attributes:
        source: one of :data:`SUPERPIXEL_SOURCES`.
        num_superpixels: SLIC's target per image; for SAM, the SLIC density on the pixels no
            mask covers and the default smallest superpixel (``H*W / (8 * num_superpixels)`` px).
        sam_checkpoint: the SAM/MobileSAM ``.pth``/``.pt`` file (SAM sources only).
        sam_model_type: ``vit_b``, ``vit_l``, ``vit_h`` or ``vit_t``; None: ``vit_b`` for
            ``sam``, ``vit_t`` for ``mobilesam``.
        sam: the automatic mask generator's settings.
        min_area: smallest SAM superpixel in pixels (None: the default above).
        device: torch device for SAM (None or ``"auto"``: CUDA when present).
    """

    source: str = "slic"
    num_superpixels: int = 40
    sam_checkpoint: Path | None = None
    sam_model_type: str | None = None
    sam: SamGeneratorSettings = field(default_factory=SamGeneratorSettings)
    min_area: int | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SUPERPIXEL_SOURCES:
            raise ValueError(f"unknown superpixel source {self.source!r}; choose from {', '.join(SUPERPIXEL_SOURCES)}")
        if self.num_superpixels < 2:
            raise ValueError(f"the number of superpixels must be >= 2, got {self.num_superpixels}")
        if self.min_area is not None and self.min_area < 1:
            raise ValueError(f"the smallest superpixel area must be >= 1 px, got {self.min_area}")
        if self.source in SAM_SOURCES:
            if importlib.util.find_spec("segment_anything") is None:
                raise ValueError(f"{self.source} superpixels need the segment-anything package: {SAM_INSTALL_HINT}")
            if self.model_type == "vit_t" and importlib.util.find_spec("mobile_sam") is None:
                raise ValueError(f"MobileSAM (vit_t) needs the mobilesam-mirror package: {MOBILESAM_INSTALL_HINT}")
            if self.sam_checkpoint is None:
                hint = " (get one with: alc-backend weights mobilesam --out mobile_sam.pt)"
                hint = hint if self.source == "mobilesam" else ""
                raise ValueError(f"superpixels from {self.source} need a checkpoint: set SAM_CHECKPOINT{hint}")
            if not self.sam_checkpoint.is_file():
                raise ValueError(f"SAM checkpoint {self.sam_checkpoint} does not exist")
            if self.model_type not in SAM_ARCHITECTURES:
                raise ValueError(
                    f"unknown SAM model type {self.model_type!r}; choose from {', '.join(SAM_ARCHITECTURES)}"
                )

    @property
    def model_type(self) -> str | None:
        """The SAM model type in use (None for scikit-image sources)."""
        if self.source not in SAM_SOURCES:
            return None
        return self.sam_model_type or DEFAULT_SAM_MODEL_TYPES[self.source]

    def fingerprint(self) -> str:
        """A string that changes whenever the superpixels this config makes could change.

        Cached superpixel maps are reused only under the same fingerprint; the checkpoint
        counts by path, size and modification time.
        """
        described: dict[str, object] = {"source": self.source, "num_superpixels": self.num_superpixels}
        if self.source in SAM_SOURCES:
            assert self.sam_checkpoint is not None
            stat = self.sam_checkpoint.stat()
            described.update(
                checkpoint=str(self.sam_checkpoint.resolve()),
                checkpoint_bytes=stat.st_size,
                checkpoint_mtime_ns=stat.st_mtime_ns,
                model_type=self.model_type,
                sam=dataclasses.asdict(self.sam),
                min_area=self.min_area,
            )
        return json.dumps(described, sort_keys=True)


def superpixel_maker(config: SuperpixelConfig) -> SuperpixelMaker:
    """The function that computes ``config``'s superpixels of an image (loads the SAM model once)."""
    if config.source in SUPERPIXEL_ALGORITHMS:
        return lambda image: compute_superpixels(image, config.source, num_segments=config.num_superpixels)  # type: ignore[arg-type]
    assert config.sam_checkpoint is not None and config.model_type is not None
    checkpoint = config.sam_checkpoint.resolve()
    model = _cached_sam(checkpoint, checkpoint.stat().st_mtime_ns, config.model_type, str(pick_device(config.device)))
    return SamSuperpixels(model, config.sam, num_superpixels=config.num_superpixels, min_area=config.min_area)


@lru_cache(maxsize=2)
def _cached_sam(checkpoint: Path, modified_ns: int, model_type: str, device: str) -> torch.nn.Module:
    """The model of ``checkpoint``, loaded again only when the file changed (``modified_ns``)."""
    return load_sam(checkpoint, model_type, device)
