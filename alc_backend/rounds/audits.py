"""Audits in the round: what they showed so far, which changes they undo, and which to ask about next.

Every answer to an audit is evidence about one corrector and one class: the change to ``Y``
was confirmed (the answer is ``Y``) or not. :class:`AuditLedger` adds them up over all rounds
so far; a corrector writes only the classes it trusts (:mod:`alc_backend.engine.audit`). An
audit that finds a written change wrong rejects it (:func:`rejected_corrections`), and the
images undo it through the journal. At the end of a round, :func:`choose_audit_targets` draws
the next round's audits from the changes the correctors made or held back in it.
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
class AuditTarget:
    """A change to audit: the correction ``record``, whether it was written (``applied``) or held
    back, and whether the audit asks about the whole superpixel (``whole_superpixel``: the change
    relabels superpixels, as LCM's do) or only about the pixels it changed (PLAR's)."""

    record: AutoCorrection
    applied: bool
    whole_superpixel: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"record": self.record.to_json(), "applied": self.applied, "whole_superpixel": self.whole_superpixel}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> AuditTarget:
        return cls(
            AutoCorrection.from_json(record["record"]),
            bool(record["applied"]),
            bool(record.get("whole_superpixel", False)),
        )


@dataclass(frozen=True)
class AuditLedger:
    """Audits answered so far, per corrector: ``audited[corrector]`` and ``confirmed[corrector]``, each ``(C,)``."""

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
        """``(C,)`` bool: the classes ``corrector`` may write."""
        return trusted_classes(*self.counts(corrector), config.min_precision, config.z)

    def refuted(self, corrector: str, config: AuditConfig) -> np.ndarray:
        """``(C,)`` bool: the classes whose changes by ``corrector`` are neither written nor audited any more."""
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


def recent_answers(answers: Sequence[Answer], round_index: int, window: int) -> list[Answer]:
    """The answers of the last ``window`` rounds up to ``round_index`` (all of them for ``window = 0``)."""
    return [answer for answer in answers if window == 0 or round_index - window < answer.round <= round_index]


def rejected_corrections(answers: Sequence[Answer], corrections: Sequence[AutoCorrection]) -> list[AutoCorrection]:
    """The written changes that audits among ``answers`` found wrong (answer other than the class written).

    An audit names its change by corrector, round, image, superpixel and class; a change that
    is no longer in force (already rejected) is not returned twice.
    """
    wrong = {
        (q.corrector, q.audited_round, q.image, q.superpixel, q.proposed)
        for answer in answers
        if (q := answer.query).kind == "audit" and q.applied and answer.answer != q.proposed
    }
    return [
        record
        for record in corrections
        if (record.corrector, record.round, record.image, record.superpixel, record.new_class) in wrong
    ]


def choose_audit_targets(
    changes: Mapping[str, Sequence[AuditTarget]], ledger: AuditLedger, settings: RoundSettings, round_index: int
) -> list[AuditTarget]:
    """Draw the next round's audits from the changes each corrector made or held back this round.

    Changes to a refuted class are left out. The audits (``settings.audits_per_round`` at
    most) are shared evenly among the correctors with changes; within a corrector, a change is
    drawn with probability proportional to its pixels, so that the audited share that is right
    estimates the share of its changed pixels that are right. At most one audit per superpixel.

    Args:
        changes: corrector name -> this round's changes, written and held back.
        ledger: the audits so far (including this round's).
        settings: the budget, audit share and seed.
        round_index: this round (seeds the draw).

    Returns:
        The targets, by corrector in ``changes``' order, each corrector's in the order drawn.
    """
    rng = np.random.default_rng([settings.seed, round_index, 1])
    refuted = {corrector: ledger.refuted(corrector, settings.audit) for corrector in changes}
    candidates = {
        corrector: [t for t in targets if not refuted[corrector][t.record.new_class]]
        for corrector, targets in changes.items()
    }
    shares = split_evenly(settings.audits_per_round, [len(targets) for targets in candidates.values()])
    chosen: list[AuditTarget] = []
    taken: set[tuple[str, int]] = set()
    for (_, targets), share in zip(candidates.items(), shares, strict=True):
        order = sample_by_weight(np.array([t.record.pixels for t in targets], dtype=np.float64), len(targets), rng)
        picked = 0
        for index in order:
            if picked == share:
                break
            target = targets[int(index)]
            place = (target.record.image, target.record.superpixel)
            if place in taken:
                continue
            taken.add(place)
            chosen.append(target)
            picked += 1
    return chosen
