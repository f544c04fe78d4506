"""The backend's side of the round core: a workspace's image tasks as the images of a round.

Nothing here talks to Label Studio: :class:`~alc_backend.service.project_work.ProjectWork`
calls these steps around its Label Studio requests, and tests run them on a workspace alone.
:class:`WorkspaceImages` implements the round core's
:class:`~alc_backend.rounds.images.RoundImages` over a workspace (keys are the image task ids
as text): its labels are composed from the pseudo-labels, the journal of automatic
corrections in force and the live answers (:func:`compose_tasks`), so that writing or
rejecting a correction, like an arriving answer, recomposes the labels it touches. An answer
that ticked several classes is applied through the pixel labels the workspace's model
localised for it (:func:`localise_answers`), kept in the workspace; until it has them (no
model yet) it waits, and the region keeps its labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from alc_backend import IGNORE_INDEX
from alc_backend.engine.corrections import AutoCorrection
from alc_backend.engine.pseudo_labels import majority_per_superpixel
from alc_backend.engine.query_cost import (
    PAPER_COST_MODEL,
    CostModel,
    cost_summary,
    measured_cost_model,
)
from alc_backend.rounds.answers import Given, answer_of, localise_mixed_answers
from alc_backend.rounds.corrections import RoundCorrections, correct_round
from alc_backend.rounds.images import Answer, Query, VerifiedPixels
from alc_backend.rounds.queries import QueryChoice, choose_queries
from alc_backend.rounds.settings import RoundSettings
from alc_backend.rounds.training import model_config, probabilities, train_round_model
from alc_backend.service.answers import answered_queries, compose_labels, live_answers, timed_answers
from alc_backend.service.workspace import AnswerRecord, QueryRecord, Workspace
from alc_backend.training.checkpoint import load_checkpoint, save_checkpoint
from alc_backend.training.device import pick_device
from alc_backend.training.trainer import MixedRegions


class WorkspaceImages:
    """The image tasks ``tasks`` of a workspace as the round core's images.

    The queries and answers are read once, when it is made: make a new one after they change.
    """

    def __init__(self, workspace: Workspace, tasks: Sequence[int], num_classes: int) -> None:
        self.workspace = workspace
        self.tasks = tuple(tasks)
        self._num_classes = num_classes
        queries = workspace.queries()
        self._asked: dict[int, set[int]] = {}
        for record in queries.values():
            self._asked.setdefault(record.image_task, set()).add(record.superpixel)
        self._answered = answered_queries(workspace.answers(), queries)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def keys(self) -> Sequence[str]:
        return tuple(str(task) for task in self.tasks)

    def image(self, key: str) -> np.ndarray:
        return self.workspace.image(int(key))

    def superpixels(self, key: str) -> np.ndarray:
        return self.workspace.superpixels(int(key))

    def labels(self, key: str) -> np.ndarray:
        return self.workspace.labels(int(key))

    def asked(self, key: str) -> set[int]:
        return set(self._asked.get(int(key), set()))

    def mixed(self, key: str) -> MixedRegions | None:
        task = int(key)
        superpixels = self.workspace.superpixels(task)
        mixed = [(region, classes) for _, classes, region, _ in self._applied(task, superpixels) if len(classes) > 1]
        if not mixed:
            return None
        ids = np.full(superpixels.shape, -1, dtype=np.int32)
        for index, (region, _) in enumerate(mixed):
            ids[region] = index
        return MixedRegions(ids, tuple(classes for _, classes in mixed))

    def verified(self, key: str) -> VerifiedPixels:
        task = int(key)
        superpixels = self.workspace.superpixels(task)
        mask = np.zeros(superpixels.shape, dtype=bool)
        for _, _, region, _ in self._applied(task, superpixels):
            mask |= region
        before = self.workspace.before(task) if mask.any() else np.full(mask.shape, IGNORE_INDEX, np.uint8)
        return VerifiedPixels(mask, before)

    def answers(self) -> list[Answer]:
        """Every live answer of these tasks, in the order the queries were asked (round, then rank)."""
        pairs = [pair for task in self.tasks for pair in self._answered.get(task, [])]
        pairs.sort(key=lambda pair: (pair[0].round, pair[0].rank))
        return [
            answer_of(record.query(self.workspace.superpixels(record.image_task)), classes, record.round)
            for record, classes in pairs
        ]

    def _applied(self, task: int, superpixels: np.ndarray) -> list[AppliedAnswer]:
        return applied_answers(self.workspace, self._answered.get(task, []), superpixels)

    def apply_corrections(self, records: Sequence[AutoCorrection]) -> None:
        if not records:
            return
        with self.workspace.lock:
            self.workspace.save_corrections(self.workspace.corrections() + list(records))
        compose_tasks(self.workspace, {int(record.image) for record in records})

    def record_before(self, queries: Iterable[Query]) -> None:
        """Keep the labels the regions of new ``queries`` hold now, as their labels before the answers."""
        by_task: dict[int, list[Query]] = {}
        for query in queries:
            by_task.setdefault(int(query.image), []).append(query)
        for task, task_queries in by_task.items():
            labels = self.workspace.labels(task)
            before = self.workspace.before(task)
            for query in task_queries:
                region = query.region_mask(labels.shape)
                before[region] = labels[region]
            self.workspace.save_before(task, before)


def reset_round_corrections(workspace: Workspace, round_index: int) -> set[int]:
    """Take back what an interrupted end of round ``round_index`` wrote to the journal; returns the tasks touched.

    Ending the round again then decides on the same labels as the first time.
    """
    with workspace.lock:
        journal = workspace.corrections()
        touched = {int(record.image) for record in journal if record.round == round_index}
        if touched:
            workspace.save_corrections([record for record in journal if record.round != round_index])
    return touched


AppliedAnswer = tuple[QueryRecord, tuple[int, ...], np.ndarray, "int | np.ndarray"]
"""An answer as it labels its image: the query, the classes ticked, the ``(H, W)`` bool region and
what the region takes: the one class, or a mixed answer's ``(H, W)`` uint8 localised labels."""


