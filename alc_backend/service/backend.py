"""The backend: Label Studio's ML-backend protocol on one side, workspaces and rounds on the other.

:class:`Backend` answers the HTTP handlers at once (``setup``, ``predict``, ``webhook``,
``init_queries``) and does the slow work in jobs run by a :class:`~alc_backend.jobs.JobRunner`:

- ``prepare``: download the image project's images, compute superpixels and pseudo-labels,
  write them back as predictions, and open the first round when a query project is linked;
- ``reconcile``: re-apply answers that arrived by webhook (each expands to its superpixel at
  once) and finish the round when every query has an answer;
- ``write_back``: write the current masks to the image tasks as predictions (skipping tasks
  that already hold the current model version's, so a retried job writes each once);
- ``finish_round``: pull all answers from Label Studio (the source of truth), run the
  auto-correctors with the round's model, retrain, write the corrected masks back to the image
  tasks under a new model version, rescore and open the next round.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tqdm import tqdm

from alc_backend import IGNORE_INDEX
from alc_backend.engine.superpixels import compute_superpixels
from alc_backend.jobs import InProcessRunner, JobRunner
from alc_backend.labelstudio.client import LabelStudioClient, LabelStudioUnavailable
from alc_backend.labelstudio.config import (
    ImageProjectConfig,
    LabelConfigError,
    QueryProjectConfig,
    parse_image_config,
    parse_query_config,
    project_kind,
    query_label_config,
)
from alc_backend.labelstudio.payloads import answer_class, brush_results, query_results, validate_results
from alc_backend.service.answers import answered_superpixels, compose_labels, live_answers, record_event
from alc_backend.service.rounds import Candidate, auto_correct, choose_queries, load_round_model, train_round_model
from alc_backend.service.settings import BackendSettings
from alc_backend.service.sources import TaskDataError, decode_image, latest_manual_mask, pseudo_labels, task_name
from alc_backend.service.workspace import (
    AnswerRecord,
    ProjectState,
    QueryRecord,
    TaskRecord,
    Workspace,
    read_links,
    save_link,
)

logger = logging.getLogger(__name__)

UNCERTAINTY_SAMPLING = "Uncertainty sampling"
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")


class BadRequest(ValueError):
    """A request the backend cannot serve; the message says why (sent back with HTTP 400/422)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_project_id(value: Any) -> int:
    """A project id from ``/predict``'s ``"12.1712345678"`` form, an int, or a project dict."""
    if isinstance(value, dict):
        value = value.get("id")
    try:
        return int(str(value).split(".")[0])
    except ValueError:
        raise BadRequest(f"cannot read a project id from {value!r}") from None


