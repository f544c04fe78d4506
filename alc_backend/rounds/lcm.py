"""The Label Correction Module in the round: what it proposes to relabel after the round's answers.

``psi`` learns from every answer so far that labelled a superpixel (correction queries and
audits of LCM's own changes), with features that the round's model computes anew, and
proposes a class for each superpixel nobody has been asked about
(:func:`alc_backend.engine.lcm.propose_corrections`). Whether a proposal is written or held
back for an audit is decided by :mod:`alc_backend.rounds.corrections`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from alc_backend.engine.corrections import AutoCorrection, relabel_superpixels
from alc_backend.engine.lcm import AnsweredSuperpixels, propose_corrections
from alc_backend.engine.segments import Segments
from alc_backend.rounds.features import majority_labels, pixel_features, superpixel_means
from alc_backend.rounds.images import Answer, RoundImages
from alc_backend.rounds.settings import RoundSettings
from alc_backend.rounds.training import probabilities_and_features


def lcm_proposals(
    images: RoundImages, model: torch.nn.Module, answers: Sequence[Answer], settings: RoundSettings, round_index: int
) -> tuple[list[AutoCorrection], dict[str, Any]]:
    """LCM's proposed relabels of whole superpixels, decided on the current labels, and notes.

    Args:
        images: the round's images, with every answer so far in their labels.
        model: the round's model (trained before its answers).
        answers: every answer so far; LCM learns from those of one class (correction queries,
            multi-class queries with one class ticked, audits of its own changes).
        settings: LCM's settings and features.
        round_index: the round (recorded, and seeds ``psi``).

    Returns:
        ``(records, notes)``: one record per proposed superpixel, and what LCM saw
        (``answers`` it learnt from, ``candidates``, ``proposed``, or ``abstained`` and why).
    """
    learnt = [
        a
        for a in answers
        if (a.query.kind in ("correction", "multiclass") and not a.mixed) or a.query.corrector == "lcm"
    ]
    if len({a.answer for a in learnt}) < 2:
        return [], {"answers": len(learnt), "abstained": "fewer than two classes answered"}
    keys = list(images.keys())
    kind = settings.lcm_features
    features: dict[str, np.ndarray] = {}
    model_probs: dict[str, np.ndarray] = {}
    current: dict[str, np.ndarray] = {}
    for key, probs, decoder in probabilities_and_features(images, model, keys, settings, kind != "softmax"):
        superpixels = images.superpixels(key)
        segments = Segments.from_map(superpixels)
        features[key] = superpixel_means(pixel_features(kind, probs, decoder), segments)
        model_probs[key] = superpixel_means(probs, segments)
        current[key] = majority_labels(images.labels(key), segments)
    usable = [a for a in learnt if a.query.image in features]
    answered = AnsweredSuperpixels(
        features=np.stack([features[a.query.image][a.query.superpixel] for a in usable]),
        answers=np.array([a.answer for a in usable], dtype=np.int64),
        labels=np.array([a.query.label_before for a in usable], dtype=np.int64),
        model_probs=np.stack([model_probs[a.query.image][a.query.superpixel] for a in usable]),
    )
    asked = {key: images.asked(key) for key in keys}
    candidates = [(key, s) for key in keys for s in range(len(features[key])) if s not in asked[key]]
    notes: dict[str, Any] = {"answers": len(usable), "candidates": len(candidates)}
    if not candidates:
        return [], {**notes, "abstained": "every superpixel has been asked about"}
    proposal = propose_corrections(
        answered,
        np.stack([features[key][s] for key, s in candidates]),
        np.array([current[key][s] for key, s in candidates]),
        np.stack([model_probs[key][s] for key, s in candidates]),
        images.num_classes,
        settings.lcm,
        seed=settings.seed * 1000 + round_index,
    )
    records: list[AutoCorrection] = []
    for key, chosen in proposal.relabels(candidates).items():
        records += relabel_superpixels(
            images.labels(key), images.superpixels(key), chosen, corrector="lcm", round_index=round_index, image=key
        )
    return records, {**notes, "proposed": len(records)}
