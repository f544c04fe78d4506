"""Label expansion from mixed regions in the round: what eq. 13 of the multi-class paper proposes.

A region answered with several classes gives each ticked class a prototype and a threshold
(:func:`alc_backend.engine.multiclass.localise_region`, eqs. 8, 11 and 12, with the round's
model). :func:`expand_proposals` offers the pixels of the region's neighbouring superpixels that
no answer labelled the ticked class whose prototype they resemble past its threshold
(:func:`alc_backend.engine.multiclass.expand_region`). The paper trains on these labels; here
they would change the data, so they are proposals like LCM's and PLAR's: whether one is written
or held back for an audit is decided by :mod:`alc_backend.rounds.corrections`, and without
audits that trust its class nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from alc_backend import IGNORE_INDEX
from alc_backend.engine.acquisition import label_confidence
from alc_backend.engine.corrections import AutoCorrection, record_changes
from alc_backend.engine.multiclass import expand_region, localise_region, neighbouring_superpixels
from alc_backend.rounds.images import Answer, RoundImages
from alc_backend.rounds.settings import RoundSettings
from alc_backend.rounds.training import probabilities_and_features


def expand_proposals(
    images: RoundImages, model: torch.nn.Module, answers: Sequence[Answer], settings: RoundSettings, round_index: int
) -> tuple[list[AutoCorrection], dict[str, Any]]:
    """Relabels proposed by expanding every mixed answer so far into its unanswered neighbours.

    Args:
        images: the round's images, with every answer so far in their labels.
        model: the round's model; its probabilities find the prototypes, its decoder features
            compare the pixels.
        answers: every answer so far; those that ticked several classes are expanded.
        settings: the inference settings.
        round_index: the round (recorded).

    Returns:
        ``(records, notes)``: one record per (superpixel, new class) where an expanded label
        differs from the current one, and ``mixed_regions`` and ``expanded_pixels`` (pixels
        given a label, changed or not), or ``abstained`` when no answer was mixed.
    """
    mixed: dict[str, list[Answer]] = {}
    for answer in answers:
        if answer.mixed:
            mixed.setdefault(answer.query.image, []).append(answer)
    if not mixed:
        return [], {"abstained": "no answer ticked several classes yet"}
    records: list[AutoCorrection] = []
    expanded_pixels = 0
    for key, probs, features in probabilities_and_features(images, model, list(mixed), settings, True):
        assert features is not None
        labels = images.labels(key)
        superpixels = images.superpixels(key)
        answered = images.verified(key).mask
        proposed = labels.copy()
        for answer in mixed[key]:
            region = answer.query.region_mask(labels.shape)
            localised = localise_region(features, probs, region, answer.classes)
            neighbours = np.isin(superpixels, neighbouring_superpixels(superpixels, answer.query.superpixel))
            expanded = expand_region(features, localised, neighbours & ~answered & ~region)
            reached = expanded != IGNORE_INDEX
            expanded_pixels += int(reached.sum())
            proposed[reached] = expanded[reached]
        records += record_changes(
            labels,
            proposed,
            superpixels,
            label_confidence(probs, proposed),
            corrector="expand",
            round_index=round_index,
            image=key,
        )
    notes = {"mixed_regions": sum(len(items) for items in mixed.values()), "expanded_pixels": expanded_pixels}
    return records, notes