class Backend:
    """The ML backend's state and operations; thread-safe."""

    def __init__(
        self,
        settings: BackendSettings,
        runner: JobRunner | None = None,
        retry_delays_s: tuple[float, ...] = (2.0, 5.0, 10.0, 30.0, 60.0, 120.0),
    ) -> None:
        self.settings = settings
        self.settings.model_dir.mkdir(parents=True, exist_ok=True)
        self._connection: tuple[str, str] = (settings.label_studio_url, settings.api_key)
        self._workspaces: dict[int, Workspace] = {}
        self._dirty_images: dict[int, set[int]] = {}
        self._dirty_manual: dict[int, set[int]] = {}
        self._errors: dict[int, list[str]] = {}
        self._lock = threading.RLock()
        self.runner = runner or InProcessRunner(
            {
                "prepare": self.prepare,
                "reconcile": self.reconcile,
                "finish_round": self.finish_round,
                "write_back": self.write_back,
            },
            transient=(LabelStudioUnavailable,),
            retry_delays_s=retry_delays_s,
        )

    # --- small helpers ----------------------------------------------------------------------

    def workspace(self, project: int) -> Workspace:
        with self._lock:
            if project not in self._workspaces:
                self._workspaces[project] = Workspace(self.settings.model_dir, project)
            return self._workspaces[project]

    def client(self) -> LabelStudioClient:
        url, key = self._connection
        if not url or not key:
            raise LabelStudioUnavailable(
                "no Label Studio connection: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, or connect the backend "
                "to a project so that Label Studio sends its address with /setup"
            )
        return LabelStudioClient(url, key)

    def image_project_of(self, project: int) -> int | None:
        """The image project behind ``project``: itself if it has a workspace, its link if a query project."""
        links = read_links(self.settings.model_dir)
        if project in links:
            return links[project]
        return project if self.workspace(project).exists() else None

    def _note_error(self, project: int, message: str) -> None:
        logger.warning("project %s: %s", project, message)
        with self._lock:
            errors = self._errors.setdefault(project, [])
            if message not in errors:
                errors.append(message)
            del errors[:-50]

    # --- protocol: /setup, /predict, /versions, /health --------------------------------------

    def setup(self, project_ref: Any, label_config: str, hostname: str = "", access_token: str = "") -> str:
        """Register a project from its labeling config; returns the model version to report."""
        project = parse_project_id(project_ref)
        if hostname and access_token and not self.settings.label_studio_url:
            self._connection = (hostname.rstrip("/"), access_token)
        try:
            kind = project_kind(label_config)
        except LabelConfigError as error:
            raise BadRequest(str(error)) from error
        if kind == "query":
            try:
                parse_query_config(label_config)
            except LabelConfigError as error:
                raise BadRequest(str(error)) from error
            image_project = self.image_project_of(project)
            if image_project is None or image_project == project:
                raise BadRequest(
                    f"project {project} looks like a query project but is not linked to an image project; "
                    "create query projects with `alc-backend init --images-project ID`"
                )
            return self._query_version(self.workspace(image_project).state())
        try:
            config = parse_image_config(label_config)
        except LabelConfigError as error:
            raise BadRequest(str(error)) from error
        workspace = self.workspace(project)
        with workspace.lock:
            if workspace.exists():
                state = workspace.state()
                if tuple(state.class_names) != config.class_names:
                    if state.round > 0:
                        raise BadRequest(
                            f"project {project}'s labels changed from {', '.join(state.class_names)} to "
                            f"{', '.join(config.class_names)} after correction rounds began; start a new project"
                        )
                    state.class_names = list(config.class_names)
                    state.prepared = False
                state.label_config = label_config
            else:
                state = ProjectState(project, list(config.class_names), label_config)
            workspace.save_state(state)
        if not state.prepared:
            self.runner.submit("prepare", project)
        return state.model_version

    def predict(self, project_ref: Any, tasks: list[dict[str, Any]], label_config: str) -> list[Any]:
        """One entry per task: a prediction dict, or an empty list while the task is being prepared."""
        project = parse_project_id(project_ref)
        image_project = self.image_project_of(project)
        if image_project is None:
            self.setup(project, label_config)
            return [[] for _ in tasks]
        workspace = self.workspace(image_project)
        state = workspace.state()
        if image_project != project:
            return self._predict_queries(workspace, state, tasks)
        config = parse_image_config(state.label_config)
        records = workspace.tasks()
        results: list[Any] = []
        missing = False
        for task in tasks:
            task_id = int(task["id"])
            record = records.get(task_id)
            if record is None or record.error or not workspace.has_labels(task_id):
                missing = missing or record is None
                results.append([])
                continue
            result = brush_results(workspace.labels(task_id), config)
            validate_results(result, config)
            results.append({"result": result, "score": record.score, "model_version": state.model_version})
        if missing:
            self.runner.submit("prepare", image_project)
        return results

    def _predict_queries(self, workspace: Workspace, state: ProjectState, tasks: list[dict[str, Any]]) -> list[Any]:
        config = parse_query_config(query_label_config(state.class_names))
        queries = workspace.queries()
        results: list[Any] = []
        for task in tasks:
            query = queries.get(int(task["id"]))
            if query is None:
                results.append([])
                continue
            result = self._query_result(workspace, query, config)
            results.append({"result": result, "score": _rank_score(query.rank), "model_version": f"alc-q{query.round}"})
        return results

    def versions(self) -> list[str]:
        found: set[str] = set()
        for path in sorted(self.settings.model_dir.glob("project-*/project.json")):
            state = self.workspace(int(path.parent.name.split("-")[1])).state()
            found.add(state.model_version)
            if state.round:
                found.add(self._query_version(state))
        return sorted(found)

    def health(self) -> dict[str, Any]:
        projects = {}
        for path in sorted(self.settings.model_dir.glob("project-*/project.json")):
            project = int(path.parent.name.split("-")[1])
            workspace = self.workspace(project)
            state = workspace.state()
            tasks = workspace.tasks()
            projects[str(project)] = {
                "query_project": state.query_project,
                "prepared": state.prepared,
                "round": state.round,
                "round_open": state.round_open,
                "model_version": state.model_version,
                "tasks": len(tasks),
                "task_errors": {str(t): r.error for t, r in tasks.items() if r.error},
                "errors": self._errors.get(project, []),
            }
        return {"status": "UP", "model_class": "alc-backend", "jobs": self.runner.status(), "projects": projects}

    # --- protocol: /webhook ------------------------------------------------------------------

    def webhook(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Record one Label Studio event and queue the work it needs; returns at once."""
        action = payload.get("action")
        if not isinstance(action, str):
            raise BadRequest("the webhook payload has no 'action'")
        if "project" not in payload:
            raise BadRequest(f"the {action} payload has no 'project'")
        project = parse_project_id(payload["project"])
        image_project = self.image_project_of(project)
        if image_project is None:
            return {"status": "ignored", "reason": f"project {project} is not served by this backend"}
        if action == "START_TRAINING":
            self.runner.submit("finish_round", image_project)
            return {"status": "queued", "job": "finish_round"}
        if action == "PROJECT_UPDATED":
            if image_project == project:
                label_config = payload["project"].get("label_config") if isinstance(payload["project"], dict) else None
                if label_config:
                    self.setup(project, label_config)
            return {"status": "ok"}
        if action not in WEBHOOK_ACTIONS:
            return {"status": "ignored", "reason": f"action {action} needs nothing"}
        if image_project == project:
            return self._image_annotation_event(project, action, payload)
        return self._answer_event(image_project, action, payload)

    def _answer_event(self, image_project: int, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        workspace = self.workspace(image_project)
        events = []
        if action == "ANNOTATIONS_DELETED":
            for item in payload.get("annotations") or []:
                events.append(AnswerRecord(int(item["id"]), -1, None, "", deleted=True))
        else:
            annotation = payload.get("annotation")
            if not isinstance(annotation, dict) or "id" not in annotation:
                raise BadRequest(f"the {action} payload has no 'annotation'")
            query_task = int(annotation.get("task") or (payload.get("task") or {}).get("id"))
            answer: int | None = None
            if not annotation.get("was_cancelled"):
                config = self._query_config(workspace, payload)
                try:
                    answer = answer_class(annotation.get("result") or [], config)
                except LabelConfigError as error:
                    message = f"annotation {annotation['id']} of task {query_task}: {error}"
                    self._note_error(image_project, message)
                    raise BadRequest(message, 422) from error
            events.append(AnswerRecord(int(annotation["id"]), query_task, answer, str(annotation.get("updated_at"))))
        with workspace.lock:
            answers = workspace.answers()
            changed = [event for event in events if record_event(answers, event)]
            if changed:
                workspace.save_answers(answers)
                queries = workspace.queries()
                touched = {answers[e.annotation].query_task for e in changed}
        if not changed:
            return {"status": "duplicate"}
        with self._lock:
            dirty = self._dirty_images.setdefault(image_project, set())
            dirty.update(queries[t].image_task for t in touched if t in queries)
        self.runner.submit("reconcile", image_project)
        return {"status": "queued", "job": "reconcile"}

    def _image_annotation_event(self, project: int, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        workspace = self.workspace(project)
        with self._lock:
            dirty = self._dirty_manual.setdefault(project, set())
            if action == "ANNOTATIONS_DELETED":
                dirty.update(int(path.stem) for path in (workspace.root / "manual").glob("*.png"))
            else:
                annotation = payload.get("annotation") or {}
                task = annotation.get("task") or (payload.get("task") or {}).get("id")
                if task is None:
                    raise BadRequest(f"the {action} payload names no task")
                dirty.add(int(task))
        self.runner.submit("reconcile", project)
        return {"status": "queued", "job": "reconcile"}

    def _query_config(self, workspace: Workspace, payload: dict[str, Any]) -> QueryProjectConfig:
        label_config = payload["project"].get("label_config") if isinstance(payload["project"], dict) else None
        if label_config:
            try:
                return parse_query_config(label_config)
            except LabelConfigError as error:
                raise BadRequest(f"the query project's labeling config: {error}") from error
        return parse_query_config(query_label_config(workspace.state().class_names))

    # --- query projects ----------------------------------------------------------------------

    def init_queries(self, image_project: int, backend_url: str, title: str | None = None) -> dict[str, Any]:
        """Create (or find) the query project of ``image_project``, connect both projects to this backend.

        ``backend_url`` is this backend's address as Label Studio reaches it. Returns
        ``{"images_project", "query_project", "created"}``.
        """
        client = self.client()
        project = client.get_project(image_project)
        try:
            config = parse_image_config(project["label_config"])
        except LabelConfigError as error:
            raise BadRequest(f"project {image_project} cannot be corrected: {error}") from error
        workspace = self.workspace(image_project)
        if not workspace.exists():
            self.setup(image_project, project["label_config"])
        state = workspace.state()
        created = state.query_project is None
        if created:
            query = client.create_project(
                title=title or f"{project.get('title') or image_project} · correction queries",
                label_config=query_label_config(config.class_names),
                description=f"Correction queries for project {image_project}, created by alc-backend.",
                sampling=UNCERTAINTY_SAMPLING,
                show_collab_predictions=True,
                maximum_annotations=1,
                min_annotations_to_start_training=0,
            )
            with workspace.lock:
                state = workspace.state()
                state.query_project = int(query["id"])
                workspace.save_state(state)
            save_link(self.settings.model_dir, int(query["id"]), image_project)
        query_project = int(state.query_project or 0)
        for target in (image_project, query_project):
            self._connect(client, target, backend_url)
        client.update_project(image_project, sampling=UNCERTAINTY_SAMPLING)
        self.runner.submit("prepare", image_project)
        return {"images_project": image_project, "query_project": query_project, "created": created}

    def _connect(self, client: LabelStudioClient, project: int, backend_url: str) -> None:
        """Connect ``project`` to this backend unless it is already.

        Connecting makes Label Studio call ``/setup`` and create a webhook to ``URL/webhook``
        for every action, which is how answers reach the backend.
        """
        url = backend_url.rstrip("/")
        if not any(item.get("url", "").rstrip("/") == url for item in client.list_ml_backends(project)):
            client.add_ml_backend(project, url, "alc-backend")

    # --- jobs ---------------------------------------------------------------------------------

    def prepare(self, project: int) -> None:
        """Job: bring every task of the image project into the workspace; open round 1 if linked."""
        workspace = self.workspace(project)
        client = self.client()
        config = parse_image_config(workspace.state().label_config)
        records = workspace.tasks()
        tasks = client.list_tasks(project)
        new = [task for task in tasks if int(task["id"]) not in records or records[int(task["id"])].error]
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
            self._write_back(workspace, client, [int(task["id"]) for task in new])

    def _prepare_task(
        self, workspace: Workspace, client: LabelStudioClient, task: dict[str, Any], config: ImageProjectConfig
    ) -> TaskRecord:
        task_id = int(task["id"])
        reference = str(task.get("data", {}).get(config.image_key) or "")
        record = TaskRecord(task_id, task_name(task, reference), reference)
        try:
            if not reference:
                raise TaskDataError(f"task {task_id} has no '{config.image_key}' in its data")
            try:
                data = client.download(reference)
            except LabelStudioUnavailable:
                raise
            except Exception as error:
                raise TaskDataError(f"task {task_id}: cannot download {reference}: {error}") from error
            image = decode_image(data, f"task {task_id}: image {reference}")
            shape = (image.shape[0], image.shape[1])
            labels, source = pseudo_labels(task, config, shape, self.settings.pseudo_mask_key, client.download)
            manual = latest_manual_mask(task.get("annotations") or [], config, shape)
        except (TaskDataError, LabelConfigError) as error:
            record.error = str(error)
            self._note_error(workspace.project, record.error)
            return record
        superpixels = compute_superpixels(image, self.settings.superpixels, num_segments=self.settings.num_superpixels)
        workspace.save_image(task_id, image)
        workspace.save_superpixels(task_id, superpixels)
        workspace.save_pseudo(task_id, labels)
        workspace.save_manual(task_id, manual)
        record.height, record.width = shape
        record.pseudo_source = source
        self._compose(workspace, task_id)
        return record

    def write_back(self, project: int) -> None:
        """Job: write every task's current labels as a prediction of the current model version."""
        workspace = self.workspace(project)
        self._write_back(workspace, self.client(), self._usable_tasks(workspace))

    def reconcile(self, project: int) -> None:
        """Job: re-apply the answers and drawn masks that changed; finish the round when all are answered."""
        workspace = self.workspace(project)
        with self._lock:
            images = self._dirty_images.pop(project, set())
            manual = self._dirty_manual.pop(project, set())
        if manual:
            client = self.client()
            config = parse_image_config(workspace.state().label_config)
            records = workspace.tasks()
            for task in manual:
                record = records.get(task)
                if record is None or record.error:
                    continue
                annotations = client.list_annotations(task)
                try:
                    mask = latest_manual_mask(annotations, config, (record.height, record.width))
                except LabelConfigError as error:
                    self._note_error(project, f"task {task}: the drawn mask cannot be used: {error}")
                    continue
                workspace.save_manual(task, mask)
        for task in images | manual:
            self._compose(workspace, task)
        state = workspace.state()
        if state.round_open and self._round_answered(workspace, state.round):
            self.finish_round(project)

    def finish_round(self, project: int) -> None:
        """Job: end the open round: auto-correct, retrain, write back, open the next round.

        With no round open (the last one ended but the next could not be opened, or none was
        opened yet), it opens the next one.
        """
        workspace = self.workspace(project)
        state = workspace.state()
        if not state.prepared:
            self.prepare(project)
            return
        client = self.client()
        if state.query_project is None:
            return
        if not state.round_open:
            self._open_round(workspace, client, state.round + 1)
            return
        self._sync_answers(workspace, client, state)
        usable = self._usable_tasks(workspace)
        for task in usable:
            self._compose(workspace, task)
        queries = workspace.queries()
        live = live_answers(workspace.answers())
        round_answers = [
            (queries[task], record.answer)
            for task, record in live.items()
            if task in queries and queries[task].round == state.round and record.answer is not None
        ]
        asked = _asked(queries)
        model = load_round_model(workspace, self.settings)
        num_classes = len(state.class_names)
        if model is not None and round_answers:
            records = auto_correct(
                workspace, model, usable, round_answers, asked, num_classes, self.settings, state.round
            )
            if records:
                workspace.save_corrections(workspace.corrections() + records)
        with workspace.lock:
            state = workspace.state()
            state.round_open = False
            state.model_version = f"alc-r{state.round}"
            workspace.save_state(state)
        self._open_round(workspace, client, state.round + 1)

    # --- job parts ----------------------------------------------------------------------------

    def _open_round(self, workspace: Workspace, client: LabelStudioClient, round_index: int) -> None:
        """Write the image predictions and create round ``round_index``'s queries.

        The model is the one trained after ``round_index - 1`` rounds: loaded when the checkpoint
        is that one, trained otherwise. Safe to run again after a failure: query tasks that
        Label Studio already holds for this round are taken over, not created twice.
        """
        state = workspace.state()
        usable = self._usable_tasks(workspace)
        if not usable or state.query_project is None:
            return
        num_classes = len(state.class_names)
        model = load_round_model(workspace, self.settings) if state.model_round == round_index - 1 else None
        if model is None:
            model = train_round_model(workspace, usable, num_classes, self.settings, round_index - 1)
            with workspace.lock:
                state = workspace.state()
                state.model_round = round_index - 1
                workspace.save_state(state)
        queries = workspace.queries()
        candidates, image_scores = choose_queries(
            workspace, model, usable, _asked(queries), num_classes, self.settings, round_index
        )
        records = workspace.tasks()
        for task, score in image_scores.items():
            records[task].score = score
        workspace.save_tasks(records)
        self._write_back(workspace, client, usable)
        new_queries = {task: query for task, query in queries.items() if query.round == round_index}
        if not new_queries:
            new_queries = self._create_queries(client, state, round_index, candidates, records)
        if not new_queries:
            logger.info("project %s: every superpixel has been asked about; no round %d", state.project, round_index)
            return
        queries.update(new_queries)
        workspace.save_queries(queries)
        version = f"alc-q{round_index}"
        config = parse_query_config(query_label_config(state.class_names))
        for query in sorted(new_queries.values(), key=lambda q: q.rank):
            if any(p.get("model_version") == version for p in client.list_predictions(query.task)):
                continue
            result = self._query_result(workspace, query, config)
            client.create_prediction(query.task, result, _rank_score(query.rank), version)
        client.update_project(state.query_project, model_version=version, sampling=UNCERTAINTY_SAMPLING)
        with workspace.lock:
            state = workspace.state()
            state.round = round_index
            state.round_open = True
            workspace.save_state(state)

    def _create_queries(
        self,
        client: LabelStudioClient,
        state: ProjectState,
        round_index: int,
        candidates: list[Candidate],
        records: dict[int, TaskRecord],
    ) -> dict[int, QueryRecord]:
        """Create the query tasks of ``candidates``, taking over those Label Studio already holds."""
        assert state.query_project is not None
        held: dict[tuple[int, int], int] = {}
        for task in client.list_tasks(state.query_project):
            data = task.get("data", {})
            if data.get("round") == round_index and data.get("image_project") == state.project:
                held[(int(data["image_task"]), int(data["superpixel"]))] = int(task["id"])
        missing = [(rank, c) for rank, c in enumerate(candidates) if (c.image_task, c.superpixel) not in held]
        data = [
            {
                "image": records[c.image_task].image,
                "image_project": state.project,
                "image_task": c.image_task,
                "superpixel": c.superpixel,
                "round": round_index,
                "rank": rank,
            }
            for rank, c in missing
        ]
        ids = client.create_tasks(state.query_project, data)
        held.update({(c.image_task, c.superpixel): task for (_, c), task in zip(missing, ids, strict=True)})
        return {
            held[(c.image_task, c.superpixel)]: QueryRecord(
                held[(c.image_task, c.superpixel)],
                c.image_task,
                c.superpixel,
                c.row,
                c.col,
                c.proposed,
                c.label_before,
                round_index,
                rank,
            )
            for rank, c in enumerate(candidates)
        }

    def _write_back(self, workspace: Workspace, client: LabelStudioClient, tasks: list[int]) -> None:
        """Write the current labels of ``tasks`` as predictions of the current model version."""
        state = workspace.state()
        config = parse_image_config(state.label_config)
        records = workspace.tasks()
        for task in tasks:
            record = records.get(task)
            if record is None or record.error or not workspace.has_labels(task):
                continue
            labels = workspace.labels(task)
            if not (labels != IGNORE_INDEX).any():
                continue
            if any(p.get("model_version") == state.model_version for p in client.list_predictions(task)):
                continue
            result = brush_results(labels, config)
            validate_results(result, config)
            client.create_prediction(task, result, record.score, state.model_version)
        client.update_project(state.project, model_version=state.model_version)

    def _sync_answers(self, workspace: Workspace, client: LabelStudioClient, state: ProjectState) -> None:
        """Bring the cached answers in line with Label Studio's (what webhooks missed is caught here).

        Annotations Label Studio no longer has are marked deleted; the others take Label
        Studio's state unless the cache holds a newer one.
        """
        assert state.query_project is not None
        config = parse_query_config(query_label_config(state.class_names))
        fresh: dict[int, AnswerRecord] = {}
        for task in client.list_tasks(state.query_project):
            for annotation in task.get("annotations") or []:
                answer = None
                if not annotation.get("was_cancelled"):
                    try:
                        answer = answer_class(annotation.get("result") or [], config)
                    except LabelConfigError as error:
                        self._note_error(state.project, f"annotation {annotation['id']} of task {task['id']}: {error}")
                        continue
                fresh[int(annotation["id"])] = AnswerRecord(
                    int(annotation["id"]), int(task["id"]), answer, str(annotation.get("updated_at"))
                )
        with workspace.lock:
            answers = workspace.answers()
            for key, record in answers.items():
                if key not in fresh and not record.deleted:
                    record_event(answers, AnswerRecord(key, record.query_task, None, record.updated_at, deleted=True))
            for record in fresh.values():
                record_event(answers, record)
            workspace.save_answers(answers)

    def _round_answered(self, workspace: Workspace, round_index: int) -> bool:
        queries = [q for q in workspace.queries().values() if q.round == round_index]
        live = live_answers(workspace.answers())
        return bool(queries) and all(query.task in live for query in queries)

    def _compose(self, workspace: Workspace, task: int) -> None:
        """Rebuild task ``task``'s current labels from pseudo-labels, corrections, answers and drawn masks."""
        answered = answered_superpixels(workspace.answers(), workspace.queries()).get(task, {})
        corrections = [record for record in workspace.corrections() if record.image == str(task)]
        labels = compose_labels(
            workspace.pseudo(task), workspace.superpixels(task), corrections, answered, workspace.manual(task)
        )
        workspace.save_labels(task, labels)

    def _usable_tasks(self, workspace: Workspace) -> list[int]:
        return sorted(t for t, r in workspace.tasks().items() if not r.error and workspace.has_labels(t))

    def _query_result(
        self, workspace: Workspace, query: QueryRecord, config: QueryProjectConfig
    ) -> list[dict[str, Any]]:
        region = workspace.superpixels(query.image_task) == query.superpixel
        result = query_results(region, (query.row, query.col), query.proposed, config)
        validate_results(result, config)
        return result

    @staticmethod
    def _query_version(state: ProjectState) -> str:
        return f"alc-q{state.round}"


def _rank_score(rank: int) -> float:
    """Prediction score of the query at ``rank``: Label Studio serves the lowest score first."""
    return rank / (rank + 1.0)


def _asked(queries: dict[int, QueryRecord]) -> dict[int, set[int]]:
    asked: dict[int, set[int]] = {}
    for query in queries.values():
        asked.setdefault(query.image_task, set()).add(query.superpixel)
    return asked
