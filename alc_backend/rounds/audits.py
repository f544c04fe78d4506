"""Audits in the round: what the audits of a round's proposals showed, and which proposals to audit.

A corrector's proposals of round ``r`` are held back. Round ``r + 1`` asks about a sample of
them (:func:`choose_audits`); at its end, each answered audit is evidence about one corrector
and one class: the change to ``Y`` was confirmed (the answer is ``Y``) or not.
:class:`AuditLedger` adds them up, and the proposals of round ``r`` whose class the audits
trust are written then, while the others are dropped (:mod:`alc_backend.rounds.corrections`).
The sample and what is written are the same population, so the audited share estimates the
precision of exactly what is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alc_backend.engine.audit import audit_counts, refuted_classes, sample_by_weight, split_evenly, trusted_classes
from alc_backend.engine.corrections import AutoCorrection
from alc_backend.rounds.images import Answer
from alc_backend.rounds.settings import AuditConfig, RoundSettings


@dataclass(frozen=True)
class Proposal:
    """A change a corrector proposed and holds back until its audits: the correction ``record``,
    and whether it relabels a whole superpixel (``whole_superpixel``, as LCM's do: an audit then
    asks about the superpixel) or scattered pixels (PLAR's: an audit asks about those pixels)."""

    record: AutoCorrection
    whole_superpixel: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"record": self.record.to_json(), "whole_superpixel": self.whole_superpixel}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Proposal:
        return cls(AutoCorrection.from_json(record["record"]), bool(record.get("whole_superpixel", False)))


@dataclass(frozen=True)
class AuditLedger:
    """Answered audits per corrector: ``audited[corrector]`` and ``confirmed[corrector]``, each ``(C,)``."""

    num_classes: int
    audited: dict[str, np.ndarray]
    confirmed: dict[str, np.ndarray]

    @classmethod
    def from_answers(cls, answers: Sequence[Answer], num_classes: int) -> AuditLedger:
        """The ledger of every audit among ``answers``."""
        by_corrector: dict[str, tuple[list[int], list[bool]]] = {}
        for answer in answers:
            query = answer.query
            if query.kind != "audit" or query.corrector is None:
                continue
            classes, right = by_corrector.setdefault(query.corrector, ([], []))
            classes.append(query.proposed)
            right.append(answer.answer == query.proposed)
        audited, confirmed = {}, {}
        for corrector, (classes, right) in by_corrector.items():
            audited[corrector], confirmed[corrector] = audit_counts(np.array(classes), np.array(right), num_classes)
        return cls(num_classes, audited, confirmed)

    def counts(self, corrector: str) -> tuple[np.ndarray, np.ndarray]:
        """``(audited (C,), confirmed (C,))`` of ``corrector``; zeros when it was never audited."""
        zeros = np.zeros(self.num_classes, dtype=np.int64)
        return self.audited.get(corrector, zeros), self.confirmed.get(corrector, zeros)

    def trusted(self, corrector: str, config: AuditConfig) -> np.ndarray:
        """``(C,)`` bool: the classes whose audited proposals by ``corrector`` may be written."""
        return trusted_classes(*self.counts(corrector), config.min_precision, config.z)

    def refuted(self, corrector: str, config: AuditConfig) -> np.ndarray:
        """``(C,)`` bool: the classes whose next proposals by ``corrector`` are not even audited."""
        return refuted_classes(*self.counts(corrector), config.min_precision, config.refute_z, config.refute_after)

    def summary(self, corrector: str, config: AuditConfig, class_names: Sequence[str]) -> dict[str, Any]:
        """JSON-ready: audits, confirmations, their share, and the trusted and refuted classes by name."""
        audited, confirmed = self.counts(corrector)
        total, right = int(audited.sum()), int(confirmed.sum())
        return {
            "audited": total,
            "confirmed": right,
            "audited_precision": right / total if total else None,
            "trusted_classes": [class_names[c] for c in np.flatnonzero(self.trusted(corrector, config))],
            "refuted_classes": [class_names[c] for c in np.flatnonzero(self.refuted(corrector, config))],
        }


def choose_audits(
    proposals: Mapping[str, Sequence[Proposal]],
    refuted: Mapping[str, np.ndarray],
    settings: RoundSettings,
    round_index: int,
) -> list[Proposal]:
    """Draw the next round's audits from the proposals each corrector made this round.

    Proposals to a class in ``refuted[corrector]`` are left out. The audits
    (``settings.audits_per_round`` at most) are shared evenly among the correctors with
    proposals; within a corrector, a proposal is drawn with probability proportional to its
    pixels, so that the audited share that is right estimates the share of its changed pixels
    that are right. At most one audit per superpixel.

    Args:
        proposals: corrector name -> this round's proposals.
        refuted: corrector name -> ``(C,)`` bool, classes not to audit.
        settings: the budget, the audit share and the seed.
        round_index: the round that ends (seeds the draw).

    Returns:
        The proposals to audit, by corrector in ``proposals``' order, each corrector's in the order drawn.
    """
    rng = np.random.default_rng([settings.seed, round_index, 1])
    candidates = {
        corrector: [p for p in items if not refuted[corrector][p.record.new_class]]
        for corrector, items in proposals.items()
    }
    shares = split_evenly(settings.audits_per_round, [len(items) for items in candidates.values()])
    chosen: list[Proposal] = []
    taken: set[tuple[str, int]] = set()
    for items, share in zip(candidates.values(), shares, strict=True):
        order = sample_by_weight(np.array([p.record.pixels for p in items], dtype=np.float64), len(items), rng)
        picked = 0
        for index in order:
            if picked == share:
                break
            proposal = items[int(index)]
            place = (proposal.record.image, proposal.record.superpixel)
            if place in taken:
                continue
            taken.add(place)
            chosen.append(proposal)
            picked += 1
    return chosen
