"""The backend: Label Studio's ML-backend protocol on one side, workspaces and rounds on the other.

:class:`Backend` answers the HTTP handlers at once (``setup``, ``predict``, ``webhook``,
``init_queries``, ``health``, ``versions``) and leaves the slow work to the jobs of
:class:`~alc_backend.service.project_work.ProjectWork`, run by a
:class:`~alc_backend.jobs.JobRunner`.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from pathlib import Path
from typing import Any

from alc_backend.atomic import write_text_atomically
from alc_backend.jobs import InProcessRunner, JobRunner, QueueUnavailable
from alc_backend.labelstudio.client import LabelStudioClient, LabelStudioUnavailable
from alc_backend.labelstudio.config import (
    LabelConfigError,
    parse_image_config,
    parse_query_config,
    project_kind,
    query_label_config,
)
from alc_backend.labelstudio.payloads import brush_results, validate_results
from alc_backend.service.addresses import same_address
from alc_backend.service.notes import MemoryNotes, RedisNotes, WorkNotes
from alc_backend.service.project_work import UNCERTAINTY_SAMPLING, ProjectWork, rank_score
from alc_backend.service.report import report_from_records
from alc_backend.service.rounds import answer_progress, answer_seconds_status, corrector_status
from alc_backend.service.settings import BackendSettings
from alc_backend.service.workspace import (
    ProjectState,
    Workspace,
    WorkspaceError,
    read_links,
    save_link,
)

logger = logging.getLogger(__name__)

LINKS_LOCK = 0
"""The lock that guards ``MODEL_DIR/links.json`` (no Label Studio project has id 0)."""

WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")


class BadRequest(ValueError):
    """A request the backend cannot serve; the message says why (sent back with ``status``, 400 by default)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def is_id(value: Any) -> bool:
    """Whether ``value`` is an id: a non-negative int (not a bool) or a string of digits."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, int) and value >= 0) or (isinstance(value, str) and value.isdigit())


def _integer(value: Any, what: str) -> int:
    """``value`` as an id (see :func:`is_id`); BadRequest naming ``what`` otherwise."""
    if not is_id(value):
        raise BadRequest(f"{what} must be an integer id, got {json.dumps(value)[:80]}")
    return int(value)


def _annotation_ids(action: str, payload: dict[str, Any]) -> list[int]:
    """The annotation ids an answer event names: ``annotation.id``, or each ``annotations[].id`` of a deletion."""
    if action == "ANNOTATIONS_DELETED":
        items = payload.get("annotations")
        if not isinstance(items, list):
            raise BadRequest("the ANNOTATIONS_DELETED payload has no list 'annotations'")
        return [
            _integer(item.get("id") if isinstance(item, dict) else item, "each deleted annotation's id")
            for item in items
        ]
    annotation = payload.get("annotation")
    if not isinstance(annotation, dict):
        raise BadRequest(f"the {action} payload has no 'annotation'")
    return [_integer(annotation.get("id"), f"the {action} payload's annotation id")]


def basic_authorization(user: str, password: str) -> str:
    """The ``Authorization`` header value of HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def read_pinned_label_studio(path: Path) -> str | None:
    """The Label Studio address pinned in ``path``, or None; BadRequest if the file is unreadable."""
    if not path.is_file():
        return None
    try:
        url = json.loads(path.read_text(encoding="utf-8"))["url"]
    except (ValueError, KeyError, TypeError) as error:
        raise BadRequest(f"{path} is corrupt ({error}); delete it to pin Label Studio again", 500) from error
    return str(url)


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
        self._pin_lock = threading.Lock()
        notes: WorkNotes = MemoryNotes()
        if runner is None and settings.redis_url:
            from alc_backend.rq_jobs import RQRunner, key_prefix

            runner = RQRunner(settings)
            notes = RedisNotes(runner.redis, settings.redis_url, key_prefix(settings.queue))
        self.work = ProjectWork(settings, self.client, notes, submit=self.submit)
        self.runner: JobRunner = runner or InProcessRunner(
            {
                "prepare": self.work.prepare,
                "prepare_part": self.work.prepare_part,
                "reconcile": self.work.reconcile,
                "finish_round": self.work.finish_round,
                "write_back": self.work.write_back,
                "export": self.work.export,
                "recover": self.work.recover,
            },
            transient=(LabelStudioUnavailable,),
            retry_delays_s=retry_delays_s,
        )
        self._queue_recovery()

    def _queue_recovery(self) -> None:
        """Queue a ``recover`` job for every project in the workspace: what a killed backend left
        undone, and the answers given while it was down, are derived from the files and Label Studio."""
        for project in self._projects():
            try:
                self.submit("recover", project)
            except QueueUnavailable as error:
                logger.warning("cannot queue the recovery of project %s: %s", project, error)

    # --- small helpers ----------------------------------------------------------------------

    def _errors_of(self, project: int) -> list[str]:
        try:
            return self.work.notes.errors_of(project)
        except QueueUnavailable as error:
            return [f"cannot read the jobs' errors: {error}"]

    def submit(self, kind: str, project: int) -> None:
        """Queue job ``kind`` for ``project`` on the runner (in-process, or rq when ``REDIS_URL`` is set)."""
        self.runner.submit(kind, project)

    def workspace(self, project: int) -> Workspace:
        return self.work.workspace(project)

    def client(self, retries: int = 5) -> LabelStudioClient:
        """A client of the Label Studio this backend serves; ``retries`` after a connection failure
        (a request handler asks for few: Label Studio just called it, and waits for the answer)."""
        url, key = self._connection
        if not url or not key:
            raise LabelStudioUnavailable(
                "no Label Studio connection: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, or connect the backend "
                "to a project so that Label Studio sends its address with /setup"
            )
        return LabelStudioClient(url, key, retries=retries)

    def _pin_connection(self, url: str, token: str) -> None:
        """Use the Label Studio that ``/setup`` names; the first one named is pinned (its address in
        ``MODEL_DIR/label-studio.json``), and a later, different one is refused."""
        path = self.settings.model_dir / "label-studio.json"
        with self._pin_lock:
            pinned = read_pinned_label_studio(path)
            if pinned is None:
                write_text_atomically(path, json.dumps({"url": url}) + "\n")
            elif pinned != url:
                raise BadRequest(
                    f"/setup names Label Studio at {url}, but this backend is pinned to {pinned}: set "
                    f"LABEL_STUDIO_URL, or delete {path} to pin another",
                    403,
                )
            self._connection = (url, token)

    def image_project_of(self, project: int) -> int | None:
        """The image project behind ``project``: itself if it has a workspace, its link if a query project."""
        links = read_links(self.settings.model_dir)
        if project in links:
            return links[project]
        return project if self.workspace(project).exists() else None

    # --- protocol: /setup, /predict, /versions, /health --------------------------------------

    def setup(self, project_ref: Any, label_config: str, hostname: str = "", access_token: str = "") -> str:
        """Register a project from its labeling config; returns the model version to report."""
        project = parse_project_id(project_ref)
        if hostname and access_token and not self.settings.label_studio_url:
            self._pin_connection(hostname.rstrip("/"), access_token)
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
        if workspace.exists() and workspace.state().label_config == label_config:
            state = workspace.state()
        else:
            with self.runner.project_lock(project), workspace.lock:
                state = self._registered(workspace, config.class_names, label_config)
        if not state.prepared:
            self.submit("prepare", project)
        return state.model_version

    @staticmethod
    def _registered(workspace: Workspace, class_names: tuple[str, ...], label_config: str) -> ProjectState:
        """Save the project's labeling config (new labels before round 1 mean a new preparation)."""
        if not workspace.exists():
            state = ProjectState(workspace.project, list(class_names), label_config)
        else:
            state = workspace.state()
            if tuple(state.class_names) != class_names:
                if state.round > 0:
                    raise BadRequest(
                        f"project {workspace.project}'s labels changed from {', '.join(state.class_names)} to "
                        f"{', '.join(class_names)} after correction rounds began; start a new project"
                    )
                state.class_names = list(class_names)
                state.prepared = False
            state.label_config = label_config
        workspace.save_state(state)
        return state

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
            self.submit("prepare", image_project)
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
            result = self.work.query_result(workspace, query, config)
            results.append({"result": result, "score": rank_score(query.rank), "model_version": f"alc-q{query.round}"})
        return results

    def versions(self) -> list[str]:
        found: set[str] = set()
        for project in self._projects():
            try:
                state = self.workspace(project).state()
            except WorkspaceError:
                continue
            found.add(state.model_version)
            if state.round:
                found.add(self._query_version(state))
        return sorted(found)

    def health(self) -> dict[str, Any]:
        """The backend's jobs and each project's state; a project whose files are corrupt says so alone."""
        projects = {}
        for project in self._projects():
            try:
                projects[str(project)] = self._project_health(project)
            except WorkspaceError as error:
                projects[str(project)] = {"error": str(error)}
        return {"status": "UP", "model_class": "alc-backend", "jobs": self.runner.status(), "projects": projects}

    def _projects(self) -> list[int]:
        """The image projects with a workspace, by id."""
        found = []
        for path in self.settings.model_dir.glob("project-*/project.json"):
            suffix = path.parent.name.removeprefix("project-")
            if suffix.isdigit():
                found.append(int(suffix))
        return sorted(found)

    def _project_health(self, project: int) -> dict[str, Any]:
        """One project's part of /health; each of its workspace's files is read once."""
        workspace = self.workspace(project)
        state = workspace.state()
        tasks = workspace.tasks()
        corrections = workspace.corrections()
        queries = workspace.queries()
        answers = workspace.answers()
        round_notes = workspace.round_notes()
        correctors = self.settings.round.correctors
        return {
            "query_project": state.query_project,
            "prepared": state.prepared,
            "round": state.round,
            "round_open": state.round_open,
            "model_version": state.model_version,
            "tasks": len(tasks),
            "task_errors": {str(t): r.error for t, r in tasks.items() if r.error},
            "errors": self._errors_of(project),
            "correctors": corrector_status(answers, queries, corrections, round_notes, correctors),
            "answer_seconds": answer_seconds_status(answers, queries, self.settings.cost_min_answers),
            "answers": answer_progress(answers, queries, state.round),
            "report": report_from_records(answers, queries, corrections, state.class_names),
        }

    # --- protocol: /webhook ------------------------------------------------------------------

    def webhook(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Take one Label Studio event and queue the work it needs.

        The event is a hint: what it names (an annotation, a project's labeling config) is read
        back from Label Studio, the source of truth. ``START_TRAINING`` is an operator action,
        which the server lets through only from an operator (see :mod:`alc_backend.server`).
        """
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
            self.submit("finish_round", image_project)
            return {"status": "queued", "job": "finish_round"}
        if action == "PROJECT_UPDATED":
            if image_project == project:
                self.setup(project, str(self.client(retries=1).get_project(project).get("label_config") or ""))
            return {"status": "ok"}
        if action not in WEBHOOK_ACTIONS:
            return {"status": "ignored", "reason": f"action {action} needs nothing"}
        if image_project == project:
            return self._image_annotation_event(project, action, payload)
        return self._answer_event(image_project, action, payload)

    def _answer_event(self, image_project: int, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Mark the annotations an answer event names; the ``reconcile`` job reads each back from
        Label Studio and records only what Label Studio holds, so a forged event changes nothing."""
        self.work.notes.mark_answers(image_project, set(_annotation_ids(action, payload)))
        self.submit("reconcile", image_project)
        return {"status": "queued", "job": "reconcile"}

    def _image_annotation_event(self, project: int, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Mark the image task whose drawn mask may have changed; the job reads it from Label Studio."""
        if action == "ANNOTATIONS_DELETED":
            self.work.notes.mark_drawn(project, None)
        else:
            annotation = payload.get("annotation")
            task = annotation.get("task") if isinstance(annotation, dict) else None
            if task is None and isinstance(payload.get("task"), dict):
                task = payload["task"].get("id")
            self.work.notes.mark_drawn(project, {_integer(task, f"the {action} payload's task")})
        self.submit("reconcile", project)
        return {"status": "queued", "job": "reconcile"}

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
                title=title or f"{project.get('title') or image_project} · queries",
                label_config=query_label_config(config.class_names),
                description=f"Correction queries for project {image_project}, created by alc-backend.",
                sampling=UNCERTAINTY_SAMPLING,
                show_collab_predictions=True,
                maximum_annotations=1,
                min_annotations_to_start_training=0,
            )
            with self.runner.project_lock(image_project), workspace.lock:
                state = workspace.state()
                state.query_project = int(query["id"])
                workspace.save_state(state)
            with self.runner.project_lock(LINKS_LOCK):
                save_link(self.settings.model_dir, int(query["id"]), image_project)
        query_project = int(state.query_project or 0)
        for target in (image_project, query_project):
            self._connect(client, target, backend_url)
        client.update_project(image_project, sampling=UNCERTAINTY_SAMPLING)
        self.submit("prepare", image_project)
        return {"images_project": image_project, "query_project": query_project, "created": created}

    def _connect(self, client: LabelStudioClient, project: int, backend_url: str) -> None:
        """Connect ``project`` to this backend unless it is already, with the backend's login if it has one.

        Connecting makes Label Studio call ``/setup`` and create a webhook to ``URL/webhook``
        for every action, which is how answers reach the backend. Label Studio sends that
        webhook no credentials of its own, so with a login set, the webhook is given the
        login's ``Authorization`` header (an existing connection or webhook is brought in line).
        """
        url = backend_url.rstrip("/")
        login = self.settings.login()
        connected = [item for item in client.list_ml_backends(project) if same_address(str(item.get("url", "")), url)]
        if not connected:
            client.add_ml_backend(project, url, "alc-backend", login)
        elif login is not None and connected[0].get("auth_method") != "BASIC_AUTH":
            client.set_ml_backend_login(int(connected[0]["id"]), login)
        if login is None:
            return
        header = basic_authorization(*login)
        for webhook in client.list_webhooks(project):
            same = same_address(str(webhook.get("url", "")), f"{url}/webhook")
            if same and (webhook.get("headers") or {}).get("Authorization") != header:
                client.set_webhook_headers(
                    int(webhook["id"]), {**(webhook.get("headers") or {}), "Authorization": header}
                )

    # --- jobs ---------------------------------------------------------------------------------

    @staticmethod
    def _query_version(state: ProjectState) -> str:
        return f"alc-q{state.round}"
