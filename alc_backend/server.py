"""The HTTP server: Label Studio's ML-backend protocol on Flask.

Endpoints: ``GET /health``, ``POST /setup``, ``POST /predict``, ``POST /webhook``,
``GET /versions``, ``POST /train`` (older Label Studio versions), plus ``POST /init`` (create the
query project of an image project), ``POST /export`` (queue an export to the workspace) and
``GET /jobs``. Every error is JSON: ``{"error": ...}``
with 400 for a malformed request, 422 for an answer the backend cannot read, 503 when Label
Studio is unreachable. Run it with ``alc-backend serve`` (Flask's threaded server) or, in
production, ``gunicorn -w 1 --threads 8 'alc_backend.server:create_app()'`` (one process: the
in-process job runner lives in it).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, jsonify, request

from alc_backend.jobs import QueueUnavailable
from alc_backend.labelstudio.client import LabelStudioAPIError, LabelStudioUnavailable
from alc_backend.service.backend import Backend, BadRequest
from alc_backend.service.settings import BackendSettings

logger = logging.getLogger(__name__)


def create_app(settings: BackendSettings | None = None, backend: Backend | None = None) -> Flask:
    """A Flask app serving ``backend`` (default: a new one from ``settings`` or the environment)."""
    settings = settings or BackendSettings.from_env()
    backend = backend or Backend(settings)
    app = Flask("alc_backend")
    app.config["backend"] = backend

    @app.before_request
    def check_basic_auth() -> Response | None:
        if not settings.basic_auth_user:
            return None
        auth = request.authorization
        if auth and auth.username == settings.basic_auth_user and auth.password == settings.basic_auth_pass:
            return None
        response = jsonify(error="authentication required")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Basic realm="alc-backend"'
        return response

    @app.errorhandler(BadRequest)
    def bad_request(error: BadRequest) -> tuple[Response, int]:
        return jsonify(error=str(error)), error.status

    @app.errorhandler(LabelStudioUnavailable)
    def unavailable(error: LabelStudioUnavailable) -> tuple[Response, int]:
        return jsonify(error=str(error)), 503

    @app.errorhandler(QueueUnavailable)
    def queue_unavailable(error: QueueUnavailable) -> tuple[Response, int]:
        return jsonify(error=str(error)), 503

    @app.errorhandler(LabelStudioAPIError)
    def api_error(error: LabelStudioAPIError) -> tuple[Response, int]:
        return jsonify(error=str(error)), 502

    @app.errorhandler(404)
    def not_found(_: Exception) -> tuple[Response, int]:
        return jsonify(error=f"no endpoint {request.method} {request.path}"), 404

    @app.errorhandler(405)
    def wrong_method(_: Exception) -> tuple[Response, int]:
        return jsonify(error=f"{request.path} does not accept {request.method}"), 405

    @app.get("/")
    @app.get("/health")
    def health() -> Response:
        return jsonify(backend.health())

    @app.post("/setup")
    def setup() -> Response:
        body = _json_body()
        schema = _field(body, "schema", str)
        version = backend.setup(
            _field(body, "project", (str, int)),
            schema,
            str(body.get("hostname") or ""),
            str(body.get("access_token") or ""),
        )
        return jsonify(model_version=version)

    @app.post("/predict")
    def predict() -> Response:
        body = _json_body()
        tasks = _field(body, "tasks", list)
        if not all(isinstance(task, dict) and "id" in task for task in tasks):
            raise BadRequest("every item of 'tasks' must be a task object with an 'id'")
        results = backend.predict(_field(body, "project", (str, int)), tasks, str(body.get("label_config") or ""))
        return jsonify(results=results)

    @app.post("/webhook")
    def webhook() -> Response:
        return jsonify(backend.webhook(_json_body()))

    @app.route("/versions", methods=["GET", "POST"])
    def versions() -> Response:
        return jsonify(versions=backend.versions(), message="")

    @app.post("/train")
    def train() -> Response:
        body = _json_body()
        return jsonify(
            backend.webhook({"action": "START_TRAINING", "project": _field(body, "project", (str, int, dict))})
        )

    @app.post("/init")
    def init() -> Response:
        body = _json_body()
        images_project = _field(body, "images_project", (int, str))
        backend_url = settings.backend_url or str(body.get("backend_url") or "") or request.host_url
        title = body.get("title")
        result = backend.init_queries(int(images_project), backend_url, str(title) if title else None)
        return jsonify(result)

    @app.post("/export")
    def export() -> Response:
        project = int(_field(_json_body(), "project", (int, str)))
        backend.submit("export", project)
        return jsonify(status="queued", job="export", folder=str(backend.work.export_folder(project)))

    @app.get("/jobs")
    def jobs() -> Response:
        return jsonify(backend.runner.status())

    return app


def _json_body() -> dict[str, Any]:
    """The request's JSON object; BadRequest naming the problem otherwise."""
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw or b"null")
    except ValueError as error:
        raise BadRequest(f"the request body is not valid JSON: {error}") from error
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in body:
        raise BadRequest(f"the request has no '{name}'")
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadRequest(f"'{name}' has the wrong type ({type(value).__name__})")
    return value
