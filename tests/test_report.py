"""A project's report: the numbers /health serves, worked out by hand, and the PNG that draws them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from alc_backend.engine.corrections import AutoCorrection
from alc_backend.server import create_app
from alc_backend.service import report as report_module
from alc_backend.service.backend import Backend
from alc_backend.service.report import report_from_records
from alc_backend.service.report_plot import draw_report
from alc_backend.service.settings import BackendSettings
from alc_backend.service.workspace import AnswerRecord, ProjectState, QueryRecord, TaskRecord, Workspace

CLASSES = ["background", "road", "car"]


def query(task: int, label_before: int, proposed: int, kind: str = "correction", **extra: object) -> QueryRecord:
    return QueryRecord(task, 1, 0, 0, 0, proposed, label_before, round=1, rank=0, kind=kind, **extra)


def answer(annotation: int, task: int, classes: tuple[int, ...], at: str, deleted: bool = False) -> AnswerRecord:
    return AnswerRecord(annotation, task, classes, at, deleted=deleted)


QUERIES = {
    10: query(10, label_before=0, proposed=0),
    11: query(11, label_before=1, proposed=1),
    12: query(12, label_before=255, proposed=255),
    13: query(13, label_before=0, proposed=2, kind="audit", corrector="lcm", audited_round=1),
    14: query(14, label_before=0, proposed=1, kind="audit", corrector="lcm", audited_round=1),
    15: query(15, label_before=2, proposed=2, kind="multiclass"),
}
ANSWERS = {
    1: answer(1, 10, (2,), "2026-12-01T10:00:00Z"),  # background -> car
    2: answer(2, 11, (1,), "2026-12-01T10:00:30.5Z"),  # confirmed: no change
    3: answer(3, 12, (0,), "2026-12-01T10:01:00Z"),  # had no label: not a change between classes
    4: answer(4, 13, (2,), "2026-12-01T10:02:00+00:00"),  # audit confirmed
    5: answer(5, 14, (0,), "2026-12-01T10:03:00Z"),  # audit rejected; its region was background before
    6: answer(6, 15, (0, 2), "2026-12-01T10:04:00Z"),  # mixed: counts as an answer, changes no class
    7: answer(7, 11, (0,), "2026-12-01T09:59:00Z", deleted=True),  # deleted: not live
}
CORRECTIONS = [
    AutoCorrection("lcm", 2, "a", 3, 0, 2, 0.9, runs=((0, 4, 0), (10, 2, 1))),
    AutoCorrection("plar", 2, "a", 4, 1, 1, 0.8, runs=((20, 5, 1),)),
    AutoCorrection("lcm", 3, "b", 1, 1, 0, 0.95, runs=((0, 3, 1),)),
]


def test_the_report_counts_by_hand() -> None:
    report = report_from_records(ANSWERS, QUERIES, CORRECTIONS, CLASSES)
    assert report["class_names"] == CLASSES
    assert report["answers_over_time"] == [
        ["2026-12-01T10:00:00+00:00", 1],
        ["2026-12-01T10:00:30.500000+00:00", 2],
        ["2026-12-01T10:01:00+00:00", 3],
        ["2026-12-01T10:02:00+00:00", 4],
        ["2026-12-01T10:03:00+00:00", 5],
        ["2026-12-01T10:04:00+00:00", 6],
    ]
    assert report["corrections_by_round"] == {
        "1": {"lcm": {"written": 0, "pixels": 0, "audited": 2, "rejected": 1}},
        "2": {
            "lcm": {"written": 1, "pixels": 6, "audited": 0, "rejected": 0},
            "plar": {"written": 1, "pixels": 5, "audited": 0, "rejected": 0},
        },
        "3": {"lcm": {"written": 1, "pixels": 3, "audited": 0, "rejected": 0}},
    }
    # people: 0->2 (task 10), 0->2 (audit 13, region was background), 0->0 for 14 is no change
    assert report["label_changes"]["people"] == [[0, 0, 2], [0, 0, 0], [0, 0, 0]]
    # correctors: 4 px 0->2 and 2 px 1->2 (lcm, round 2), plar's 1->1 is no change, 3 px 1->0
    assert report["label_changes"]["correctors"] == [[0, 0, 4], [3, 0, 2], [0, 0, 0]]


def test_answer_times_are_thinned_evenly_keeping_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_module, "MAX_TIME_POINTS", 3)
    points = report_from_records(ANSWERS, QUERIES, [], CLASSES)["answers_over_time"]
    assert [count for _, count in points] == [1, 3, 6]  # indices 0, 2.5 -> 2 (round half to even), 5


def test_the_report_png_has_its_five_panels_and_refuses_a_health_without_a_report(tmp_path: Path) -> None:
    report = report_from_records(ANSWERS, QUERIES, CORRECTIONS, CLASSES)
    seconds = {"correction": {"1": {"answers": 4, "median_s": 5.5}, "2": {"answers": 0, "median_s": None}}}
    health = {"round": 3, "model_version": "alc-r2", "tasks": 2, "answer_seconds": seconds, "report": report}
    out = tmp_path / "report.png"
    draw_report("7", health, out)
    with Image.open(out) as image:
        assert image.size == (1600, 1000)
    empty = report_from_records({}, {}, [], CLASSES)
    draw_report("7", {**health, "answer_seconds": {}, "report": empty}, tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"project 7 has no report in /health \(is the backend older"):
        draw_report("7", {"round": 1}, out)


WORKSPACE_FILES = ("state", "tasks", "corrections", "queries", "answers", "round_notes")
"""The :class:`Workspace` methods that /health calls, each reading one file of a project's workspace."""


def test_health_reads_each_workspace_file_once_per_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """answers.json and queries.json grow with every query: /health reads them once per project,
    not once per part of its answer, and serves the same numbers as the records give."""
    settings = BackendSettings(model_dir=tmp_path / "workspace", label_studio_url="http://127.0.0.1:9", api_key="x")
    backend = Backend(settings, retry_delays_s=())
    for project in (3, 4):
        workspace = backend.workspace(project)
        workspace.save_state(ProjectState(project, CLASSES, "<View/>", query_project=project + 10, round=1))
        workspace.save_tasks({1: TaskRecord(1, "a", "a.png", 4, 4)})
        workspace.save_queries(QUERIES)
        workspace.save_answers(ANSWERS)
        workspace.save_corrections(CORRECTIONS)
        workspace.save_round_notes(3, {"lcm": {"trusted_classes": [0, 2]}})
    reads: Counter[tuple[int, str]] = Counter()

    def counted(name: str) -> Any:
        read = getattr(Workspace, name)

        def reading(self: Workspace) -> Any:
            reads[(self.project, name)] += 1
            return read(self)

        return reading

    for name in WORKSPACE_FILES:
        monkeypatch.setattr(Workspace, name, counted(name))
    try:
        health = create_app(settings, backend).test_client().get("/health")
    finally:
        backend.runner.stop()
    assert health.status_code == 200
    assert reads == {(project, name): 1 for project in (3, 4) for name in WORKSPACE_FILES}
    served = health.json["projects"]["3"]
    assert served["report"] == report_from_records(ANSWERS, QUERIES, CORRECTIONS, CLASSES)
    assert served["answers"] == {"received": 6, "round_queries": 6, "round_answered": 6}
    assert served["correctors"] == {
        "lcm": {
            "corrections": 2,
            "corrected_pixels": 9,
            "audited": 2,
            "confirmed": 1,
            "precision": 0.5,
            "trusted_classes": [0, 2],
            "abstained": None,
        }
    }
