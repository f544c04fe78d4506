"""The end of a round: audits settle, the correctors propose, trusted classes are written, audits are drawn.

After round ``r``'s answers are in the images' labels, :func:`correct_round`

1. rejects the written changes that this round's audits found wrong (undone through the journal);
2. adds up the audits of the last ``audit.window`` rounds in an :class:`~alc_backend.rounds.audits.AuditLedger`;
3. runs the method's correctors in order (LCM, PLAR), each on the labels the previous left;
4. writes each corrector's proposals to the classes its audits trust, and holds back the others
   (except refuted classes, which are dropped);
5. draws round ``r + 1``'s audits from what was written and held back.

With ``audit.share = 0`` there are no audits, and every proposal is written as the papers do:
that is the unsafe setting, kept for comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from alc_backend.engine.corrections import AutoCorrection
from alc_backend.rounds.audits import (
    AuditLedger,
    AuditTarget,
    choose_audit_targets,
    recent_answers,
    rejected_corrections,
)
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


CORRECTORS: dict[str, Corrector] = {"lcm": Corrector(lcm_proposals, True), "plar": Corrector(plar_proposals, False)}
"""Corrector name -> how it proposes (see :mod:`alc_backend.rounds.methods`)."""


@dataclass(frozen=True)
class RoundCorrections:
    """What the end of a round did.

    ``written``: the changes now in the labels; ``held_back``: proposals to classes not yet
    trusted; ``rejected``: written changes this round's audits undid; ``audits``: the next
    round's audit targets; ``notes``: per corrector, what it saw and decided (JSON-ready).
    """

    written: list[AutoCorrection]
    held_back: list[AutoCorrection]
    rejected: list[AutoCorrection]
    audits: list[AuditTarget]
    notes: dict[str, dict[str, Any]]


def correct_round(
    images: RoundImages,
    model: torch.nn.Module,
    answers: Sequence[Answer],
    settings: RoundSettings,
    round_index: int,
    class_names: Sequence[str] | None = None,
) -> RoundCorrections:
    """End round ``round_index``: settle its audits, run the correctors, draw the next audits.

    Args:
        images: the round's images, with every answer so far in their labels.
        model: the round's model (trained before its answers).
        answers: every answer so far, in the order the queries were made.
        settings: the method (its correctors), their settings and the audits'.
        round_index: the round that ends.
        class_names: names for the notes (default: the class indices as text).

    Returns:
        The :class:`RoundCorrections`. A corrector that cannot decide abstains and says why in
        its notes; it never stops the round.
    """
    names = list(class_names) if class_names is not None else [str(c) for c in range(images.num_classes)]
    this_round = [answer for answer in answers if answer.round == round_index]
    rejected = rejected_corrections(this_round, images.corrections())
    if rejected:
        images.reject_corrections(rejected, round_index)
    ledger = AuditLedger.from_answers(recent_answers(answers, round_index, settings.audit.window), images.num_classes)
    round_ledger = AuditLedger.from_answers(this_round, images.num_classes)
    audited = settings.audit.share > 0
    written: list[AutoCorrection] = []
    held_back: list[AutoCorrection] = []
    changes: dict[str, list[AuditTarget]] = {}
    notes: dict[str, dict[str, Any]] = {}
    for corrector in settings.correctors:
        proposals, corrector_notes = CORRECTORS[corrector].propose(images, model, answers, settings, round_index)
        trusted = ledger.trusted(corrector, settings.audit) if audited else np.ones(images.num_classes, dtype=bool)
        refuted = ledger.refuted(corrector, settings.audit)
        to_write = [record for record in proposals if trusted[record.new_class]]
        to_hold = [record for record in proposals if not trusted[record.new_class] and not refuted[record.new_class]]
        images.apply_corrections(to_write)
        written += to_write
        held_back += to_hold
        whole = CORRECTORS[corrector].relabels_superpixels
        changes[corrector] = [AuditTarget(r, True, whole) for r in to_write] + [
            AuditTarget(r, False, whole) for r in to_hold
        ]
        this_audits, this_confirmed = round_ledger.counts(corrector)
        notes[corrector] = {
            **corrector_notes,
            "written": len(to_write),
            "written_pixels": sum(record.pixels for record in to_write),
            "held_back": len(to_hold),
            "rejected": sum(record.corrector == corrector for record in rejected),
            "round_audits": int(this_audits.sum()),
            "round_confirmed": int(this_confirmed.sum()),
            **ledger.summary(corrector, settings.audit, names),
        }
    audits = choose_audit_targets(changes, ledger, settings, round_index) if audited else []
    return RoundCorrections(written, held_back, rejected, audits, notes)
