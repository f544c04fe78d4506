"""The end of a round: the audited proposals of the last round are written, the correctors propose anew.

After round ``r``'s answers are in the images' labels, :func:`correct_round`, for each of the
method's correctors in the order the method names them (LCM, PLAR, the expansion of mixed regions):

1. adds up this round's audits of the corrector's proposals of round ``r - 1`` in an
   :class:`~alc_backend.rounds.audits.AuditLedger`;
2. writes those proposals whose class the audits trust and that still apply (their pixels
   hold the labels they were decided on, none was answered since), and drops the rest;
3. proposes anew on the labels as they now are, and holds every proposal back, except those to
   a class the audits refuted, which are dropped.

Then it draws round ``r + 1``'s audits from the new proposals. What is written is exactly the
population the audits sampled, so their share right estimates the precision of what is
written, and nothing unaudited is ever written: a corrector whose audits do not reach the bar
writes nothing. With ``audit.share = 0`` there are no audits, and every proposal is written at
once, as the papers do: that is the unsafe setting, kept for comparison.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from alc_backend.engine.corrections import AutoCorrection, still_applies
from alc_backend.rounds.audits import AuditLedger, Proposal, choose_audits
from alc_backend.rounds.expand import expand_proposals
from alc_backend.rounds.images import Answer, RoundImages
from alc_backend.rounds.lcm import lcm_proposals
from alc_backend.rounds.plar import plar_proposals
from alc_backend.rounds.settings import RoundSettings

Proposer = Callable[
    [RoundImages, torch.nn.Module, Sequence[Answer], RoundSettings, int], tuple[list[AutoCorrection], dict[str, Any]]
]


@dataclass(frozen=True)
class Corrector:
    """What proposes a corrector's changes, and whether they relabel whole superpixels (then an
    audit asks about the superpixel; else about the pixels changed)."""

    propose: Proposer
    relabels_superpixels: bool


CORRECTORS: dict[str, Corrector] = {
    "lcm": Corrector(lcm_proposals, True),
    "plar": Corrector(plar_proposals, False),
    "expand": Corrector(expand_proposals, False),
}
"""Corrector name -> how it proposes (see :mod:`alc_backend.rounds.methods`)."""


@dataclass(frozen=True)
class RoundCorrections:
    """What the end of a round did.

    ``written``: the changes now in the labels; ``proposals``: this round's proposals, held
    back until the next round's audits; ``audits``: the proposals the next round asks about;
    ``notes``: per corrector, what it saw and decided (JSON-ready).
    """

    written: list[AutoCorrection]
    proposals: list[Proposal]
    audits: list[Proposal]
    notes: dict[str, dict[str, Any]]


def correct_round(
    images: RoundImages,
    model: torch.nn.Module,
    answers: Sequence[Answer],
    settings: RoundSettings,
    round_index: int,
    pending: Sequence[Proposal] = (),
    class_names: Sequence[str] | None = None,
) -> RoundCorrections:
    """End round ``round_index``: write what its audits trust, propose anew, draw the next audits.

    Args:
        images: the round's images, with every answer so far in their labels.
        model: the round's model (trained before its answers).
        answers: every answer so far, in the order the queries were made.
        settings: the method (its correctors), their settings and the audits'.
        round_index: the round that ends.
        pending: the proposals of the round before, which this round's audits sampled.
        class_names: names for the notes (default: the class indices as text).

    Returns:
        The :class:`RoundCorrections`. A corrector that cannot decide abstains and says why in
        its notes; it never stops the round.
    """
    names = list(class_names) if class_names is not None else [str(c) for c in range(images.num_classes)]
    ledger = AuditLedger.from_answers([a for a in answers if a.round == round_index], images.num_classes)
    audited = settings.audit.share > 0
    written: list[AutoCorrection] = []
    proposals: dict[str, list[Proposal]] = {}
    refuted: dict[str, np.ndarray] = {}
    notes: dict[str, dict[str, Any]] = {}
    for corrector in settings.correctors:
        trusted = ledger.trusted(corrector, settings.audit)
        refuted[corrector] = ledger.refuted(corrector, settings.audit)
        held = [p for p in pending if p.record.corrector == corrector and trusted[p.record.new_class]]
        to_write = [dataclasses.replace(p.record, round=round_index) for p in _still_applying(images, held)]
        images.apply_corrections(to_write)
        records, corrector_notes = CORRECTORS[corrector].propose(images, model, answers, settings, round_index)
        if not audited:
            images.apply_corrections(records)
            to_write += records
            records = []
        whole = CORRECTORS[corrector].relabels_superpixels
        proposals[corrector] = [Proposal(r, whole) for r in records if not refuted[corrector][r.new_class]]
        written += to_write
        notes[corrector] = {
            **corrector_notes,
            "written": len(to_write),
            "written_pixels": sum(record.pixels for record in to_write),
            "held_back": len(proposals[corrector]),
            **ledger.summary(corrector, settings.audit, names),
        }
    audits = choose_audits(proposals, refuted, settings, round_index) if audited else []
    return RoundCorrections(written, [p for items in proposals.values() for p in items], audits, notes)


def _still_applying(images: RoundImages, proposals: Sequence[Proposal]) -> list[Proposal]:
    """The ``proposals`` that still apply: every pixel holds the label it was decided on, none has
    been answered since, and a whole-superpixel change's superpixel has not been asked about."""
    by_image: dict[str, list[Proposal]] = {}
    for proposal in proposals:
        by_image.setdefault(proposal.record.image, []).append(proposal)
    kept = []
    for key, image_proposals in by_image.items():
        labels = images.labels(key)
        answered = images.verified(key).mask
        asked = images.asked(key)
        for proposal in image_proposals:
            if proposal.whole_superpixel and proposal.record.superpixel in asked:
                continue
            if still_applies(proposal.record, labels, answered):
                kept.append(proposal)
    return kept
