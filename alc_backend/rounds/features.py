"""What describes a pixel or a superpixel to the automatic correctors, and the error decoder's input."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from alc_backend import IGNORE_INDEX
from alc_backend.engine.acquisition import label_confidence
from alc_backend.engine.segments import Segments

FeatureKind = Literal["softmax", "decoder", "both"]
FEATURE_KINDS: tuple[str, ...] = get_args(FeatureKind)


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
    return segments.mean(flat).astype(np.float32)


def majority_labels(labels: np.ndarray, segments: Segments) -> np.ndarray:
    """``(K,)`` most common label per superpixel (255 counts as a label; ties to the lower value)."""
    return segments.class_counts(labels.ravel(), IGNORE_INDEX + 1).argmax(axis=1)


def error_decoder_input(probs: np.ndarray, decoder: np.ndarray | None, labels: np.ndarray) -> np.ndarray:
    """``(F + C + 1, H, W)`` float32 input of the error-mask decoder: features, probs, ``f(y_x; x)``."""
    parts = [probs, label_confidence(probs, labels)[None]]
    if decoder is not None:
        parts.insert(0, decoder)
    return np.concatenate(parts, axis=0).astype(np.float32)
