"""Auto-correctors in the simulation: settings, per-pixel features, verified pixels, statistics.

The algorithms are in :mod:`alc_backend.engine.lcm` and :mod:`alc_backend.engine.plar`; this
module holds what the simulation needs around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from alc_backend import IGNORE_INDEX
from alc_backend.data.dataset import read_label_png, write_label_png
from alc_backend.engine.acquisition import label_confidence
from alc_backend.engine.corrections import AutoCorrection, corrected_pixels
from alc_backend.engine.lcm import LCMConfig
from alc_backend.engine.plar import PLARConfig
from alc_backend.engine.segments import Segments

FeatureKind = Literal["softmax", "decoder", "both"]
FEATURE_KINDS: tuple[str, ...] = get_args(FeatureKind)

NOT_VERIFIED, WAS_RIGHT, WAS_WRONG = 0, 1, 2


@dataclass(frozen=True)
class AutoCorrectionConfig:
    """Settings of the auto-correctors of a simulation.

    ``lcm_features``/``plar_features``: what describes a superpixel (LCM: the mean over it) or
    a pixel (PLAR): the model's softmax, its decoder features, or both concatenated.
    ``error_decoder``: OR PLAR's confidence error map with an error-mask decoder trained on the
    verified pixels each round.
    """

    lcm: LCMConfig = field(default_factory=LCMConfig)
    plar: PLARConfig = field(default_factory=PLARConfig)
    lcm_features: FeatureKind = "both"
    plar_features: FeatureKind = "decoder"
    error_decoder: bool = False

    def __post_init__(self) -> None:
        for name in ("lcm_features", "plar_features"):
            if getattr(self, name) not in FEATURE_KINDS:
                raise ValueError(f"{name} must be one of {', '.join(FEATURE_KINDS)}, got {getattr(self, name)!r}")


def pixel_features(kind: FeatureKind, probs: np.ndarray, decoder: np.ndarray | None) -> np.ndarray:
    """``(D, H, W)`` float32 features of ``kind`` from ``(C, H, W)`` probs and ``(F, H, W)`` decoder features."""
    if kind == "softmax":
        return probs
    if decoder is None:
        raise ValueError(f"{kind!r} features need the decoder's features")
    if kind == "decoder":
        return decoder
    return np.concatenate([decoder, probs], axis=0)


def superpixel_means(features: np.ndarray, segments: Segments) -> np.ndarray:
    """``(K, D)`` float32 mean of ``(D, H, W)`` features over each superpixel."""
    flat = features.reshape(features.shape[0], -1)
    return (segments.sum(flat) / segments.counts[:, None]).astype(np.float32)


def majority_labels(labels: np.ndarray, segments: Segments) -> np.ndarray:
    """``(K,)`` most common label per superpixel (255 counts as a label; ties to the lower value)."""
    return segments.class_counts(labels.ravel(), IGNORE_INDEX + 1).argmax(axis=1)


def error_decoder_input(probs: np.ndarray, decoder: np.ndarray | None, labels: np.ndarray) -> np.ndarray:
    """``(F + C + 1, H, W)`` float32 input of the error-mask decoder: features, probs, ``f(y_x; x)``."""
    parts = [probs, label_confidence(probs, labels)[None]]
    if decoder is not None:
        parts.insert(0, decoder)
    return np.concatenate(parts, axis=0).astype(np.float32)


class VerifiedStore:
    """Pixels a human answered, per image: ``FOLDER/NAME.png``, uint8.

    0 = not verified, 1 = verified and the label before the answer was right, 2 = verified and it
    was wrong (the error-mask decoder's training target).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def read(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        path = self.folder / f"{name}.png"
        return read_label_png(path) if path.exists() else np.zeros(shape, dtype=np.uint8)

    def write(self, name: str, state: np.ndarray) -> None:
        write_label_png(self.folder / f"{name}.png", state)

    def names(self) -> list[str]:
        """Images with at least one verified pixel, sorted."""
        return sorted(path.stem for path in self.folder.glob("*.png")) if self.folder.exists() else []


def mark_verified(state: np.ndarray, before: np.ndarray, region: np.ndarray, answer: int) -> None:
    """Mark ``region`` of a :class:`VerifiedStore` map verified with ``answer``, in place.

    ``before`` are the labels before the answer: each pixel becomes ``WAS_RIGHT`` or ``WAS_WRONG``.
    """
    state[region] = np.where(before[region] == answer, WAS_RIGHT, WAS_WRONG)


@dataclass
class CorrectorStats:
    """What one auto-corrector changed in one round, scored against the ground truth.

    ``notes`` holds what else the corrector reports (PLAR: its held-out check's counts).
    """

    corrector: str
    pixels: int = 0
    superpixels: int = 0
    right_pixels: int = 0
    scored_pixels: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, corrections: list[AutoCorrection], after: np.ndarray, truth: np.ndarray) -> None:
        """Count ``corrections`` of one image, with ``after`` the labels they wrote."""
        changed = corrected_pixels(truth.shape, corrections)
        known = changed & (truth != IGNORE_INDEX)
        self.pixels += int(changed.sum())
        self.superpixels += len({correction.superpixel for correction in corrections})
        self.scored_pixels += int(known.sum())
        self.right_pixels += int((after[known] == truth[known]).sum())

    @property
    def precision(self) -> float | None:
        """Share of changed pixels (with a known true class) that now hold it; None if none changed."""
        return self.right_pixels / self.scored_pixels if self.scored_pixels else None

    def to_json(self) -> dict[str, Any]:
        return {"pixels": self.pixels, "superpixels": self.superpixels, "precision": self.precision, **self.notes}