def applied_answers(
    workspace: Workspace, answered: Sequence[tuple[QueryRecord, tuple[int, ...]]], superpixels: np.ndarray
) -> list[AppliedAnswer]:
    """The answers of one image (``answered``, in the order asked) that label it: every answer with
    one class, and every mixed answer whose localised labels the workspace holds."""
    applied: list[AppliedAnswer] = []
    for record, classes in answered:
        region = record.query(superpixels).region_mask(superpixels.shape)
        if len(classes) == 1:
            applied.append((record, classes, region, classes[0]))
            continue
        localised = workspace.localised(record.task, localised_key(classes))
        if localised is not None:
            applied.append((record, classes, region, localised))
    return applied


def localised_key(classes: Sequence[int]) -> str:
    """What a mixed answer's localised labels are kept for: the classes ticked, e.g. ``"1,4"``."""
    return ",".join(str(value) for value in classes)


def localise_answers(workspace: Workspace, tasks: Iterable[int], settings: RoundSettings) -> int:
    """Localise the live mixed answers of image tasks ``tasks`` that have no labels for their classes yet.

    The workspace's latest model (during a round, the one that chose its queries) localises them
    (:func:`~alc_backend.rounds.answers.localise_mixed_answers`); the labels are kept in the
    workspace. Returns how many were localised; 0, leaving them waiting, when no model exists yet.
    """
    answered = answered_queries(workspace.answers(), workspace.queries())
    waiting: list[tuple[int, Given]] = []
    for task in tasks:
        mixed = [
            (record, classes)
            for record, classes in answered.get(task, [])
            if len(classes) > 1 and not workspace.has_localised(record.task, localised_key(classes))
        ]
        if mixed:
            superpixels = workspace.superpixels(task)
            waiting += [(record.task, (record.query(superpixels), classes)) for record, classes in mixed]
    if not waiting:
        return 0
    model = load_workspace_model(workspace, settings)
    if model is None:
        return 0
    keys = sorted({int(given[0].image) for _, given in waiting})
    images = WorkspaceImages(workspace, keys, len(workspace.state().class_names))
    localised = localise_mixed_answers(images, model, settings, [given for _, given in waiting])
    for index, labels in localised.items():
        query_task, (_, classes) = waiting[index]
        workspace.save_localised(query_task, labels, localised_key(classes))
    return len(localised)


