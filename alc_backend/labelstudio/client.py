"""A thin client for the Label Studio REST API (checked against Label Studio 1.23.2), on ``requests``.

Authentication: an API key made of three dot-separated parts is a personal access token (a JWT
refresh token); it is exchanged at ``POST /api/token/refresh/`` for a short-lived access token sent as
``Authorization: Bearer …``, and exchanged again once when a request answers 401. Any other key is a
legacy token sent as ``Authorization: Token …`` (Label Studio accepts those only when legacy tokens
are enabled for the organization, e.g. ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true`` at first start).

Retries: every request, reads and writes alike, is tried again with exponential backoff after a
connection error, a timeout, or a 502/503/504 answer. A retried write can be applied twice only when
the first attempt really reached Label Studio and only its answer was lost. Deletes are idempotent
here (a 404 counts as done); a caller that must not duplicate a created prediction, annotation or
task lists the task's predictions/annotations (or the project's tasks) after an error and before
creating again, or removes duplicates it finds by their content.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

RETRY_STATUSES = frozenset({502, 503, 504})
MAX_BACKOFF_S = 30.0
ERROR_TEXT_CHARS = 500
TASK_PAGE_SIZE = 100


class LabelStudioUnavailable(RuntimeError):
    """Label Studio could not be reached (connection refused, timeouts, 502/503/504) after all retries."""


class LabelStudioAPIError(RuntimeError):
    """Label Studio answered an error status that retrying does not cure: 4xx, or 5xx other than 502/503/504."""

    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        super().__init__(f"Label Studio {method} {path} answered {status}: {text[:ERROR_TEXT_CHARS]}")
        self.method = method
        self.path = path
        self.status = status


def is_personal_access_token(api_key: str) -> bool:
    """True when ``api_key`` looks like a JWT (three non-empty dot-separated parts)."""
    parts = api_key.split(".")
    return len(parts) == 3 and all(parts)


class LabelStudioClient:
    """Calls one Label Studio server with one API key; methods return the parsed JSON answers.

    ``retries`` is how many times a failed request is tried again (so up to ``retries + 1`` attempts);
    the n-th retry waits ``backoff_s * 2 ** (n - 1)`` seconds (at most 30 s). ``timeout_s`` bounds each
    attempt.
    """

    def __init__(
        self, url: str, api_key: str, *, retries: int = 5, backoff_s: float = 0.5, timeout_s: float = 30.0
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._api_key = api_key
        self._uses_personal_token = is_personal_access_token(api_key)
        self._access_token: str | None = None
        self._session = requests.Session()

    # ---- projects -------------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        """Label Studio's version information (``GET /api/version``)."""
        return self._json("GET", "/api/version")

    def get_project(self, project_id: int) -> dict[str, Any]:
        """One project with all its settings."""
        return self._json("GET", f"/api/projects/{project_id}/")

    def create_project(self, title: str, label_config: str, **fields: Any) -> dict[str, Any]:
        """Create a project; ``fields`` are further project fields (``sampling``, ``model_version``, ...)."""
        return self._json("POST", "/api/projects/", json={"title": title, "label_config": label_config, **fields})

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        """Change some fields of a project (PATCH)."""
        return self._json("PATCH", f"/api/projects/{project_id}/", json=fields)

    def next_task(self, project_id: int) -> dict[str, Any] | None:
        """The task Label Studio's queue would show this user next, or None when none is left.

        Not a read-only query: Label Studio locks the task for the API key's user (24 h by default,
        ``TASK_LOCK_TTL``) and serves that same task again until the user annotates or skips it; with
        ``maximum_annotations`` 1 other annotators do not get it meanwhile.
        """
        task = self._json("GET", f"/api/projects/{project_id}/next/", not_found_ok=True)
        if task is None:
            self.get_project(project_id)  # raises LabelStudioAPIError when the 404 meant "no such project"
        return task

    def retrieve_predictions(self, project_id: int, task_ids: list[int]) -> dict[str, Any]:
        """Run the Data Manager's "Retrieve Predictions" action: Label Studio asks the project's ML
        backend (``/predict``) for the tasks that hold no prediction of its current model version."""
        return self._json(
            "POST",
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": project_id},
            json={"selectedItems": {"all": False, "included": task_ids}},
        )

    def export(self, project_id: int, export_type: str = "JSON") -> bytes:
        """The project's export in one of Label Studio's formats (JSON, BRUSH_TO_PNG, ...), as raw bytes."""
        path = f"/api/projects/{project_id}/export"
        return self._request("GET", path, params={"exportType": export_type}).content

    # ---- tasks ----------------------------------------------------------------------------------------

    def list_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """All tasks of a project, each with its ``annotations`` and ``predictions``, read page by page."""
        tasks: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {"project": project_id, "fields": "all", "page": page, "page_size": TASK_PAGE_SIZE}
            answer = self._json("GET", "/api/tasks/", params=params)
            tasks.extend(answer["tasks"])
            if not answer["tasks"] or len(tasks) >= answer["total"]:
                return tasks
            page += 1

    def get_task(self, task_id: int) -> dict[str, Any]:
        """One task with its annotations and predictions."""
        return self._json("GET", f"/api/tasks/{task_id}/")

    def create_tasks(self, project_id: int, data_list: list[dict[str, Any]]) -> list[int]:
        """Import one task per ``data`` dict in one request; return the new task ids in the same order."""
        if not data_list:
            return []
        answer = self._json(
            "POST",
            f"/api/projects/{project_id}/import",
            params={"return_task_ids": "true"},
            json=[{"data": data} for data in data_list],
        )
        return [int(task_id) for task_id in answer["task_ids"]]

    def delete_task(self, task_id: int) -> None:
        """Delete a task with its predictions; one that is already gone counts as deleted."""
        self._request("DELETE", f"/api/tasks/{task_id}/", not_found_ok=True)

    # ---- predictions ----------------------------------------------------------------------------------

    def create_prediction(
        self, task_id: int, result: list[dict[str, Any]], score: float, model_version: str
    ) -> dict[str, Any]:
        """Attach a prediction to a task. Label Studio does not validate ``result`` against the config."""
        payload = {"task": task_id, "result": result, "score": score, "model_version": model_version}
        return self._json("POST", "/api/predictions/", json=payload)

    def delete_prediction(self, prediction_id: int) -> None:
        """Delete a prediction; one that is already gone counts as deleted."""
        self._request("DELETE", f"/api/predictions/{prediction_id}/", not_found_ok=True)

    def list_predictions(self, task_id: int) -> list[dict[str, Any]]:
        """All predictions of a task."""
        return self._json("GET", "/api/predictions/", params={"task": task_id})

    # ---- annotations ----------------------------------------------------------------------------------

    def create_annotation(
        self, task_id: int, result: list[dict[str, Any]], lead_time: float | None = None
    ) -> dict[str, Any]:
        """Submit an annotation on a task as the API key's user (``lead_time``: the seconds it took)."""
        body: dict[str, Any] = {"result": result}
        if lead_time is not None:
            body["lead_time"] = lead_time
        return self._json("POST", f"/api/tasks/{task_id}/annotations/", json=body)

    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]]) -> dict[str, Any]:
        """Replace an annotation's result."""
        return self._json("PATCH", f"/api/annotations/{annotation_id}/", json={"result": result})

    def delete_annotation(self, annotation_id: int) -> None:
        """Delete an annotation; one that is already gone counts as deleted."""
        self._request("DELETE", f"/api/annotations/{annotation_id}/", not_found_ok=True)

    def get_annotation(self, annotation_id: int) -> dict[str, Any] | None:
        """One annotation as Label Studio holds it now (with its ``task``), or None if it has none by that id."""
        return self._json("GET", f"/api/annotations/{annotation_id}/", not_found_ok=True)

    def list_annotations(self, task_id: int) -> list[dict[str, Any]]:
        """The task's annotations (cancelled/skipped ones excluded), oldest first."""
        return self._json("GET", f"/api/tasks/{task_id}/annotations/")

    # ---- ML backends and webhooks ---------------------------------------------------------------------

    def add_ml_backend(
        self, project_id: int, url: str, title: str, login: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """Connect an ML backend; Label Studio calls its /health and /setup before answering.

        With ``login`` (user, password), Label Studio calls it with HTTP basic auth.
        """
        payload: dict[str, Any] = {"project": project_id, "url": url, "title": title, **_ml_login(login)}
        return self._json("POST", "/api/ml/", json=payload)

    def set_ml_backend_login(self, ml_backend_id: int, login: tuple[str, str] | None) -> dict[str, Any]:
        """Make Label Studio call an ML backend with HTTP basic auth (``login``: user, password) or without."""
        return self._json("PATCH", f"/api/ml/{ml_backend_id}", json=_ml_login(login))

    def start_training(self, ml_backend_id: int) -> None:
        """Press the project's *Start Training*: Label Studio sends START_TRAINING to the backend's ``/webhook``."""
        self._request("POST", f"/api/ml/{ml_backend_id}/train")

    def list_ml_backends(self, project_id: int) -> list[dict[str, Any]]:
        """The project's ML backends (Label Studio calls each one's /health and /setup to refresh its state)."""
        return self._json("GET", "/api/ml/", params={"project": project_id})

    def add_webhook(self, project_id: int, url: str, actions: list[str]) -> dict[str, Any]:
        """Register a webhook that POSTs full payloads for ``actions`` (every action when the list is empty)."""
        payload = {
            "project": project_id,
            "url": url,
            "send_payload": True,
            "send_for_all_actions": not actions,
            "actions": actions,
        }
        return self._json("POST", "/api/webhooks/", json=payload)

    def set_webhook_headers(self, webhook_id: int, headers: dict[str, str]) -> dict[str, Any]:
        """Replace the HTTP headers Label Studio sends with a webhook's requests."""
        return self._json("PATCH", f"/api/webhooks/{webhook_id}/", json={"headers": headers})

    def list_webhooks(self, project_id: int) -> list[dict[str, Any]]:
        """The project's webhooks, including the one Label Studio adds for each connected ML backend."""
        return self._json("GET", "/api/webhooks/", params={"project": project_id})

    # ---- files ----------------------------------------------------------------------------------------

    def add_local_storage(self, project_id: int, path: str, title: str) -> dict[str, Any]:
        """Attach a Local Files storage whose ``path`` lies under Label Studio's document root.

        Tasks of the project may then reference files below ``path`` as ``/data/local-files/?d=<path
        relative to the document root>``; no sync is needed for that.
        """
        payload = {"project": project_id, "path": path, "title": title, "use_blob_urls": True}
        return self._json("POST", "/api/storages/localfiles/", json=payload)

    def authorization(self, renew: bool = False) -> dict[str, str]:
        """The ``Authorization`` header for requests to this Label Studio (``renew``: exchange a personal
        access token again, after a 401)."""
        if renew:
            self._access_token = None
        return self._auth_header()

    # ---- plumbing -------------------------------------------------------------------------------------

    def _json(self, method: str, path: str, *, not_found_ok: bool = False, **kwargs: Any) -> Any:
        """Send an authenticated request and parse its JSON answer (None for an empty body or a tolerated 404)."""
        response = self._request(method, path, not_found_ok=not_found_ok, **kwargs)
        if response.status_code == 404 or not response.content:
            return None
        return response.json()

    def _request(self, method: str, path: str, *, not_found_ok: bool = False, **kwargs: Any) -> requests.Response:
        """Send an authenticated request (retrying transient failures); raise on error statuses.

        ``path`` is relative to the server URL or absolute on it. With a personal access token, a 401
        answer triggers one token refresh and one more request.
        """
        url = urljoin(self.url + "/", path)
        response = self._send(method, url, headers=self._auth_header(), **kwargs)
        if response.status_code == 401 and self._uses_personal_token:
            self._access_token = None
            response = self._send(method, url, headers=self._auth_header(), **kwargs)
        if response.status_code == 404 and not_found_ok:
            return response
        return _checked(method, urlsplit(url).path, response)

    def _auth_header(self) -> dict[str, str]:
        """The Authorization header for our key, exchanging a personal access token when needed."""
        if not self._uses_personal_token:
            return {"Authorization": f"Token {self._api_key}"}
        if self._access_token is None:
            url = f"{self.url}/api/token/refresh/"
            response = self._send("POST", url, headers={}, json={"refresh": self._api_key})
            self._access_token = str(_checked("POST", "/api/token/refresh/", response).json()["access"])
        return {"Authorization": f"Bearer {self._access_token}"}

    def _send(self, method: str, url: str, *, headers: dict[str, str], **kwargs: Any) -> requests.Response:
        """One request, tried again after connection errors, timeouts and 502/503/504 with exponential backoff."""
        attempts = self.retries + 1
        problem = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
            try:
                response = self._session.request(method, url, headers=headers, timeout=self.timeout_s, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as error:
                problem = f"{type(error).__name__}: {error}"
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            problem = f"status {response.status_code}: {response.text[:ERROR_TEXT_CHARS]}"
        raise LabelStudioUnavailable(
            f"Label Studio unavailable: {method} {url} failed after {attempts} attempts; last problem: {problem}"
        )


def _ml_login(login: tuple[str, str] | None) -> dict[str, str]:
    """The fields of an ML-backend connection for HTTP basic auth with ``login``, or for none."""
    if login is None:
        return {"auth_method": "NONE"}
    return {"auth_method": "BASIC_AUTH", "basic_auth_user": login[0], "basic_auth_pass": login[1]}


def _checked(method: str, path: str, response: requests.Response) -> requests.Response:
    """Return ``response`` when its status is a success; raise LabelStudioAPIError otherwise."""
    if response.status_code >= 400:
        raise LabelStudioAPIError(method, path, response.status_code, response.text)
    return response
