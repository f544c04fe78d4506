"""Superpixels from SAM's automatic mask generator."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from alc_backend.engine.mask_superpixels import UncoveredFill, superpixels_from_masks
from alc_backend.preannotation.sam_models import SAM_INSTALL_HINT


@dataclass(frozen=True)
class SamGeneratorSettings:
    """Settings of ``segment_anything.SamAutomaticMaskGenerator`` (same names, same meaning).

    Attributes:
        points_per_side: the prompt grid is ``points_per_side`` x ``points_per_side`` points;
            the time per image grows with its square.
        points_per_batch: prompts run through the mask decoder at once (memory, not results).
        pred_iou_thresh: masks whose predicted quality is below this are dropped.
        stability_score_thresh: masks that change more than this under a shifted cut-off are dropped.
        box_nms_thresh: box IoU above which the lower-quality of two masks is dropped.
        crop_n_layers: extra layers of image crops to run the grid on (0: the whole image only).
    """

    points_per_side: int = 16
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0

    def __post_init__(self) -> None:
        if self.points_per_side < 1:
            raise ValueError(f"points_per_side must be >= 1, got {self.points_per_side}")
        if self.points_per_batch < 1:
            raise ValueError(f"points_per_batch must be >= 1, got {self.points_per_batch}")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.crop_n_layers < 0:
            raise ValueError(f"crop_n_layers must be >= 0, got {self.crop_n_layers}")


class SamSuperpixels:
    """Turns an image into a superpixel map with a SAM model.

    The automatic mask generator proposes overlapping object masks; they become one map that
    covers every pixel (:func:`alc_backend.engine.mask_superpixels.superpixels_from_masks`):
    pixels no mask covers are over-segmented with SLIC at the density of ``num_superpixels``
    superpixels per image, and fragments smaller than ``min_area`` join a neighbour.

    Args:
        model: a ``segment_anything`` SAM model (see :func:`~alc_backend.preannotation.sam_models.load_sam`),
            already on its device.
        settings: the mask generator's settings.
        num_superpixels: sets the SLIC density on uncovered pixels (``H*W / num_superpixels`` px each).
        min_area: smallest superpixel in pixels; None: ``H*W / (8 * num_superpixels)``.
        fill: how uncovered pixels are split (``"slic"`` or ``"components"``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        settings: SamGeneratorSettings | None = None,
        *,
        num_superpixels: int = 40,
        min_area: int | None = None,
        fill: UncoveredFill = "slic",
    ) -> None:
        try:
            from segment_anything import SamAutomaticMaskGenerator
        except ImportError as error:
            raise ImportError(f"SAM superpixels need the segment-anything package: {SAM_INSTALL_HINT}") from error
        self.settings = settings or SamGeneratorSettings()
        self.num_superpixels = num_superpixels
        self.min_area = min_area
        self.fill: UncoveredFill = fill
        self._generator = SamAutomaticMaskGenerator(model, min_mask_region_area=0, **asdict(self.settings))

    def masks(self, image: np.ndarray) -> np.ndarray:
        """SAM's object masks of an ``(H, W, 3)`` uint8 RGB image: ``(N, H, W)`` bool, in no particular order."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8, got shape {image.shape} dtype {image.dtype}")
        with torch.inference_mode():
            records = self._generator.generate(image)
        if not records:
            return np.zeros((0, *image.shape[:2]), dtype=bool)
        return np.stack([record["segmentation"].astype(bool) for record in records])

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` int32 superpixel ids ``0..K-1`` of an ``(H, W, 3)`` uint8 RGB image."""
        return self.from_masks(self.masks(image), image)

    def from_masks(self, masks: np.ndarray, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` int32 superpixel ids ``0..K-1`` from ``(N, H, W)`` bool masks of ``image``."""
        area = image.shape[0] * image.shape[1]
        min_area = self.min_area if self.min_area is not None else max(1, area // (8 * self.num_superpixels))
        return superpixels_from_masks(
            masks,
            image,
            min_area=min_area,
            uncovered_segment_area=area / self.num_superpixels,
            fill=self.fill,
        )
