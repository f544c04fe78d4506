"""Query costs in annotator seconds, against values worked out by hand.

Paper table (Hwang et al. 2023, Table 3, total seconds for 20 regions / 20):
correction 6.38, 8.025, 8.605; multiclass 7.275, 9.58, 14.79 for 1, 2, 3+ classes.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from alc_backend.engine.query_cost import (
    PAPER_COST_MODEL,
    QUERY_KINDS,
    CostModel,
    TimedAnswer,
    cost_summary,
    cumulative_seconds,
    measured_cost_model,
    predicted_class_shares,
    prefer_multiclass,
    queries_within,
)

PRIOR = CostModel({"correction": (6.0, 8.0, 9.0), "multiclass": (7.0, 10.0, 15.0)})


def timed(kind: str, num_classes: int, seconds_list: list[float]) -> list[TimedAnswer]:
    return [TimedAnswer(kind, num_classes, seconds) for seconds in seconds_list]  # type: ignore[arg-type]


def test_query_kinds() -> None:
    assert QUERY_KINDS == ("correction", "multiclass")


@pytest.mark.parametrize(
    ("kind", "num_classes", "expected"),
    [
        ("correction", 1, 6.38),
        ("correction", 2, 8.025),
        ("correction", 3, 8.605),
        ("correction", 7, 8.605),
        ("multiclass", 1, 7.275),
        ("multiclass", 2, 9.58),
        ("multiclass", 3, 14.79),
        ("multiclass", 12, 14.79),
    ],
)
def test_paper_table(kind: str, num_classes: int, expected: float) -> None:
    assert PAPER_COST_MODEL.seconds(kind, num_classes) == pytest.approx(expected, abs=1e-12)  # type: ignore[arg-type]


def test_paper_constant_equals_classmethod_and_bucket_labels() -> None:
    assert CostModel.paper() == PAPER_COST_MODEL
    assert PAPER_COST_MODEL.bucket_labels("correction") == ("1", "2", "3+")
    assert PAPER_COST_MODEL.bucket_labels("multiclass") == ("1", "2", "3+")


def test_zero_classes_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"^a queried region holds at least one class; num_classes must be >= 1, got 0$"
    ):
        PAPER_COST_MODEL.seconds("correction", 0)


def test_unknown_kind_rejected() -> None:
    with pytest.raises(ValueError, match=r"^unknown query kind 'dominant'; choose from correction, multiclass$"):
        PAPER_COST_MODEL.seconds("dominant", 1)  # type: ignore[arg-type]


def test_model_with_different_lengths_per_kind() -> None:
    model = CostModel({"correction": (5.0,), "multiclass": (4.0, 6.0)})
    assert model.seconds("correction", 1) == 5.0
    assert model.seconds("correction", 4) == 5.0
    assert model.seconds("multiclass", 2) == 6.0
    assert model.bucket_labels("correction") == ("1+",)
    assert model.bucket_labels("multiclass") == ("1", "2+")


def test_model_is_read_only_copy() -> None:
    source = {"correction": [5.0, 6.0], "multiclass": [7.0]}
    model = CostModel(source)  # type: ignore[arg-type]
    source["correction"][0] = 99.0
    assert model.seconds("correction", 1) == 5.0
    with pytest.raises(TypeError):
        model.seconds_per_query["correction"] = (1.0,)  # type: ignore[index]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"correction": (5.0,)}, r"^cost model has no seconds for query kind\(s\) multiclass$"),
        ({}, r"^cost model has no seconds for query kind\(s\) correction, multiclass$"),
        (
            {"correction": (5.0,), "multiclass": (5.0,), "dominant": (5.0,)},
            r"^unknown query kind 'dominant'; choose from correction, multiclass$",
        ),
        (
            {"correction": (), "multiclass": (5.0,)},
            r"^cost model for 'correction' needs at least one entry \(seconds for 1 class\)$",
        ),
        (
            {"correction": (5.0,), "multiclass": (5.0, 0.0)},
            r"^cost model seconds must be positive and finite; 'multiclass' entry 1 is 0.0$",
        ),
        (
            {"correction": (-1.0,), "multiclass": (5.0,)},
            r"^cost model seconds must be positive and finite; 'correction' entry 0 is -1.0$",
        ),
        (
            {"correction": (5.0, math.inf), "multiclass": (5.0,)},
            r"^cost model seconds must be positive and finite; 'correction' entry 1 is inf$",
        ),
        (
            {"correction": (math.nan,), "multiclass": (5.0,)},
            r"^cost model seconds must be positive and finite; 'correction' entry 0 is nan$",
        ),
    ],
)
def test_cost_model_validation(table: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CostModel(table)


def test_timed_answer_validation() -> None:
    with pytest.raises(
        ValueError, match=r"^a queried region holds at least one class; num_classes must be >= 1, got 0$"
    ):
        TimedAnswer("correction", 0, 5.0)
    with pytest.raises(ValueError, match=r"^unknown query kind 'other'; choose from correction, multiclass$"):
        TimedAnswer("other", 1, 5.0)  # type: ignore[arg-type]
    # unusable times are accepted here and dropped later
    assert math.isnan(TimedAnswer("correction", 1, math.nan).seconds)


def test_measured_median_replaces_prior() -> None:
    answers = timed("correction", 1, [5, 7, 100, 6, 8])
    model = measured_cost_model(answers, PRIOR, min_answers=5)
    assert model.seconds("correction", 1) == 7.0
    # every other bucket keeps the prior
    assert model.seconds_per_query["correction"][1:] == (8.0, 9.0)
    assert model.seconds_per_query["multiclass"] == (7.0, 10.0, 15.0)


def test_bucket_under_min_answers_keeps_prior() -> None:
    answers = timed("correction", 1, [5, 7, 100, 6])
    model = measured_cost_model(answers, PRIOR, min_answers=5)
    assert model == PRIOR


def test_outlier_above_max_seconds_is_dropped() -> None:
    # with 900 kept the median of [4, 6, 8, 10, 900] would be 8; dropped, [4, 6, 8, 10] -> 7
    answers = timed("multiclass", 2, [4, 6, 8, 10, 900])
    assert measured_cost_model(answers, PRIOR, min_answers=4).seconds("multiclass", 2) == 7.0
    assert measured_cost_model(answers, PRIOR, min_answers=4, max_seconds=1000.0).seconds("multiclass", 2) == 8.0
    # with 900 dropped only 4 answers remain: under min_answers=5, so the prior is used
    assert measured_cost_model(answers, PRIOR, min_answers=5).seconds("multiclass", 2) == 10.0
    assert measured_cost_model(answers, PRIOR, min_answers=5, max_seconds=900.0).seconds("multiclass", 2) == 8.0


def test_unusable_lead_times_are_dropped() -> None:
    answers = timed("correction", 2, [3, math.nan, math.inf, 0.0, -2.0, 5])
    summary = cost_summary(answers, PRIOR, min_answers=2)
    assert summary["correction"]["2"] == {"answers": 2, "median_s": 4.0, "seconds": 4.0, "source": "measured"}


def test_three_plus_bucket_gathers_larger_counts() -> None:
    answers = timed("correction", 3, [10, 20]) + timed("correction", 5, [30])
    model = measured_cost_model(answers, PRIOR, min_answers=3)
    assert model.seconds("correction", 3) == 20.0
    assert model.seconds("correction", 9) == 20.0
    assert model.seconds("correction", 2) == 8.0
    # the multiclass 3+ bucket got nothing
    assert model.seconds("multiclass", 3) == 15.0


def test_kinds_are_kept_apart() -> None:
    answers = timed("multiclass", 1, [2, 4, 6])
    model = measured_cost_model(answers, PRIOR, min_answers=3)
    assert model.seconds("multiclass", 1) == 4.0
    assert model.seconds("correction", 1) == 6.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_answers": 0}, r"^min_answers must be >= 1, got 0$"),
        ({"max_seconds": 0.0}, r"^max_seconds must be positive and finite, got 0.0$"),
        ({"max_seconds": math.inf}, r"^max_seconds must be positive and finite, got inf$"),
    ],
)
def test_measured_argument_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        measured_cost_model([], PRIOR, **kwargs)
    with pytest.raises(ValueError, match=message):
        cost_summary([], PRIOR, **kwargs)


def test_cost_summary() -> None:
    answers = (
        timed("correction", 1, [5, 7, 100, 6, 8])
        + timed("correction", 2, [11, 13])
        + timed("multiclass", 4, [20, 30, 40, 50, 60, 700])
    )
    summary = cost_summary(answers, PRIOR, min_answers=5)
    assert summary == {
        "correction": {
            "1": {"answers": 5, "median_s": 7.0, "seconds": 7.0, "source": "measured"},
            "2": {"answers": 2, "median_s": 12.0, "seconds": 8.0, "source": "model"},
            "3+": {"answers": 0, "median_s": None, "seconds": 9.0, "source": "model"},
        },
        "multiclass": {
            "1": {"answers": 0, "median_s": None, "seconds": 7.0, "source": "model"},
            "2": {"answers": 0, "median_s": None, "seconds": 10.0, "source": "model"},
            "3+": {"answers": 5, "median_s": 40.0, "seconds": 40.0, "source": "measured"},
        },
    }
    assert json.loads(json.dumps(summary)) == summary


def test_cost_summary_agrees_with_measured_model() -> None:
    answers = timed("correction", 1, [1, 2, 3]) + timed("multiclass", 2, [9, 9])
    summary = cost_summary(answers, PAPER_COST_MODEL, min_answers=2)
    model = measured_cost_model(answers, PAPER_COST_MODEL, min_answers=2)
    for kind in QUERY_KINDS:
        for index, label in enumerate(PAPER_COST_MODEL.bucket_labels(kind)):
            assert summary[kind][label]["seconds"] == model.seconds_per_query[kind][index]
    assert summary["correction"]["1"]["seconds"] == 2.0
    assert summary["multiclass"]["2"]["seconds"] == 9.0
    assert summary["multiclass"]["3+"]["seconds"] == pytest.approx(14.79, abs=1e-12)


def test_answers_are_read_once_from_an_iterator() -> None:
    answers = iter(timed("correction", 1, [5, 7, 6]))
    assert measured_cost_model(answers, PRIOR, min_answers=3).seconds("correction", 1) == 6.0


def test_cumulative_seconds() -> None:
    queries = [("correction", 1), ("correction", 4), ("multiclass", 2), ("multiclass", 3)]
    # 6 + 9 + 10 + 15
    assert cumulative_seconds(queries, PRIOR) == 40.0  # type: ignore[arg-type]
    assert cumulative_seconds([], PRIOR) == 0.0
    # paper: 6.38 + 8.025 + 9.58 = 23.985
    assert cumulative_seconds(
        [("correction", 1), ("correction", 2), ("multiclass", 2)], PAPER_COST_MODEL
    ) == pytest.approx(23.985, abs=1e-12)
    with pytest.raises(ValueError, match=r"num_classes must be >= 1, got 0$"):
        cumulative_seconds([("correction", 1), ("multiclass", 0)], PRIOR)


def test_queries_within_takes_the_longest_prefix_that_fits() -> None:
    seconds = np.array([6.38, 8.025, 6.38])
    assert queries_within(seconds, 15.0) == 2  # 6.38 + 8.025 = 14.405
    assert queries_within(seconds, 14.405) == 2  # exactly spent
    assert queries_within(seconds, 14.0) == 1
    assert queries_within(seconds, 6.0) == 0
    assert queries_within(seconds, 100.0) == 3
    with pytest.raises(ValueError, match=r"^budget must be >= 0 seconds, got -1.0$"):
        queries_within(seconds, -1.0)


def test_prefer_multiclass_compares_the_expected_gain_per_second() -> None:
    """With the paper's table: a region split 0.5/0.5 whose labels agree on 0.5 gains 0 from a
    correction (max share 0.5 − 0.5) and (0.9 − 0.5) / 9.58 s from a multi-class query at accuracy
    0.9: multi-class. Split 0.9/0.1 with agreement 0.1: correction (0.9 − 0.1) / 8.025 = 0.0997
    against (0.9 − 0.1) / 9.58 = 0.0835: correction. One class: always correction. Split
    0.6/0.4, agreement 0: correction 0.6 / 8.025 = 0.0748 against 0.9 / 9.58 = 0.0939: multi-class;
    at accuracy 0.7: 0.7 / 9.58 = 0.0731: correction."""
    shares = np.array([[0.5, 0.5, 0.0], [0.9, 0.1, 0.0], [1.0, 0.0, 0.0], [0.6, 0.4, 0.0]])
    agreement = np.array([0.5, 0.1, 0.0, 0.0])
    assert prefer_multiclass(shares, agreement, PAPER_COST_MODEL, 0.9).tolist() == [True, False, False, True]
    assert prefer_multiclass(shares, agreement, PAPER_COST_MODEL, 0.7).tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match=r"^localisation_accuracy must lie in \[0, 1\], got 1.5$"):
        prefer_multiclass(shares, agreement, PAPER_COST_MODEL, 1.5)


def test_predicted_class_shares_are_per_superpixel_fractions() -> None:
    predicted = np.array([[0, 1, 1], [2, 2, 0]])
    superpixels = np.array([[0, 0, 1], [1, 1, 2]])
    expected = [[0.5, 0.5, 0.0], [0.0, 1 / 3, 2 / 3], [1.0, 0.0, 0.0]]
    assert np.allclose(predicted_class_shares(predicted, superpixels, 3), expected)
    with pytest.raises(ValueError, match=r"predicted is \(2, 3\) but superpixels is \(3, 2\)"):
        predicted_class_shares(predicted, superpixels.reshape(3, 2), 3)
