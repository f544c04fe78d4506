"""Pseudo-label auto-refinement in the round: what PLAR proposes to relabel after the round's answers.

PLAR runs on every image with answered pixels (:func:`alc_backend.engine.plar.refine_labels`),
behind its held-out check on the answered regions put back as they were before their answers
(:func:`alc_backend.engine.plar.held_out_changes`): only classes that pass it are proposed.
Whether a proposal is written or held back for an audit is decided by
:mod:`alc_backend.rounds.corrections`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from alc_backend import IGNORE_INDEX
from alc_backend.engine.acquisition import label_confidence
from alc_backend.engine.corrections import AutoCorrection, record_changes
from alc_backend.engine.plar import HeldOutChanges, held_out_changes, refine_labels
from alc_backend.rounds.features import error_decoder_input, pixel_features
from alc_backend.rounds.images import Answer, RoundImages
from alc_backend.rounds.settings import RoundSettings
from alc_backend.rounds.training import probabilities_and_features
from alc_backend.training.device import pick_device
from alc_backend.training.error_decoder import (
    ErrorDecoderConfig,
    ErrorMaskDecoder,
    predict_error_probability,
    train_error_decoder,
)


def plar_proposals(
    images: RoundImages, model: torch.nn.Module, answers: Sequence[Answer], settings: RoundSettings, round_index: int
) -> tuple[list[AutoCorrection], dict[str, Any]]:
    """PLAR's proposed relabels of doubted pixels, decided on the current labels, and notes.

    Args:
        images: the round's images, with every answer so far in their labels.
        model: the round's model (trained before its answers).
        answers: every answer so far (their regions are put back for the held-out check).
        settings: PLAR's settings and features, and the error decoder switch.
        round_index: the round (recorded, and seeds the error decoder).

    Returns:
        ``(records, notes)``: one record per (superpixel, new class), and the held-out check's
        counts (``held_out_pixels``, ``held_out_right``, ``passed_classes``), or ``abstained``.
    """
    config = settings.plar
    keys = [key for key in images.keys() if images.verified(key).mask.any()]
    if not keys:
        return [], {"abstained": "no answered pixels yet"}
    regions = _answered_regions(images, answers, keys)
    kind = settings.plar_features
    decoder = _error_decoder(images, model, keys, settings, round_index) if settings.error_decoder else None
    with_decoder = kind != "softmax" or decoder is not None
    held_out = HeldOutChanges.zeros(images.num_classes)
    records: list[AutoCorrection] = []
    for key, probs, decoded in probabilities_and_features(images, model, keys, settings, with_decoder):
        labels = images.labels(key)
        verified = images.verified(key)
        features = pixel_features(kind, probs, decoded)
        held_out += held_out_changes(features, probs, labels, regions[key], verified.before, config)
        extra = None
        if decoder is not None:
            inputs = error_decoder_input(probs, decoded, labels)
            extra = predict_error_probability(decoder, inputs, pick_device(settings.device)) >= 0.5
        result = refine_labels(features, probs, labels, verified.mask, config, extra)
        records += record_changes(
            labels,
            result.labels,
            images.superpixels(key),
            label_confidence(probs, result.labels),
            corrector="plar",
            round_index=round_index,
            image=key,
        )
    notes: dict[str, Any] = {
        "held_out_pixels": int(held_out.pixels.sum()),
        "held_out_right": int(held_out.right.sum()),
    }
    if config.min_precision <= 0:
        return records, notes
    passed = held_out.passed(config.min_precision, config.z)
    notes["passed_classes"] = np.flatnonzero(passed).tolist()
    if not passed.any():
        return [], {**notes, "abstained": "no class passed the held-out check"}
    return [record for record in records if passed[record.new_class]], notes


def _answered_regions(images: RoundImages, answers: Sequence[Answer], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Per image, ``(H, W)`` int: the index of the answer whose region holds the pixel, -1 elsewhere."""
    regions = {key: np.full(images.superpixels(key).shape, -1, dtype=np.int64) for key in keys}
    for index, answer in enumerate(answers):
        if answer.query.image in regions:
            ids = regions[answer.query.image]
            ids[answer.query.region_mask(ids.shape)] = index
    return regions


def _error_decoder(
    images: RoundImages, model: torch.nn.Module, keys: Sequence[str], settings: RoundSettings, round_index: int
) -> ErrorMaskDecoder:
    """An error-mask decoder trained on the answered pixels: was the label before the answer wrong?"""
    inputs, targets = [], []
    for key, probs, decoded in probabilities_and_features(images, model, keys, settings, True):
        labels = images.labels(key)
        verified = images.verified(key)
        targets.append(np.where(verified.mask, verified.before != labels, IGNORE_INDEX).astype(np.uint8))
        inputs.append(error_decoder_input(probs, decoded, labels))
    config = ErrorDecoderConfig(seed=settings.seed * 1000 + round_index)
    return train_error_decoder(inputs, targets, config, pick_device(settings.device))
