"""Answers to queries: merging Label Studio's events, and labels from answers.

Every answer is read from Label Studio itself (:func:`answer_from_annotation`), never from a
webhook's body. Label Studio may deliver webhook events twice or out of order, and annotators
may update or delete answers. :func:`record_event` keeps, per annotation, the newest state
seen; a deletion is final (Label Studio never reuses annotation ids). :func:`compose_labels` rebuilds an
image's labels from its pseudo-labels, the automatic corrections in force and the live answers
(each over its query's region: one class, or a mixed answer's localised pixel labels), so that
re-applying the same answers always gives the same labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alc_backend import IGNORE_INDEX
from alc_backend.engine.corrections import AutoCorrection, apply_corrections
from alc_backend.engine.query_cost import TimedAnswer
from alc_backend.labelstudio.config import LabelConfigError, QueryProjectConfig
from alc_backend.labelstudio.payloads import answer_classes
from alc_backend.service.workspace import AnswerRecord, QueryRecord


def record_event(answers: dict[int, AnswerRecord], event: AnswerRecord) -> bool:
    """Merge one annotation event into ``answers`` (annotation id -> record); True if it changed.

    A deletion always wins and stays; a creation or update replaces the stored state unless the
    stored one is newer (``updated_at`` compared as ISO-8601 strings of one time zone).
    """
    known = answers.get(event.annotation)
    if known is not None and known.deleted:
        return False
    if event.deleted:
        answers[event.annotation] = AnswerRecord(
            event.annotation, known.query_task if known else event.query_task, (), event.updated_at, True
        )
        return True
    if known is not None and known.updated_at > event.updated_at:
        return False
    if known == event:
        return False
    answers[event.annotation] = event
    return True


def answer_from_annotation(annotation: dict[str, Any], query_task: int, config: QueryProjectConfig) -> AnswerRecord:
    """The answer that a query task's annotation, as Label Studio returned it, gives.

    A skipped (cancelled) annotation, or one with no class ticked, answers no class. Raises
    LabelConfigError when it ticks a choice that is not a class of ``config``, or ValueError
    when it has no integer ``id``.
    """
    annotation_id = annotation.get("id")
    if not isinstance(annotation_id, int) or isinstance(annotation_id, bool):
        raise ValueError(f"an annotation of task {query_task} has no integer id: {annotation_id!r}")
    classes: tuple[int, ...] = ()
    if not annotation.get("was_cancelled"):
        results = annotation.get("result") or []
        if not isinstance(results, list):
            raise LabelConfigError(f"the result of annotation {annotation_id} is not a list")
        classes = answer_classes(results, config)
    updated_at = str(annotation.get("updated_at") or "")
    return AnswerRecord(annotation_id, query_task, classes, updated_at, lead_time=lead_time_of(annotation))


def lead_time_of(annotation: Mapping[str, Any]) -> float | None:
    """The seconds Label Studio measured an annotator spent on ``annotation`` (its ``lead_time``),
    or None when it holds no finite, non-negative number."""
    value = annotation.get("lead_time")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def timed_answers(answers: Mapping[int, AnswerRecord], queries: Mapping[int, QueryRecord]) -> list[TimedAnswer]:
    """The live answers with a lead time, as the cost model measures them: by query kind (an audit
    is a correction query) and the classes the querying model predicted in the region."""
    timed = []
    for query_task, record in live_answers(answers).items():
        query = queries.get(query_task)
        if query is None or record.lead_time is None or not record.classes:
            continue
        kind = "multiclass" if query.kind == "multiclass" else "correction"
        timed.append(TimedAnswer(kind, max(query.predicted_classes, 1), record.lead_time))
    return timed


def live_answers(answers: Mapping[int, AnswerRecord]) -> dict[int, AnswerRecord]:
    """Query task id -> its current answer: the newest annotation not deleted (ties: higher id)."""
    best: dict[int, AnswerRecord] = {}
    for record in answers.values():
        if record.deleted:
            continue
        current = best.get(record.query_task)
        if current is None or (record.updated_at, record.annotation) > (current.updated_at, current.annotation):
            best[record.query_task] = record
    return best


def answered_queries(
    answers: Mapping[int, AnswerRecord], queries: Mapping[int, QueryRecord]
) -> dict[int, list[tuple[QueryRecord, tuple[int, ...]]]]:
    """Image task id -> its answered queries with the classes ticked, in the order they were asked.

    Only live answers with a class count; the order is by round, then rank.
    """
    result: dict[int, list[tuple[QueryRecord, tuple[int, ...]]]] = {}
    for query_task, record in live_answers(answers).items():
        query = queries.get(query_task)
        if query is None or not record.classes:
            continue
        result.setdefault(query.image_task, []).append((query, record.classes))
    for answered in result.values():
        answered.sort(key=lambda pair: (pair[0].round, pair[0].rank))
    return result


def compose_labels(
    pseudo: np.ndarray,
    corrections: Sequence[AutoCorrection],
    answered: Sequence[tuple[np.ndarray, int | np.ndarray]],
    manual: np.ndarray | None = None,
) -> np.ndarray:
    """An image's current ``(H, W)`` uint8 labels.

    Args:
        pseudo: ``(H, W)`` initial labels, 255 = none.
        corrections: this image's automatic corrections in force, in the order they were made.
        answered: ``((H, W) bool region, class)`` of each answer, in the order asked, where a
            mixed answer's class is its ``(H, W)`` uint8 localised pixel labels; an answer
            labels its query's region and overrides automatic corrections.
        manual: ``(H, W)`` a mask an annotator drew on the image itself; where it has a class
            (not 255) it overrides everything else.
    """
    labels = apply_corrections(pseudo, corrections)
    for region, answer in answered:
        labels[region] = answer if isinstance(answer, int) else answer[region]
    if manual is not None:
        if manual.shape != labels.shape:
            raise ValueError(f"the drawn mask is {manual.shape} but the image is {labels.shape}")
        labels = np.where(manual != IGNORE_INDEX, manual, labels).astype(np.uint8)
    return labels
