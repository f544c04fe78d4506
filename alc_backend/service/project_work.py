"""The slow work of the backend, run as jobs: prepare, reconcile, finish a round, write back.

- ``prepare``: download the image project's images, compute superpixels and pseudo-labels,
  write them back as predictions, and open the first round when a query project is linked;
- ``reconcile``: re-apply answers that arrived by webhook (each expands to its superpixel at
  once) and drawn masks, and finish the round when every query has an answer;
- ``export``: write the corrected data set in the VOC layout under ``MODEL_DIR/exports/``;
- ``write_back``: write the current masks to the image tasks as predictions (skipping tasks
  that already hold the current model version's, so a retried job writes each once);
- ``recover``: queued for every project when the backend starts: sync the answers given while
  it was down, recompose every image's labels, finish a fully answered round, write back;
- ``finish_round``: pull all answers from Label Studio (the source of truth), end the round
  with the round core (audits settle, the correctors write what their audits trust, the next
  round's audits are drawn), retrain, write the corrected masks back to the image tasks under a
  new model version, and open the next round: its queries (correction or multi-class) and audits, in one order.

Every job may run again after a failure without doing its work twice in Label Studio.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from alc_backend import IGNORE_INDEX
from alc_backend.engine.pseudo_labels import PseudoLabelError
from alc_backend.labelstudio.client import LabelStudioClient, LabelStudioUnavailable
from alc_backend.labelstudio.config import (
    ImageProjectConfig,
    LabelConfigError,
    QueryProjectConfig,
    parse_image_config,
    parse_query_config,
    query_label_config,
    query_question,
)
from alc_backend.labelstudio.payloads import brush_results, query_results, validate_results
from alc_backend.preannotation.pseudo_labels import DetectorSource, load_detector
from alc_backend.preannotation.superpixel_sources import superpixel_maker
from alc_backend.rounds.images import Query
from alc_backend.service.answers import answer_from_annotation, live_answers, record_event
from alc_backend.service.downloads import TaskFiles
from alc_backend.service.export import export_project
from alc_backend.service.notes import MemoryNotes, WorkNotes
from alc_backend.service.parts import PreparationParts
from alc_backend.service.rounds import (
    answer_cost_model,
    answer_progress,
    choose_round_queries,
    compose_tasks,
    end_round,
    label_unlabelled,
    localise_answers,
    record_queries,
    round_model,
)
from alc_backend.service.settings import BackendSettings
from alc_backend.service.sources import TaskDataError, decode_image, latest_manual_mask, pseudo_labels, task_name
from alc_backend.service.workspace import AnswerRecord, ProjectState, QueryRecord, TaskRecord, Workspace

logger = logging.getLogger(__name__)

UNCERTAINTY_SAMPLING = "Uncertainty sampling"
"""Label Studio's queue mode that serves the lowest prediction score first."""