def compose_tasks(workspace: Workspace, tasks: Iterable[int]) -> None:
    """Rebuild the current labels of ``tasks`` from pseudo-labels, corrections in force, answers and drawn masks.

    The answers, queries and the correction journal are read once for all of them. A mixed
    answer without localised labels (:func:`localise_answers`) is left out until it has them.
    """
    tasks = list(tasks)
    if not tasks:
        return
    answered = answered_queries(workspace.answers(), workspace.queries())
    corrections: dict[str, list[AutoCorrection]] = {}
    for record in workspace.corrections():
        corrections.setdefault(record.image, []).append(record)
    for task in tasks:
        superpixels = workspace.superpixels(task)
        regions = [
            (region, value) for _, _, region, value in applied_answers(workspace, answered.get(task, []), superpixels)
        ]
        labels = compose_labels(workspace.pseudo(task), corrections.get(str(task), []), regions, workspace.manual(task))
        workspace.save_labels(task, labels)


def round_model(
    workspace: Workspace, usable: Sequence[int], after_rounds: int, settings: RoundSettings
) -> torch.nn.Module | None:
    """The model trained after ``after_rounds`` rounds: the saved one if it is that one, else a new one.

    None when no task has a labelled pixel to learn from.
    """
    state = workspace.state()
    if state.model_round == after_rounds:
        model = load_workspace_model(workspace, settings)
        if model is not None:
            return model
    if not any((workspace.labels(task) != IGNORE_INDEX).any() for task in usable):
        return None
    model = train_workspace_model(
        workspace, WorkspaceImages(workspace, usable, len(state.class_names)), settings, after_rounds
    )
    with workspace.lock:
        state = workspace.state()
        state.model_round = after_rounds
        workspace.save_state(state)
    return model


def label_unlabelled(
    workspace: Workspace, model: torch.nn.Module, usable: Sequence[int], settings: RoundSettings
) -> list[int]:
    """Give the tasks that had no pseudo-label source the model's labels as pseudo-labels; returns them.

    Each superpixel takes the class the model predicts for most of its pixels.
    """
    records = workspace.tasks()
    unlabelled = [task for task in usable if records[task].pseudo_source is None]
    images = WorkspaceImages(workspace, unlabelled, len(workspace.state().class_names))
    for key, probs in probabilities(images, model, images.keys(), settings):
        task = int(key)
        labels = majority_per_superpixel(probs.argmax(axis=0).astype(np.uint8), workspace.superpixels(task))
        workspace.save_pseudo(task, labels)
        records[task].pseudo_source = f"model majority per superpixel after round {workspace.state().model_round}"
    compose_tasks(workspace, unlabelled)
    if unlabelled:
        workspace.save_tasks(records)
    return unlabelled


def choose_round_queries(
    workspace: Workspace,
    model: torch.nn.Module,
    usable: Sequence[int],
    settings: RoundSettings,
    round_index: int,
    cost_model: CostModel = PAPER_COST_MODEL,
) -> QueryChoice:
    """Round ``round_index``'s queries, with the audits the last round chose; keeps each task's image score.

    ``cost_model`` prices the queries of a budget in seconds (:func:`answer_cost_model`).
    """
    images = WorkspaceImages(workspace, usable, len(workspace.state().class_names))
    audits = workspace.proposals(round_index)[1]
    choice = choose_queries(images, model, settings, round_index, audits, cost_model)
    records = workspace.tasks()
    for key, score in choice.image_scores.items():
        records[int(key)].score = score
    workspace.save_tasks(records)
    return choice


def record_queries(workspace: Workspace, new: dict[int, QueryRecord]) -> None:
    """Add ``new`` queries (query task id -> record) to the workspace, keeping their regions' labels from before."""
    images = WorkspaceImages(workspace, [], len(workspace.state().class_names))
    images.record_before(record.query(workspace.superpixels(record.image_task)) for record in new.values())
    with workspace.lock:
        queries = workspace.queries()
        queries.update(new)
        workspace.save_queries(queries)


