"""What the automatic correctors did in a simulated round, scored against the ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alc_backend import IGNORE_INDEX
from alc_backend.engine.corrections import AutoCorrection, corrected_pixels


@dataclass
class CorrectionScore:
    """Changes of one kind (written, or held back) and how many of their pixels got the true class.

    ``scored_pixels`` counts the changed pixels whose true class is known (not 255).
    """

    pixels: int = 0
    superpixels: int = 0
    right_pixels: int = 0
    scored_pixels: int = 0

    def add(self, records: Sequence[AutoCorrection], truth: np.ndarray) -> None:
        """Count ``records`` of one image against its ``(H, W)`` ground truth."""
        for record in records:
            changed = corrected_pixels(truth.shape, [record])
            known = changed & (truth != IGNORE_INDEX)
            self.pixels += record.pixels
            self.scored_pixels += int(known.sum())
            self.right_pixels += int((truth[known] == record.new_class).sum())
        self.superpixels += len({record.superpixel for record in records})

    @property
    def precision(self) -> float | None:
        """Share of changed pixels (with a known true class) that the change gave their true class."""
        return self.right_pixels / self.scored_pixels if self.scored_pixels else None
