"""Answers merged from out-of-order events, labels composed from answers, settings, the job runner."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from alc_backend.engine.corrections import AutoCorrection
from alc_backend.jobs import InProcessRunner
from alc_backend.service.answers import (
    answered_queries,
    compose_labels,
    lead_time_of,
    live_answers,
    record_event,
    timed_answers,
)
from alc_backend.service.parts import STALE_CLAIM_S, PreparationParts
from alc_backend.service.rounds import answer_progress
from alc_backend.service.settings import BackendSettings, SettingsError
from alc_backend.service.workspace import AnswerRecord, QueryRecord, TaskRecord

T1, T2, T3 = "2026-11-22T01:00:00Z", "2026-11-22T01:00:05Z", "2026-11-22T01:00:09Z"


def test_an_update_replaces_an_answer_and_a_late_duplicate_of_the_creation_is_ignored() -> None:
    answers: dict[int, AnswerRecord] = {}
    assert record_event(answers, AnswerRecord(7, 40, (1,), T1))
    assert record_event(answers, AnswerRecord(7, 40, (2,), T2))
    assert not record_event(answers, AnswerRecord(7, 40, (1,), T1)), "the stale creation event arrived late"
    assert not record_event(answers, AnswerRecord(7, 40, (2,), T2)), "an exact duplicate changes nothing"
    assert answers[7].answer == 2


def test_a_deletion_is_final_even_when_older_events_arrive_after_it() -> None:
    answers = {7: AnswerRecord(7, 40, (1,), T1)}
    assert record_event(answers, AnswerRecord(7, -1, (), "", deleted=True))
    assert answers[7].deleted and answers[7].query_task == 40, "the deletion keeps the query it belonged to"
    assert not record_event(answers, AnswerRecord(7, 40, (2,), T3))
    assert live_answers(answers) == {}


def test_the_newest_live_annotation_of_a_query_is_its_answer() -> None:
    answers = {
        1: AnswerRecord(1, 40, (0,), T1),
        2: AnswerRecord(2, 40, (3,), T2),
        3: AnswerRecord(3, 41, (), T1),
        4: AnswerRecord(4, 40, (5,), T3, deleted=True),
    }
    assert {task: record.answer for task, record in live_answers(answers).items()} == {40: 3, 41: None}
    queries = {
        40: QueryRecord(40, image_task=9, superpixel=2, row=0, col=0, proposed=0, label_before=0, round=1, rank=0),
        41: QueryRecord(41, image_task=9, superpixel=5, row=0, col=0, proposed=0, label_before=0, round=1, rank=1),
    }
    answered = answered_queries(answers, queries)
    assert answered == {9: [(queries[40], (3,))]}, "a skipped query (no class) relabels nothing"


def test_labels_are_pseudo_labels_then_corrections_then_answers_then_drawn_masks() -> None:
    pseudo = np.array([[0, 0, 1], [1, 1, 1]], dtype=np.uint8)
    superpixels = np.array([[0, 0, 1], [2, 2, 1]])
    lcm = AutoCorrection(
        corrector="lcm", round=1, image="9", superpixel=2, old_class=1, new_class=2, confidence=0.99, runs=((3, 2, 1),)
    )
    labels = compose_labels(pseudo, [lcm], [(superpixels == 1, 0)])
    assert labels.tolist() == [[0, 0, 0], [2, 2, 0]]
    answered_over_correction = compose_labels(pseudo, [lcm], [(superpixels == 2, 1)])
    assert answered_over_correction.tolist() == [[0, 0, 1], [1, 1, 1]]
    # an answer labels its query's region only: here the left pixel of superpixel 2
    part = np.zeros((2, 3), dtype=bool)
    part[1, 0] = True
    assert compose_labels(pseudo, [lcm], [(part, 0)]).tolist() == [[0, 0, 1], [0, 2, 1]]
    drawn = np.full((2, 3), 255, dtype=np.uint8)
    drawn[0, 0] = 3
    assert compose_labels(pseudo, [lcm], [(superpixels == 1, 0)], drawn).tolist() == [[3, 0, 0], [2, 2, 0]]
    with pytest.raises(ValueError, match=r"the drawn mask is \(1, 3\) but the image is \(2, 3\)"):
        compose_labels(pseudo, [], [], drawn[:1])


def test_a_mixed_answer_labels_its_region_with_its_localised_labels() -> None:
    pseudo = np.array([[0, 0, 1], [1, 1, 1]], dtype=np.uint8)
    region = np.array([[False, True, True], [False, True, True]])
    localised = np.array([[255, 2, 3], [255, 3, 3]], dtype=np.uint8)
    labels = compose_labels(pseudo, [], [(region, localised), (np.eye(2, 3, dtype=bool), 4)])
    assert labels.tolist() == [[4, 2, 3], [1, 4, 3]], "in the order asked: the later answer paints over"


def test_answer_records_of_an_earlier_version_read_as_classes() -> None:
    assert AnswerRecord.from_json({"annotation": 1, "query_task": 2, "answer": 3, "updated_at": T1}).classes == (3,)
    skipped = AnswerRecord.from_json({"annotation": 1, "query_task": 2, "answer": None, "updated_at": T1})
    assert (skipped.classes, skipped.answer, skipped.mixed) == ((), None, False)
    mixed = AnswerRecord.from_json({"annotation": 1, "query_task": 2, "classes": [1, 4], "updated_at": T1})
    assert (mixed.classes, mixed.answer, mixed.mixed) == ((1, 4), None, True)


def test_settings_come_from_the_environment_and_bad_values_are_named() -> None:
    settings = BackendSettings.from_env(
        {
            "MODEL_DIR": "/tmp/ws",
            "ALC_QUERIES_PER_ROUND": "12",
            "ALC_METHOD": "sim+plar",
            "LABEL_STUDIO_URL": "http://x/",
        }
    )
    assert (str(settings.model_dir), settings.round.queries_per_round, settings.round.method) == (
        "/tmp/ws",
        12,
        "multiclass:sim+plar",  # SLIC superpixels: the query kind ALC_METHOD leaves open is multi-class
    )
    assert settings.label_studio_url == "http://x"
    with pytest.raises(SettingsError, match="ALC_QUERIES_PER_ROUND must be an integer, got 'many'"):
        BackendSettings.from_env({"ALC_QUERIES_PER_ROUND": "many"})
    with pytest.raises(SettingsError, match="ALC_METHOD: method 'abc\\+xyz': unknown auto-corrector 'xyz'"):
        BackendSettings.from_env({"ALC_METHOD": "abc+xyz"})
    assert BackendSettings.from_env({"ALC_METHOD": "multiclass:abc"}).round.query == "multiclass"
    assert BackendSettings.from_env({"ALC_METHOD": "abc+lcm", "ALC_QUERY": "auto"}).round.method == "auto:abc+lcm"
    assert BackendSettings.from_env({"ALC_METHOD": "auto:sim", "ALC_QUERY": "auto"}).round.method == "auto:sim"
    assert BackendSettings.from_env({"ALC_QUERY": "correction"}).round.method == "abc+lcm"
    with pytest.raises(SettingsError) as error:
        BackendSettings.from_env({"ALC_METHOD": "multiclass:abc", "ALC_QUERY": "auto"})
    assert str(error.value) == "ALC_QUERY=auto: the method 'multiclass:abc' asks multiclass queries, not auto"
    with pytest.raises(SettingsError) as error:
        BackendSettings.from_env({"ALC_QUERY": "dominant"})
    assert (
        str(error.value)
        == "ALC_QUERY=dominant: unknown query kind 'dominant'; choose from correction, multiclass, auto"
    )
    with pytest.raises(SettingsError, match="set both BASIC_AUTH_USER and BASIC_AUTH_PASS, or neither"):
        BackendSettings.from_env({"BASIC_AUTH_USER": "me"})
    with pytest.raises(SettingsError, match=r"^ALC_IMAGE_SIZE: image_size must be a positive multiple of 16, got 100$"):
        BackendSettings.from_env({"ALC_IMAGE_SIZE": "100"})
    with pytest.raises(SettingsError, match=r"ALC_PLAR_MIN_PRECISION: min_precision must lie in \[0, 1\], got 1.5"):
        BackendSettings.from_env({"ALC_PLAR_MIN_PRECISION": "1.5"})
    assert BackendSettings.from_env({"ALC_LCM_MIN_PRECISION": "0.9"}).round.lcm.min_precision == 0.9


class _Flaky(RuntimeError):
    pass


def test_the_query_kind_left_open_follows_the_superpixel_source(tmp_path: Path) -> None:
    assert BackendSettings().round.method == BackendSettings.from_env({}).round.method == "multiclass:abc+lcm"
    assert BackendSettings.from_env({"ALC_SUPERPIXELS": "felzenszwalb"}).round.query == "multiclass"
    checkpoint = tmp_path / "mobile_sam.pt"
    checkpoint.write_bytes(b"checked when loaded")
    with_sam = BackendSettings.from_env({"SAM_CHECKPOINT": str(checkpoint), "ALC_METHOD": "sim"})
    assert (with_sam.superpixels, with_sam.round.method) == ("mobilesam", "sim")
    named = {"SAM_CHECKPOINT": str(checkpoint), "ALC_QUERY": "auto"}
    assert BackendSettings.from_env(named).round.method == "auto:abc+lcm"
    assert BackendSettings.from_env({"ALC_METHOD": "correction:abc"}).round.query == "correction"


def test_a_burst_of_submissions_while_a_job_runs_gives_one_more_run_not_a_pile() -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def train(project: int) -> None:
        runs.append(project)
        started.set()
        release.wait(5)

    runner = InProcessRunner({"train": train})
    try:
        runner.submit("train", 1)
        assert started.wait(5)
        for _ in range(100):
            runner.submit("train", 1)
        assert [job["kind"] for job in runner.status()["queued"]] == ["train"]
        release.set()
        assert runner.wait_idle(10)
        assert runs == [1, 1], "the run that began on older data is followed by exactly one more"
    finally:
        runner.stop()


def test_a_transient_failure_is_retried_and_a_lasting_one_is_kept_with_its_error() -> None:
    attempts: list[float] = []

    def flaky(project: int) -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise _Flaky("Label Studio is down")

    def broken(project: int) -> None:
        raise KeyError("no such task")

    runner = InProcessRunner({"flaky": flaky, "broken": broken}, transient=(_Flaky,), retry_delays_s=(0.05, 0.05, 0.05))
    try:
        runner.submit("flaky", 3)
        runner.submit("broken", 4)
        assert runner.wait_idle(10)
        status = runner.status()
        assert len(attempts) == 3 and status["done"] == 1
        (failure,) = status["failed"]
        assert (failure["kind"], failure["project"], failure["attempts"]) == ("broken", 4, 1)
        assert failure["error"] == "KeyError: 'no such task'"
        assert "traceback" not in failure
        with pytest.raises(ValueError, match="unknown job kind 'nope'; known: flaky, broken"):
            runner.submit("nope", 1)
    finally:
        runner.stop()


def test_preparation_parts_are_claimed_once_each_and_taken_in_when_all_are_done(tmp_path: Path) -> None:
    parts = PreparationParts(tmp_path / "preparation")
    parts.plan([11, 12, 13, 14, 15, 16, 17, 18], 3)
    assert [parts.claim(), parts.claim(), parts.claim(), parts.claim()] == [
        (0, [11, 12, 13]),
        (1, [14, 15, 16]),
        (2, [17, 18]),
        None,
    ]
    assert not parts.unclaimed() and parts.unfinished()
    parts.finish(1, {14: TaskRecord(14, "a", "a.png", 4, 4)})
    assert set(parts.take_finished()) == {14} and parts.unfinished(), "the plan stays until every part is in"
    old = time.time() - STALE_CLAIM_S - 1
    os.utime(tmp_path / "preparation" / "claim-0", (old, old))
    assert parts.claim() == (0, [11, 12, 13]), "a claim nobody finished in time is taken again"
    parts.finish(0, {11: TaskRecord(11, "b", "b.png", 4, 4)})
    parts.finish(2, {17: TaskRecord(17, "c", "c.png", 4, 4, error="broken")})
    assert set(parts.take_finished()) == {11, 14, 17}
    assert not parts.unfinished() and not list((tmp_path / "preparation").iterdir())


def test_lead_times_are_taken_only_as_finite_non_negative_numbers() -> None:
    assert lead_time_of({"lead_time": 12.5}) == 12.5
    assert lead_time_of({"lead_time": 7}) == 7.0
    for hostile in ("12", None, True, -3.0, float("nan"), float("inf"), [1], {"s": 1}):
        assert lead_time_of({"lead_time": hostile}) is None, hostile
    assert lead_time_of({}) is None


def test_timed_answers_take_live_answered_queries_by_their_predicted_classes() -> None:
    """Query 10 (2 predicted classes) was answered twice, the later answer (annotation 2) is live;
    query 11 was skipped; query 12's answer has no lead time; query 13 is an audit (1 class);
    query 14 is a multi-class query (2 classes), answered with two."""
    queries = {
        task: QueryRecord(task, 1, 0, 0, 0, 0, 0, 1, rank, kind=kind, predicted_classes=classes)
        for rank, (task, kind, classes) in enumerate(
            [
                (10, "correction", 2),
                (11, "correction", 1),
                (12, "correction", 3),
                (13, "audit", 1),
                (14, "multiclass", 2),
            ]
        )
    }
    answers = {
        1: AnswerRecord(1, 10, (2,), "2026-01-01T00:00:00", lead_time=30.0),
        2: AnswerRecord(2, 10, (3,), "2026-01-02T00:00:00", lead_time=9.5),
        3: AnswerRecord(3, 11, (), "2026-01-01T00:00:00", lead_time=4.0),
        4: AnswerRecord(4, 12, (1,), "2026-01-01T00:00:00"),
        5: AnswerRecord(5, 13, (0,), "2026-01-01T00:00:00", lead_time=6.0),
        6: AnswerRecord(6, 14, (0, 2), "2026-01-01T00:00:00", lead_time=11.0),
    }
    timed = sorted((t.kind, t.num_classes, t.seconds) for t in timed_answers(answers, queries))
    assert timed == [("correction", 1, 6.0), ("correction", 2, 9.5), ("multiclass", 2, 11.0)]


def test_answer_progress_counts_live_answers_and_the_rounds_answered_queries() -> None:
    place = {"image_task": 9, "row": 0, "col": 0, "proposed": 0, "label_before": 0}
    queries = {
        40: QueryRecord(40, superpixel=1, round=1, rank=0, **place),
        41: QueryRecord(41, superpixel=2, round=2, rank=0, **place),
        42: QueryRecord(42, superpixel=3, round=2, rank=1, **place),
        43: QueryRecord(43, superpixel=4, round=2, rank=2, **place),
    }
    answers = {
        1: AnswerRecord(1, 40, (0,), T1),
        2: AnswerRecord(2, 41, (), T1),  # a skip is an answer received
        3: AnswerRecord(3, 42, (1,), T1, deleted=True),
        4: AnswerRecord(4, 41, (2,), T2),  # the same query again: still one answer
    }
    assert answer_progress(answers, queries, 2) == {"received": 2, "round_queries": 3, "round_answered": 1}
    assert answer_progress(answers, queries, 1) == {"received": 2, "round_queries": 1, "round_answered": 1}
