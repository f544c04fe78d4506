"""Where a project stands, for people: answers over time, corrections per round, label changes per class.

:func:`report_from_records` sums up a workspace's records (answers, queries, the correction
journal) in a JSON-friendly form; ``/health`` serves it per project and ``alc-backend report``
draws it (:mod:`alc_backend.service.report_plot`). Nothing here talks to Label Studio: the
answers are those the backend has read back from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from alc_backend import IGNORE_INDEX
from alc_backend.engine.corrections import AutoCorrection
from alc_backend.service.answers import live_answers
from alc_backend.service.workspace import AnswerRecord, QueryRecord

MAX_TIME_POINTS = 200
"""The most ``(time, answers)`` points ``answers_over_time`` holds; more answers are thinned evenly."""


def report_from_records(
    answers: Mapping[int, AnswerRecord],
    queries: Mapping[int, QueryRecord],
    corrections: Sequence[AutoCorrection],
    class_names: Sequence[str],
) -> dict[str, Any]:
    """A project's report from its records.

    Returns:
        ``answers_over_time``: ``[ISO time, answers so far]`` at each live answer's time in
        Label Studio (at most :data:`MAX_TIME_POINTS`, the last one always kept);
        ``corrections_by_round``: per round and corrector, ``written`` (changes in the journal),
        ``pixels`` (their pixels), ``audited`` (answered audits of that round's proposals) and
        ``rejected`` (audits answered with another class than the one proposed);
        ``label_changes``: ``people``, a ``C x C`` count of answered regions by class before
        (row) and the class given (column), for single-class answers that changed the class,
        and ``correctors``, a ``C x C`` count of pixels the correctors moved from one class to
        another; ``class_names``.
    """
    live = live_answers(answers)
    num_classes = len(class_names)
    return {
        "class_names": list(class_names),
        "answers_over_time": _answers_over_time(live.values()),
        "corrections_by_round": _corrections_by_round(live, queries, corrections),
        "label_changes": {
            "people": _people_changes(live, queries, num_classes).tolist(),
            "correctors": _corrector_changes(corrections, num_classes).tolist(),
        },
    }


def _answers_over_time(live: Iterable[AnswerRecord]) -> list[list[Any]]:
    """``[ISO time, count]`` per answer in time order, thinned to at most ``MAX_TIME_POINTS``."""
    times = sorted(_parse_time(record.updated_at) for record in live)
    times = [time for time in times if time is not None]
    if not times:
        return []
    keep = np.unique(np.linspace(0, len(times) - 1, min(len(times), MAX_TIME_POINTS)).round().astype(int))
    return [[times[index].isoformat(), int(index) + 1] for index in keep]


def _parse_time(text: str) -> datetime | None:
    """Label Studio's ISO timestamp (``Z`` or an offset), or None for one that is not."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def _corrections_by_round(
    live: Mapping[int, AnswerRecord], queries: Mapping[int, QueryRecord], corrections: Sequence[AutoCorrection]
) -> dict[str, dict[str, dict[str, int]]]:
    """``{round: {corrector: {written, pixels, audited, rejected}}}``, rounds as strings, ascending."""
    table: dict[int, dict[str, dict[str, int]]] = {}

    def entry(round_index: int, corrector: str) -> dict[str, int]:
        counts = {"written": 0, "pixels": 0, "audited": 0, "rejected": 0}
        return table.setdefault(round_index, {}).setdefault(corrector, counts)

    for record in corrections:
        counts = entry(record.round, record.corrector)
        counts["written"] += 1
        counts["pixels"] += record.pixels
    for task, query in queries.items():
        answer = live.get(task)
        if query.kind != "audit" or query.audited_round is None or answer is None or not answer.classes:
            continue
        counts = entry(query.audited_round, query.corrector or "unknown")
        counts["audited"] += 1
        counts["rejected"] += answer.answer != query.proposed
    return {str(round_index): table[round_index] for round_index in sorted(table)}


def _people_changes(
    live: Mapping[int, AnswerRecord], queries: Mapping[int, QueryRecord], num_classes: int
) -> np.ndarray:
    """``(C, C)`` int: answered regions by class before and class given, where the two differ."""
    changes = np.zeros((num_classes, num_classes), dtype=np.int64)
    for task, record in live.items():
        query = queries.get(task)
        given = record.answer
        if query is None or given is None or query.label_before == IGNORE_INDEX:
            continue
        if query.label_before != given and max(query.label_before, given) < num_classes:
            changes[query.label_before, given] += 1
    return changes


def _corrector_changes(corrections: Sequence[AutoCorrection], num_classes: int) -> np.ndarray:
    """``(C, C)`` int: pixels the correctors moved from one class (row) to another (column)."""
    changes = np.zeros((num_classes, num_classes), dtype=np.int64)
    for record in corrections:
        for _, length, old in record.runs:
            if old != record.new_class and max(old, record.new_class) < num_classes:
                changes[old, record.new_class] += length
    return changes
