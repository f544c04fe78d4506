"""The HTTP server: Label Studio's ML-backend protocol on Flask.

Endpoints: ``GET /health``, ``POST /setup``, ``POST /predict``, ``POST /webhook``,
``GET /versions``, ``POST /train`` (older Label Studio versions), plus ``POST /init`` (create the
query project of an image project), ``POST /export`` (queue an export to the workspace) and
``GET /jobs``. Every error is JSON: ``{"error": ...}``
with 400 for a malformed request, 401 without the login when one is set, 403 for an operator
action from elsewhere, 413 for a body over ``ALC_MAX_REQUEST_MB``, 503 when Label Studio or
Redis is unreachable, and 500, without details, for a
fault of the backend (the log has them).

``/init``, ``/train``, ``/export`` and the ``START_TRAINING`` webhook are operator actions: with
a login set, anyone who has it; without one, only callers on this machine (loopback). Run it
with ``alc-backend serve`` (Flask's threaded server) or, in
production, ``gunicorn -w 1 --threads 8 'alc_backend.server:create_app()'`` (one process: the
in-process job runner lives in it).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from alc_backend.jobs import ProjectBusy, QueueUnavailable
from alc_backend.labelstudio.client import LabelStudioAPIError, LabelStudioUnavailable
from alc_backend.service.backend import Backend, BadRequest, is_id
from alc_backend.service.settings import BackendSettings
from alc_backend.service.workspace import WorkspaceError

logger = logging.getLogger(__name__)


def create_app(settings: BackendSettings | None = None, backend: Backend | None = None) -> Flask:
    """A Flask app serving ``backend`` (default: a new one from ``settings`` or the environment)."""
    settings = settings or BackendSettings.from_env()
    backend = backend or Backend(settings)
    app = Flask("alc_backend")
    app.config["backend"] = backend
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_mb * 2**20

    def require_operator(action: str) -> None:
        if settings.basic_auth_user or _from_loopback():
            return
        raise BadRequest(
            f"{action} is an operator action: call it from the backend's machine, or set BASIC_AUTH_USER and "
            "BASIC_AUTH_PASS and call it with that login",
            403,
        )

    @app.before_request
    def check_basic_auth() -> Response | None:
        if not settings.basic_auth_user:
            return None
        auth = request.authorization
        if (
            auth is not None
            and hmac.compare_digest(str(auth.username or ""), settings.basic_auth_user)
            and hmac.compare_digest(str(auth.password or ""), settings.basic_auth_pass)
        ):
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

    @app.errorhandler(ProjectBusy)
    def busy(error: ProjectBusy) -> tuple[Response, int]:
        return jsonify(error=str(error)), 503

    @app.errorhandler(QueueUnavailable)
    def queue_unavailable(error: QueueUnavailable) -> tuple[Response, int]:
        return jsonify(error=str(error)), 503

    @app.errorhandler(WorkspaceError)
    def corrupt_workspace(error: WorkspaceError) -> tuple[Response, int]:
        return jsonify(error=str(error)), 500

    @app.errorhandler(LabelStudioAPIError)
    def api_error(error: LabelStudioAPIError) -> tuple[Response, int]:
        return jsonify(error=str(error)), 502

    @app.errorhandler(404)
    def not_found(_: Exception) -> tuple[Response, int]:
        return jsonify(error=f"no endpoint {request.method} {request.path}"), 404

    @app.errorhandler(405)
    def wrong_method(_: Exception) -> tuple[Response, int]:
        return jsonify(error=f"{request.path} does not accept {request.method}"), 405

    @app.errorhandler(413)
    def too_large(_: Exception) -> tuple[Response, int]:
        return jsonify(error=f"the request body is larger than ALC_MAX_REQUEST_MB ({settings.max_request_mb} MB)"), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        return jsonify(error=f"{error.code} {error.name}"), error.code or 500

    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> tuple[Response, int]:
        logger.exception("%s %s failed", request.method, request.path)
        return jsonify(
            error=f"the backend failed on {request.method} {request.path} ({type(error).__name__}); "
            "its log has the details"
        ), 500

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
        for index, task in enumerate(tasks):
            if not isinstance(task, dict) or not is_id(task.get("id")):
                raise BadRequest(f"tasks[{index}] must be a task object with an integer 'id'")
        results = backend.predict(_field(body, "project", (str, int)), tasks, str(body.get("label_config") or ""))
        return jsonify(results=results)

    @app.post("/webhook")
    def webhook() -> Response:
        body = _json_body()
        if body.get("action") == "START_TRAINING":
            require_operator("START_TRAINING")
        return jsonify(backend.webhook(body))

    @app.route("/versions", methods=["GET", "POST"])
    def versions() -> Response:
        return jsonify(versions=backend.versions(), message="")

    @app.post("/train")
    def train() -> Response:
        require_operator("/train")
        body = _json_body()
        return jsonify(
            backend.webhook({"action": "START_TRAINING", "project": _field(body, "project", (str, int, dict))})
        )

    @app.post("/init")
    def init() -> Response:
        require_operator("/init")
        body = _json_body()
        images_project = _field(body, "images_project", (int, str))
        if not is_id(images_project):
            raise BadRequest(f"'images_project' must be an integer project id, got {images_project!r}")
        if not settings.backend_url:
            raise BadRequest(
                "the backend does not know its own address as Label Studio reaches it: set ALC_BACKEND_URL "
                "(alc-backend serve sets it from --host and --port)"
            )
        title = body.get("title")
        result = backend.init_queries(int(images_project), settings.backend_url, str(title)[:200] if title else None)
        return jsonify(result)

    @app.post("/export")
    def export() -> Response:
        require_operator("/export")
        project = _field(_json_body(), "project", (int, str))
        if not is_id(project):
            raise BadRequest(f"'project' must be an integer project id, got {project!r}")
        project = int(project)
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
    except RecursionError:
        raise BadRequest("the request body is JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def _from_loopback() -> bool:
    """Whether the request comes from this machine."""
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in body:
        raise BadRequest(f"the request has no '{name}'")
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadRequest(f"'{name}' has the wrong type ({type(value).__name__})")
    return value
