"""Audits of automatic corrections: counts, trust and refutation by hand, sampling, and the round's bookkeeping."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from alc_backend.engine.audit import (
    audit_counts,
    interleaved_ranks,
    refuted_classes,
    sample_by_weight,
    split_evenly,
    trusted_classes,
)
from alc_backend.engine.corrections import AutoCorrection
from alc_backend.engine.metrics import wilson_lower_bound, wilson_upper_bound
from alc_backend.rounds.audits import AuditLedger, Proposal, choose_audits
from alc_backend.rounds.images import Answer, Query
from alc_backend.rounds.settings import AuditConfig, RoundSettings


def test_wilson_upper_bound_by_hand() -> None:
    # p = 0, n = 3, z = 1: (0 + 1/6 + sqrt(1/36)) / (4/3) = (1/3) / (4/3) = 0.25
    # p = 0.9, n = 20, z = 1.645: (0.9 + 0.067651 + 1.645 sqrt(0.0045 + 0.0016913)) / 1.135301 = 0.966340
    bounds = wilson_upper_bound(np.array([0.0, 0.9, 0.5]), np.array([3, 20, 0]), 1.0)
    assert bounds[0] == pytest.approx(0.25)
    assert bounds[2] == 1.0  # no trials: nothing is known
    assert wilson_upper_bound(np.array([0.9]), np.array([20]), 1.645)[0] == pytest.approx(0.966340, abs=1e-6)
    # the upper bound of p is one minus the lower bound of 1 - p
    shares, trials = np.array([0.2, 0.5, 1.0]), np.array([5, 8, 2])
    np.testing.assert_allclose(wilson_upper_bound(shares, trials, 1.3), 1 - wilson_lower_bound(1 - shares, trials, 1.3))


def test_audit_counts_per_class() -> None:
    audited, confirmed = audit_counts(np.array([0, 2, 2, 1, 2]), np.array([True, True, False, True, True]), 4)
    assert audited.tolist() == [1, 1, 3, 0]
    assert confirmed.tolist() == [1, 1, 2, 0]
    with pytest.raises(ValueError, match=re.escape("audited classes must lie in 0..3")):
        audit_counts(np.array([4]), np.array([True]), 4)
    with pytest.raises(ValueError, match="classes and right must be"):
        audit_counts(np.array([0, 1]), np.array([True]), 4)


def test_trust_needs_ten_of_ten_at_the_default_bound() -> None:
    # z = 1, min 0.9. All right: the lower bound is 1 / (1 + 1/n): n = 10 gives 0.909, n = 8 gives 0.889.
    # 19 of 20: (0.95 + 0.025 - sqrt(0.002375 + 0.000625)) / 1.05 = 0.876: not enough.
    audited = np.array([10, 8, 20, 0])
    confirmed = np.array([10, 8, 19, 0])
    assert trusted_classes(audited, confirmed, 0.9, 1.0).tolist() == [True, False, False, False]


def test_refutation_needs_a_clearly_low_share() -> None:
    # refute_z = 2, min 0.9. Upper bounds: 0 of 3: (0 + 2/3 + 2 sqrt(1/9)) / (7/3) = 0.571429;
    # 1 of 3: (1/3 + 2/3 + 2 sqrt(2/27 + 1/9)) / (7/3) = (1 + 0.860663) / 2.333333 = 0.797427;
    # 2 of 3: (2/3 + 2/3 + 0.860663) / 2.333333 = 0.940284; 3 of 5: (0.6 + 0.4 + 2 sqrt(0.048 + 0.04)) / 1.8
    # = 1.593296 / 1.8 = 0.885164.
    audited = np.array([3, 3, 3, 5, 0])
    confirmed = np.array([0, 1, 2, 3, 0])
    upper = wilson_upper_bound(confirmed / np.maximum(audited, 1), audited, 2.0)
    np.testing.assert_allclose(upper[:4], [0.571429, 0.797427, 0.940284, 0.885164], atol=1e-6)
    assert refuted_classes(audited, confirmed, 0.9, 2.0).tolist() == [True, True, False, True, False]
    # one wrong audit: upper bound (0 + 2 + 2) / 5 = 0.8 < 0.9, but one audit is too few to refute
    assert refuted_classes(np.array([1]), np.array([0]), 0.9, 2.0, min_audits=3).tolist() == [False]
    assert refuted_classes(np.array([1]), np.array([0]), 0.9, 2.0).tolist() == [True]


def test_sample_by_weight_draws_in_proportion_and_never_a_zero_weight() -> None:
    rng = np.random.default_rng(0)
    firsts = [int(sample_by_weight(np.array([0.0, 1.0, 3.0]), 1, rng)[0]) for _ in range(4000)]
    share = firsts.count(2) / len(firsts)
    assert 0.72 < share < 0.78  # 3 / (1 + 3) = 0.75
    assert firsts.count(0) == 0
    # more asked for than there are positive weights: every positive one, once
    assert sorted(sample_by_weight(np.array([2.0, 0.0, 5.0]), 10, rng).tolist()) == [0, 2]
    assert sample_by_weight(np.zeros(0), 3, rng).tolist() == []
    with pytest.raises(ValueError, match="weights must be an"):
        sample_by_weight(np.array([1.0, -1.0]), 1, rng)


def test_split_evenly_by_hand() -> None:
    assert split_evenly(10, [2, 9, 9]) == [2, 4, 4]
    assert split_evenly(5, [9, 9]) == [3, 2]  # the remainder goes to the earlier group
    assert split_evenly(3, [0, 5]) == [0, 3]
    assert split_evenly(10, [3, 3]) == [3, 3]
    assert split_evenly(0, [4]) == [0]
    assert split_evenly(4, []) == []


def test_interleaved_ranks_by_hand() -> None:
    assert interleaved_ranks(10, 3).tolist() == [1, 5, 8]  # floor(5/3), floor(5), floor(25/3)
    assert interleaved_ranks(100, 20).tolist() == list(range(2, 100, 5))
    assert interleaved_ranks(3, 3).tolist() == [0, 1, 2]
    assert interleaved_ranks(5, 0).tolist() == []
    with pytest.raises(ValueError, match=re.escape("audits must lie in 0..2, got 3")):
        interleaved_ranks(2, 3)


def correction(image: str, superpixel: int, new_class: int, pixels: int, corrector: str = "lcm") -> AutoCorrection:
    return AutoCorrection(corrector, 1, image, superpixel, 0, new_class, 0.99, ((superpixel * 100, pixels, 0),))


def audit(record: AutoCorrection) -> Query:
    return Query(
        image=record.image,
        superpixel=record.superpixel,
        row=0,
        col=0,
        proposed=record.new_class,
        label_before=record.old_class,
        region=tuple((start, length) for start, length, _ in record.runs),
        kind="audit",
        corrector=record.corrector,
        audited_round=record.round,
    )


def test_the_ledger_adds_up_audits_per_corrector_and_class() -> None:
    proposed = [correction("a", 1, 2, 10), correction("a", 2, 2, 10), correction("b", 1, 1, 10, "plar")]
    answers = [
        Answer(audit(proposed[0]), 2, 2),  # confirmed
        Answer(audit(proposed[1]), 0, 2),  # wrong
        Answer(audit(proposed[2]), 1, 2),  # plar, confirmed
        Answer(audit(correction("b", 3, 1, 10)), 0, 2),  # wrong
        Answer(Query("a", 7, 0, 0, 1, 1, ((700, 5),)), 3, 2),  # a correction query: not an audit
    ]
    ledger = AuditLedger.from_answers(answers, 4)
    assert ledger.counts("lcm")[0].tolist() == [0, 1, 2, 0]
    assert ledger.counts("lcm")[1].tolist() == [0, 0, 1, 0]
    assert ledger.counts("plar")[0].tolist() == [0, 1, 0, 0]
    assert ledger.counts("nobody")[0].tolist() == [0, 0, 0, 0]
    summary = ledger.summary("lcm", AuditConfig(), ["bg", "road", "car", "sign"])
    assert summary == {
        "audited": 3,
        "confirmed": 1,
        "audited_precision": pytest.approx(1 / 3),
        "trusted_classes": [],
        "refuted_classes": [],
    }
    six_of_six = [Answer(audit(correction("c", s, 2, 10)), 2, 2) for s in range(6)]
    assert AuditLedger.from_answers(six_of_six, 4).summary("lcm", AuditConfig(), "abcd")["trusted_classes"] == ["c"]


def test_audits_are_shared_between_correctors_one_per_superpixel_refuted_classes_left_out() -> None:
    lcm = [Proposal(correction("a", s, 1, 50), True) for s in range(6)]
    lcm.append(Proposal(correction("a", 9, 3, 10_000), True))  # class 3 refuted below
    plar = [Proposal(correction("a", s, 2, 5, "plar")) for s in range(3)]  # same superpixels 0-2
    refuting = [Answer(audit(correction("x", s, 3, 1)), 0, 1) for s in range(3)]  # 0 of 3 confirmed
    ledger = AuditLedger.from_answers(refuting, 4)
    settings = RoundSettings(method="abc+lcm+plar", queries_per_round=20, audit=AuditConfig(share=0.3))
    refuted = {name: ledger.refuted(name, settings.audit) for name in ("lcm", "plar")}
    assert refuted["lcm"].tolist() == [False, False, False, True]
    assert settings.audits_per_round == 6
    chosen = choose_audits({"lcm": lcm, "plar": plar}, refuted, settings, round_index=1)
    assert len(chosen) <= 6
    assert all(proposal.record.new_class != 3 for proposal in chosen)
    places = [(proposal.record.image, proposal.record.superpixel) for proposal in chosen]
    assert len(places) == len(set(places))
    by_corrector = [proposal.record.corrector for proposal in chosen]
    assert by_corrector.count("lcm") == 3  # 6 shared evenly
    # the same draw again for the same seed and round
    assert choose_audits({"lcm": lcm, "plar": plar}, refuted, settings, round_index=1) == chosen


def test_a_proposal_round_trips_through_json() -> None:
    proposal = Proposal(correction("a", 4, 2, 7), whole_superpixel=True)
    assert Proposal.from_json(json.loads(json.dumps(proposal.to_json()))) == proposal


def test_audit_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=re.escape("share must lie in [0, 1], got 1.5")):
        AuditConfig(share=1.5)
    with pytest.raises(ValueError, match=re.escape("min_precision must lie in (0, 1], got 0.0")):
        AuditConfig(min_precision=0.0)
    assert RoundSettings(method="abc").audits_per_round == 0  # no corrector, no audit
    assert RoundSettings(method="abc+lcm", queries_per_round=50).audits_per_round == 10