def end_round(
    workspace: Workspace, usable: Sequence[int], settings: RoundSettings, round_index: int
) -> RoundCorrections | None:
    """End round ``round_index`` with the answers in the workspace: the round core's :func:`correct_round`.

    A retried end of round first takes back what an interrupted one wrote. The correctors' new
    proposals, the next round's audits of them and the correctors' notes are kept in the
    workspace. None (labels recomposed, no corrector run) when no model has been trained yet.
    """
    model = load_workspace_model(workspace, settings)
    if model is None:
        compose_tasks(workspace, usable)
        return None
    touched = reset_round_corrections(workspace, round_index)
    localise_answers(workspace, usable, settings)
    compose_tasks(workspace, set(usable) | touched)
    state = workspace.state()
    images = WorkspaceImages(workspace, usable, len(state.class_names))
    pending, _ = workspace.proposals(round_index)
    outcome = correct_round(images, model, images.answers(), settings, round_index, pending, state.class_names)
    workspace.save_proposals(round_index + 1, outcome.proposals, outcome.audits)
    workspace.save_round_notes(round_index, outcome.notes)
    return outcome


def train_workspace_model(
    workspace: Workspace, images: WorkspaceImages, settings: RoundSettings, after_rounds: int
) -> torch.nn.Module:
    """Train the model of ``after_rounds`` finished rounds on the current labels and save it as the checkpoint."""
    model = train_round_model(images, settings)
    config = model_config(settings, images.num_classes)
    save_checkpoint(workspace.checkpoint_path, model, config, {"round": str(after_rounds)})
    return model


def load_workspace_model(workspace: Workspace, settings: RoundSettings) -> torch.nn.Module | None:
    """The workspace's latest model, or None when none was trained yet."""
    if not workspace.checkpoint_path.is_file():
        return None
    model, _, _ = load_checkpoint(workspace.checkpoint_path, pick_device(settings.device))
    return model


def corrector_status(
    answers: Mapping[int, AnswerRecord],
    queries: Mapping[int, QueryRecord],
    journal: Sequence[AutoCorrection],
    notes: Mapping[str, Mapping[str, Any]],
    correctors: Sequence[str],
) -> dict[str, dict[str, object]]:
    """For /health: per corrector of the method, its corrections and what its audits showed.

    Computed from a workspace's records: its ``answers``, ``queries``, correction ``journal``
    and round ``notes`` (:meth:`~alc_backend.service.workspace.Workspace.round_notes`).
    ``corrections``/``corrected_pixels`` count the changes written; ``audited``/``confirmed``/
    ``precision`` add up every answered audit so far; the last ended round's notes give the
    classes it wrote then (``trusted_classes``) and, if it abstained, why (``abstained``).
    """
    audits = [
        (queries[task], record.answer)
        for task, record in live_answers(answers).items()
        if task in queries and queries[task].kind == "audit" and record.classes
    ]
    last = notes[max(notes, key=int)] if notes else {}
    status: dict[str, dict[str, object]] = {}
    for corrector in correctors:
        mine = [r for r in journal if r.corrector == corrector]
        answered = [(query, answer) for query, answer in audits if query.corrector == corrector]
        confirmed = sum(answer == query.proposed for query, answer in answered)
        last_notes = last.get(corrector, {})
        status[corrector] = {
            "corrections": len(mine),
            "corrected_pixels": sum(r.pixels for r in mine),
            "audited": len(answered),
            "confirmed": confirmed,
            "precision": confirmed / len(answered) if answered else None,
            "trusted_classes": last_notes.get("trusted_classes", []),
            "abstained": last_notes.get("abstained"),
        }
    return status


def answer_cost_model(workspace: Workspace, min_answers: int) -> CostModel:
    """Seconds per query: the median of the annotators' measured times where ``min_answers`` of a kind
    and class count are in, the user study's table elsewhere."""
    return measured_cost_model(timed_answers(workspace.answers(), workspace.queries()), PAPER_COST_MODEL, min_answers)


def answer_seconds_status(
    answers: Mapping[int, AnswerRecord], queries: Mapping[int, QueryRecord], min_answers: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """For /health: per query kind and class count, the timed ``answers`` to ``queries``, their
    median and the seconds in use."""
    return cost_summary(timed_answers(answers, queries), PAPER_COST_MODEL, min_answers)


def answer_progress(
    answers: Mapping[int, AnswerRecord], queries: Mapping[int, QueryRecord], round_index: int
) -> dict[str, int]:
    """For /health: ``received``, the live ``answers`` in all (skips included); ``round_queries`` and
    ``round_answered``, the ``queries`` of round ``round_index`` and how many of them have an answer."""
    live = live_answers(answers)
    in_round = [task for task, query in queries.items() if query.round == round_index]
    return {
        "received": len(live),
        "round_queries": len(in_round),
        "round_answered": sum(task in live for task in in_round),
    }