class ProjectWork:
    """The jobs over image projects' workspaces, and what webhooks leave for them to do; thread-safe.

    Args:
        settings: the backend's settings.
        connect: returns a Label Studio client (raises LabelStudioUnavailable without one).
        notes: where webhooks leave marks and jobs note errors (default: in this process).
        submit: queues another job (``kind``, project); None runs follow-up work at once.
    """

    def __init__(
        self,
        settings: BackendSettings,
        connect: Callable[[], LabelStudioClient],
        notes: WorkNotes | None = None,
        submit: Callable[[str, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.connect = connect
        self.notes: WorkNotes = notes if notes is not None else MemoryNotes()
        self.submit = submit
        self._workspaces: dict[int, Workspace] = {}
        self._detectors: dict[tuple[str, ...], DetectorSource] = {}
        self._lock = threading.RLock()

    def workspace(self, project: int) -> Workspace:
        with self._lock:
            if project not in self._workspaces:
                self._workspaces[project] = Workspace(self.settings.model_dir, project)
            return self._workspaces[project]

    def note_error(self, project: int, message: str) -> None:
        """Keep ``message`` for ``/health`` (see :mod:`alc_backend.service.notes`), and log it."""
        self.notes.note_error(project, message)

    def prepare(self, project: int) -> None:
        """Job: bring every task of the image project into the workspace; open round 1 if linked.

        More new tasks than ``settings.prepare_chunk`` are split into parts that
        ``prepare_part`` jobs take in parallel (on as many workers as there are); each finished
        part queues ``prepare`` again, which takes in the finished parts and goes on once the
        last is in.
        """
        workspace = self.workspace(project)
        client = self.connect()
        config = parse_image_config(workspace.state().label_config)
        parts = PreparationParts(workspace.root / "preparation")
        records = workspace.tasks()
        from_parts = parts.take_finished()
        records.update(from_parts)
        workspace.save_tasks(records)
        if parts.unfinished():
            if self.submit is not None:
                self.submit("prepare_part", project)
            return
        tasks = client.list_tasks(project)
        new = [task for task in tasks if int(task["id"]) not in records or records[int(task["id"])].error]
        if len(new) > self.settings.prepare_chunk and self.submit is not None:
            parts.plan([int(task["id"]) for task in new], self.settings.prepare_chunk)
            self.submit("prepare_part", project)
            return
        for task in tqdm(new, desc=f"prepare project {project}", unit="image", disable=not new):
            records[int(task["id"])] = self._prepare_task(workspace, client, task, config)
        workspace.save_tasks(records)
        with workspace.lock:
            state = workspace.state()
            state.prepared = True
            workspace.save_state(state)
        if state.query_project is not None and state.round == 0:
            self._open_round(workspace, client, 1)
        else:
            self._write_back(workspace, client, [*from_parts, *(int(task["id"]) for task in new)])

    def prepare_part(self, project: int) -> None:
        """Job: prepare one part of a split preparation, queueing another ``prepare_part`` first (fan-out)."""
        workspace = self.workspace(project)
        parts = PreparationParts(workspace.root / "preparation")
        claimed = parts.claim()
        if claimed is None:
            return
        index, task_ids = claimed
        if self.submit is not None and parts.unclaimed():
            self.submit("prepare_part", project)
        client = self.connect()
        config = parse_image_config(workspace.state().label_config)
        records = {}
        for task_id in tqdm(task_ids, desc=f"prepare project {project}, part {index}", unit="image"):
            records[task_id] = self._prepare_task(workspace, client, client.get_task(task_id), config)
        parts.finish(index, records)
        if self.submit is not None:
            self.submit("prepare", project)

    def _prepare_task(
        self, workspace: Workspace, client: LabelStudioClient, task: dict[str, Any], config: ImageProjectConfig
    ) -> TaskRecord:
        """Bring one task into the workspace. Whatever goes wrong with it becomes its record's
        ``error`` (shown in ``/health``), and the other tasks go on; only Label Studio itself
        being unreachable stops the job, which is then retried."""
        task_id = int(task["id"])
        reference = str(task.get("data", {}).get(config.image_key) or "")
        record = TaskRecord(task_id, task_name(task, reference), reference)
        try:
            self._prepare_task_data(workspace, TaskFiles(client, self.settings.source_rules()), task, config, record)
        except LabelStudioUnavailable:
            raise
        except (TaskDataError, LabelConfigError, PseudoLabelError) as error:
            record.error = str(error) if str(error).startswith(f"task {task_id}:") else f"task {task_id}: {error}"
        except Exception as error:
            logger.exception("preparing task %s of project %s failed", task_id, workspace.project)
            record.error = f"task {task_id}: {type(error).__name__}: {error}"
        if record.error:
            self.note_error(workspace.project, record.error)
        return record

    def _prepare_task_data(
        self,
        workspace: Workspace,
        files: TaskFiles,
        task: dict[str, Any],
        config: ImageProjectConfig,
        record: TaskRecord,
    ) -> None:
        """Image, superpixels, pseudo-labels and drawn mask of ``task``, saved; fills ``record``."""
        task_id = record.task
        if not record.image:
            raise TaskDataError(f"task {task_id} has no '{config.image_key}' in its data")
        try:
            data = files.read(record.image)
        except TaskDataError as error:
            raise TaskDataError(f"task {task_id}: image {error}") from error
        image = decode_image(data, f"task {task_id}: image {record.image}", self.settings.max_image_pixels)
        shape = (image.shape[0], image.shape[1])
        labels, source = pseudo_labels(task, config, shape, self.settings.pseudo_mask_key, files.read)
        manual = latest_manual_mask(task.get("annotations") or [], config, shape)
        workspace.save_image(task_id, image)
        superpixels = self._prepare_superpixels(workspace, task_id, image)
        if source is None and self.settings.pseudo_detector:
            detector = self._detector(config.class_names)
            detected = detector(record.name, image, superpixels)
            if detected is not None:
                labels, source = detected, detector.name
        workspace.save_pseudo(task_id, labels)
        workspace.save_manual(task_id, manual)
        record.height, record.width = shape
        record.pseudo_source = source
        compose_tasks(workspace, [task_id])

    def _prepare_superpixels(self, workspace: Workspace, task_id: int, image: np.ndarray) -> np.ndarray:
        """The task's superpixels from the configured source, saved; kept when the image and settings are unchanged."""
        config = self.settings.superpixel_config()
        key = f"{hashlib.sha256(image.tobytes()).hexdigest()} {image.shape} {config.fingerprint()}"
        superpixels = workspace.cached_superpixels(task_id, key)
        if superpixels is None:
            superpixels = superpixel_maker(config)(image)
            workspace.save_superpixels(task_id, superpixels, key)
        return superpixels

    def _detector(self, class_names: tuple[str, ...]) -> DetectorSource:
        """The text-prompted detector of ``ALC_PSEUDO_DETECTOR`` for these classes, loaded once."""
        with self._lock:
            if class_names not in self._detectors:
                spec = self.settings.pseudo_detector
                self._detectors[class_names] = DetectorSource(
                    load_detector(spec, class_names),
                    class_names,
                    box_threshold=self.settings.pseudo_box_threshold,
                    name=f"detector:{spec}",
                )
            return self._detectors[class_names]

    def export(self, project: int) -> None:
        """Job: write the project's corrected data set to ``MODEL_DIR/exports/project-<id>/`` (VOC layout)."""
        export_project(
            self.connect(),
            project,
            self.export_folder(project),
            self.settings.source_rules(),
            self.settings.max_image_pixels,
        )

    def export_folder(self, project: int) -> Path:
        return self.settings.model_dir / "exports" / f"project-{project}"

    def write_back(self, project: int) -> None:
        """Job: write every task's current labels as a prediction of the current model version."""
        workspace = self.workspace(project)
        self._write_back(workspace, self.connect(), self.usable_tasks(workspace))

    def recover(self, project: int) -> None:
        """Job, queued for every project when the backend starts: catch up on what happened while it was down.

        An unprepared project is prepared. Otherwise every answer is synced from Label Studio
        (webhooks sent meanwhile were lost), every drawn mask read again and every image's labels
        recomposed; then a round whose queries are all answered is finished, or else the
        current masks are written back where Label Studio lacks them.
        """
        workspace = self.workspace(project)
        state = workspace.state()
        if not state.prepared:
            self.prepare(project)
            return
        client = self.connect()
        if state.query_project is not None:
            self._sync_answers(workspace, client, state)
        usable = self.usable_tasks(workspace)
        self._read_drawn_masks(workspace, set(usable))
        localise_answers(workspace, usable, self.settings.round)
        compose_tasks(workspace, usable)
        state = workspace.state()
        if state.round_open and self._round_answered(workspace, state.round):
            self.finish_round(project)
        else:
            self._write_back(workspace, client, usable)

    def reconcile(self, project: int) -> None:
        """Job: take in the answers and drawn masks that changed; finish the round when all are answered.

        Each annotation a webhook named is read back from Label Studio: what Label Studio holds
        is recorded (a deletion only once Label Studio has no such annotation), whatever the
        webhook said. When Label Studio cannot be reached, the marks are put back for the retry.
        """
        workspace = self.workspace(project)
        annotations, marked = self.notes.take(project)
        drawn = marked if marked is not None else {t for t, record in workspace.tasks().items() if not record.error}
        try:
            answered = self._confirm_answers(workspace, annotations) if annotations else set()
            if drawn:
                self._read_drawn_masks(workspace, drawn)
        except LabelStudioUnavailable:
            self.notes.mark_answers(project, annotations)
            self.notes.mark_drawn(project, marked)
            raise
        localise_answers(workspace, answered, self.settings.round)
        compose_tasks(workspace, answered | drawn)
        state = workspace.state()
        if annotations:
            progress = answer_progress(workspace.answers(), workspace.queries(), state.round)
            logger.info(
                "project %s: answers: %d received; round %d: %d of %d queries answered",
                project,
                progress["received"],
                state.round,
                progress["round_answered"],
                progress["round_queries"],
            )
        if state.round_open and self._round_answered(workspace, state.round):
            if self.submit is None:
                self.finish_round(project)
            else:
                self.submit("finish_round", project)

    def _confirm_answers(self, workspace: Workspace, annotations: set[int]) -> set[int]:
        """Record what Label Studio holds of ``annotations``; returns the image tasks whose answers changed."""
        client = self.connect()
        config = parse_query_config(query_label_config(workspace.state().class_names))
        queries = workspace.queries()
        events = []
        for annotation_id in sorted(annotations):
            found = client.get_annotation(annotation_id)
            if found is None:
                events.append(AnswerRecord(annotation_id, -1, (), "", deleted=True))
                continue
            query_task = found.get("task")
            if not isinstance(query_task, int) or query_task not in queries:
                continue
            try:
                events.append(answer_from_annotation(found, query_task, config))
            except LabelConfigError as error:
                self.note_error(workspace.project, f"annotation {annotation_id} of task {query_task}: {error}")
        with workspace.lock:
            answers = workspace.answers()
            known = [event for event in events if not event.deleted or event.annotation in answers]
            changed = [event for event in known if record_event(answers, event)]
            if changed:
                workspace.save_answers(answers)
        tasks = {answers[event.annotation].query_task for event in changed}
        return {queries[task].image_task for task in tasks if task in queries}

    def _read_drawn_masks(self, workspace: Workspace, tasks: set[int]) -> None:
        """Fetch the newest annotation of each image task in ``tasks`` and keep its mask (or drop the old one)."""
        client = self.connect()
        config = parse_image_config(workspace.state().label_config)
        records = workspace.tasks()
        for task in tasks:
            record = records.get(task)
            if record is None or record.error:
                continue
            annotations = client.list_annotations(task)
            try:
                mask = latest_manual_mask(annotations, config, (record.height, record.width))
            except LabelConfigError as error:
                self.note_error(workspace.project, f"task {task}: the drawn mask cannot be used: {error}")
                continue
            workspace.save_manual(task, mask)

    def finish_round(self, project: int) -> None:
        """Job: end the open round: auto-correct, retrain, write back, open the next round.

        With no round open (the last one ended but the next could not be opened, or none was
        opened yet), it opens the next one. An image project without a query project gets a
        model trained on its labels, which then labels the tasks that had no pseudo-labels.
        """
        workspace = self.workspace(project)
        state = workspace.state()
        if not state.prepared:
            self.prepare(project)
            return
        client = self.connect()
        if state.query_project is None:
            usable = self.usable_tasks(workspace)
            model = self._round_model(workspace, usable, state.round)
            if model is not None:
                self._write_back(workspace, client, label_unlabelled(workspace, model, usable, self.settings.round))
            return
        if not state.round_open:
            self._open_round(workspace, client, state.round + 1)
            return
        self._sync_answers(workspace, client, state)
        outcome = end_round(workspace, self.usable_tasks(workspace), self.settings.round, state.round)
        if outcome is not None:
            logger.info("project %s: round %d ended: %s", state.project, state.round, _describe(outcome.notes))
        with workspace.lock:
            state = workspace.state()
            state.round_open = False
            state.model_version = f"alc-r{state.round}"
            workspace.save_state(state)
        self._retire_unanswered(workspace, client, state)
        self._open_round(workspace, client, state.round + 1)

    def _retire_unanswered(self, workspace: Workspace, client: LabelStudioClient, state: ProjectState) -> None:
        """Delete the ended round's query tasks that hold no annotation, and forget their queries.

        The query project then serves only the open round's questions, and a superpixel nobody
        answered can be asked again. An annotation that reaches such a task in the moment
        between the round's end and its deletion answers a query the backend no longer knows:
        it is ignored.
        """
        assert state.query_project is not None
        retired = []
        for task in client.list_tasks(state.query_project):
            data = task.get("data") or {}
            if data.get("image_project") != state.project or data.get("round") != state.round:
                continue
            if task.get("annotations") or task.get("total_annotations") or task.get("cancelled_annotations"):
                continue
            client.delete_task(int(task["id"]))
            retired.append(int(task["id"]))
        with workspace.lock:
            queries = workspace.queries()
            workspace.save_queries({task: query for task, query in queries.items() if task not in retired})
        if retired:
            count = len(retired)
            logger.info("project %s: %d unanswered queries of round %d retired", state.project, count, state.round)

    # --- job parts ----------------------------------------------------------------------------

    def _open_round(self, workspace: Workspace, client: LabelStudioClient, round_index: int) -> None:
        """Write the image predictions and create round ``round_index``'s queries.

        The model is the one trained after ``round_index - 1`` rounds: loaded when the checkpoint
        is that one, trained otherwise. Safe to run again after a failure: query tasks that
        Label Studio already holds for this round are taken over, not created twice.
        """
        state = workspace.state()
        usable = self.usable_tasks(workspace)
        if not usable or state.query_project is None:
            return
        model = self._round_model(workspace, usable, round_index - 1)
        if model is None:
            return
        label_unlabelled(workspace, model, usable, self.settings.round)
        cost_model = answer_cost_model(workspace, self.settings.cost_min_answers)
        choice = choose_round_queries(workspace, model, usable, self.settings.round, round_index, cost_model)
        self._write_back(workspace, client, usable)
        new_queries = {task: query for task, query in workspace.queries().items() if query.round == round_index}
        if not new_queries:
            records = workspace.tasks()
            new_queries = self._create_queries(client, state, round_index, choice.queries, records)
            record_queries(workspace, new_queries)
        if not new_queries:
            logger.info("project %s: every superpixel has been asked about; no round %d", state.project, round_index)
            return
        version = f"alc-q{round_index}"
        config = parse_query_config(query_label_config(state.class_names))
        for query in sorted(new_queries.values(), key=lambda q: q.rank):
            if any(p.get("model_version") == version for p in client.list_predictions(query.task)):
                continue
            result = self.query_result(workspace, query, config)
            client.create_prediction(query.task, result, rank_score(query.rank), version)
        client.update_project(state.query_project, model_version=version, sampling=UNCERTAINTY_SAMPLING)
        with workspace.lock:
            state = workspace.state()
            state.round = round_index
            state.round_open = True
            workspace.save_state(state)
        logger.info("project %s: round %d open with %d queries", state.project, round_index, len(new_queries))

    def _round_model(self, workspace: Workspace, usable: list[int], after_rounds: int) -> torch.nn.Module | None:
        """The model trained after ``after_rounds`` rounds (:func:`round_model`); None, and a note in
        ``/health``, when no task has a labelled pixel to learn from."""
        project = workspace.project
        logger.info(
            "project %s: loading or training the model after round %d (%d tasks)", project, after_rounds, len(usable)
        )
        started = time.perf_counter()
        model = round_model(workspace, usable, after_rounds, self.settings.round)
        if model is None:
            self.note_error(project, "no task has a labelled pixel yet: nothing to train a model on")
            return None
        seconds = time.perf_counter() - started
        logger.info("project %s: the model after round %d is ready (%.1f s)", project, after_rounds, seconds)
        return model

    def _create_queries(
        self,
        client: LabelStudioClient,
        state: ProjectState,
        round_index: int,
        queries: list[Query],
        records: dict[int, TaskRecord],
    ) -> dict[int, QueryRecord]:
        """Create the query tasks of ``queries`` (in rank order), taking over those Label Studio already holds."""
        assert state.query_project is not None
        held: dict[tuple[int, int], int] = {}
        for task in client.list_tasks(state.query_project):
            data = task.get("data", {})
            if data.get("round") == round_index and data.get("image_project") == state.project:
                held[(int(data["image_task"]), int(data["superpixel"]))] = int(task["id"])
        missing = [(rank, q) for rank, q in enumerate(queries) if (int(q.image), q.superpixel) not in held]
        data = [
            {
                "image": records[int(q.image)].image,
                "image_project": state.project,
                "image_task": int(q.image),
                "superpixel": q.superpixel,
                "round": round_index,
                "rank": rank,
                "kind": q.kind,
                "question": query_question(q.kind, state.class_names[q.proposed] if q.kind == "audit" else ""),
            }
            for rank, q in missing
        ]
        ids = client.create_tasks(state.query_project, data)
        held.update({(int(q.image), q.superpixel): task for (_, q), task in zip(missing, ids, strict=True)})
        return {
            held[(int(q.image), q.superpixel)]: QueryRecord.of(held[(int(q.image), q.superpixel)], q, round_index, rank)
            for rank, q in enumerate(queries)
        }

    def _write_back(self, workspace: Workspace, client: LabelStudioClient, tasks: list[int]) -> None:
        """Write the current labels of ``tasks`` as predictions of the current model version.

        The project's model version is switched to it once a prediction of it exists (Label
        Studio refuses a version it holds no prediction of: tasks without labels write none).
        """
        state = workspace.state()
        config = parse_image_config(state.label_config)
        records = workspace.tasks()
        published = False
        for task in tasks:
            record = records.get(task)
            if record is None or record.error or not workspace.has_labels(task):
                continue
            labels = workspace.labels(task)
            if not (labels != IGNORE_INDEX).any():
                continue
            published = True
            if any(p.get("model_version") == state.model_version for p in client.list_predictions(task)):
                continue
            result = brush_results(labels, config)
            validate_results(result, config)
            client.create_prediction(task, result, record.score, state.model_version)
        if published:
            client.update_project(state.project, model_version=state.model_version)

    def _sync_answers(self, workspace: Workspace, client: LabelStudioClient, state: ProjectState) -> None:
        """Bring the cached answers in line with Label Studio's (what webhooks missed is caught here).

        Annotations Label Studio no longer has are marked deleted; the others take Label
        Studio's state.
        """
        assert state.query_project is not None
        config = parse_query_config(query_label_config(state.class_names))
        fresh: dict[int, AnswerRecord] = {}
        for task in client.list_tasks(state.query_project):
            for annotation in task.get("annotations") or []:
                try:
                    record = answer_from_annotation(annotation, int(task["id"]), config)
                except (LabelConfigError, ValueError) as error:
                    self.note_error(state.project, f"annotation {annotation.get('id')} of task {task['id']}: {error}")
                    continue
                fresh[record.annotation] = record
        with workspace.lock:
            answers = workspace.answers()
            for key, record in answers.items():
                if key not in fresh and not record.deleted:
                    record_event(answers, AnswerRecord(key, record.query_task, (), record.updated_at, deleted=True))
            answers.update(fresh)
            workspace.save_answers(answers)

    def _round_answered(self, workspace: Workspace, round_index: int) -> bool:
        queries = [q for q in workspace.queries().values() if q.round == round_index]
        live = live_answers(workspace.answers())
        return bool(queries) and all(query.task in live for query in queries)

    def usable_tasks(self, workspace: Workspace) -> list[int]:
        return sorted(t for t, r in workspace.tasks().items() if not r.error and workspace.has_labels(t))

    def query_result(
        self, workspace: Workspace, query: QueryRecord, config: QueryProjectConfig
    ) -> list[dict[str, Any]]:
        superpixels = workspace.superpixels(query.image_task)
        region = query.query(superpixels).region_mask(superpixels.shape)
        ticked = None if query.kind == "multiclass" else query.proposed
        result = query_results(region, (query.row, query.col), ticked, config)
        validate_results(result, config)
        return result


def _describe(notes: dict[str, dict[str, Any]]) -> str:
    """One line of what each corrector did at the end of a round, for the log."""
    parts = []
    for corrector, done in notes.items():
        text = f"{corrector} wrote {done.get('written', 0)}, held back {done.get('held_back', 0)}"
        if done.get("abstained"):
            text += f" (abstained: {done['abstained']})"
        parts.append(text)
    return "; ".join(parts) or "no corrector"


def rank_score(rank: int) -> float:
    """Prediction score of the query at ``rank``: Label Studio serves the lowest score first."""
    return rank / (rank + 1.0)
