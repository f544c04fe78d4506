"""The HTTP protocol without Label Studio: requests Label Studio 1.23.2 really sent, and bad ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from alc_backend.cli import main
from alc_backend.server import create_app
from alc_backend.service.addresses import same_address
from alc_backend.service.backend import Backend
from alc_backend.service.settings import BackendSettings

RECORDED = Path(__file__).resolve().parent / "data" / "labelstudio-1.23.2"


def recorded(name: str) -> dict[str, Any]:
    """The body of a request that a real Label Studio 1.23.2 sent (copied from ``../shared/labelstudio-1.23.2``)."""
    return json.loads((RECORDED / name).read_text())["body"]


@pytest.fixture()
def backend(tmp_path: Path) -> Iterator[Backend]:
    settings = BackendSettings(model_dir=tmp_path / "workspace", label_studio_url="http://127.0.0.1:9", api_key="x")
    backend = Backend(settings, retry_delays_s=())
    yield backend
    backend.runner.stop()


@pytest.fixture()
def http(backend: Backend) -> FlaskClient:
    return create_app(backend.settings, backend).test_client()


def test_health_and_versions_answer_in_the_shape_label_studio_reads(http: FlaskClient) -> None:
    health = http.get("/health")
    assert health.status_code == 200 and health.json["status"] == "UP"
    assert http.get("/versions").json == {"versions": [], "message": ""}


def test_setup_registers_the_recorded_brush_project_and_reports_its_model_version(
    http: FlaskClient, backend: Backend
) -> None:
    response = http.post("/setup", json=recorded("setup.json"))
    assert response.status_code == 200 and response.json == {"model_version": "alc-r0"}
    state = backend.workspace(2).state()
    assert state.class_names == ["background", "road", "car"]
    assert http.get("/versions").json["versions"] == ["alc-r0"]


def test_predict_for_a_task_not_yet_prepared_answers_at_once_with_no_result_and_queues_preparation(
    http: FlaskClient, backend: Backend
) -> None:
    response = http.post("/predict", json=recorded("predict_brush_batch2.json"))
    assert response.status_code == 200
    assert response.json == {"results": [[], []]}
    assert backend.runner.wait_idle(60)
    (failure,) = backend.runner.status()["failed"]
    assert (failure["kind"], failure["project"]) == ("prepare", 2)
    assert failure["error"].startswith(
        "LabelStudioUnavailable: Label Studio unavailable: GET http://127.0.0.1:9/api/tasks/ failed after 6 attempts"
    )


def test_init_names_a_backend_that_does_not_answer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--images-project", "1", "--backend", "http://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err.startswith("alc-backend: error: cannot reach the backend at http://127.0.0.1:9:")


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/setup",
            b"{not json",
            "the request body is not valid JSON: Expecting property name enclosed in double quotes",
        ),
        ("/predict", b"[1, 2]", "the request body must be a JSON object, got list"),
        ("/predict", b'{"project": "2.17"}', "the request has no 'tasks'"),
        (
            "/predict",
            b'{"project": "2.17", "tasks": [{"data": {}}]}',
            "tasks[0] must be a task object with an integer 'id'",
        ),
        (
            "/predict",
            b'{"project": "2.17", "tasks": [{"id": 1}, {"id": "abc"}]}',
            "tasks[1] must be a task object with",
        ),
        ("/predict", b'{"project": "2.17", "tasks": [{"id": null}]}', "tasks[0] must be a task object with an"),
        ("/predict", b'{"project": "2.17", "tasks": [{"id": [1]}]}', "tasks[0] must be a task object with an"),
        ("/predict", b'{"project": "2.17", "tasks": [7]}', "tasks[0] must be a task object with an integer 'id'"),
        ("/predict", b"[" * 100_000 + b"]" * 100_000, "the request body is JSON nested too deeply"),
        ("/predict", b'{"project": [1], "tasks": []}', "'project' has the wrong type (list)"),
        ("/setup", b'{"project": "x.1", "schema": "<View/>"}', "cannot read a project id from 'x.1'"),
        ("/webhook", b'{"project": {"id": 2}}', "the webhook payload has no 'action'"),
        ("/webhook", b'{"action": "ANNOTATION_CREATED"}', "the ANNOTATION_CREATED payload has no 'project'"),
    ],
)
def test_malformed_requests_get_a_400_that_says_what_is_wrong(
    http: FlaskClient, path: str, body: bytes, message: str
) -> None:
    response = http.post(path, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"].startswith(message)


def test_a_config_the_backend_cannot_serve_is_refused_by_name(http: FlaskClient) -> None:
    text_config = (
        '<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="a"/></Choices></View>'
    )
    response = http.post("/setup", json={"project": "5.1", "schema": text_config})
    assert response.status_code == 400
    assert "BrushLabels" in response.json["error"]


def test_events_of_projects_the_backend_does_not_serve_are_acknowledged_and_ignored(http: FlaskClient) -> None:
    response = http.post("/webhook", json=recorded("webhook_ANNOTATION_CREATED.json"))
    assert response.status_code == 200
    assert response.json == {"status": "ignored", "reason": "project 2 is not served by this backend"}


def test_unknown_endpoints_and_methods_answer_in_json(http: FlaskClient) -> None:
    assert http.get("/nope").json == {"error": "no endpoint GET /nope"}
    assert http.get("/predict").json == {"error": "/predict does not accept GET"}


def test_basic_auth_when_configured(tmp_path: Path) -> None:
    settings = BackendSettings(model_dir=tmp_path, basic_auth_user="ls", basic_auth_pass="secret")
    backend = Backend(settings, retry_delays_s=())
    try:
        http = create_app(settings, backend).test_client()
        assert http.get("/health").status_code == 401
        assert http.get("/health", auth=("ls", "wrong")).status_code == 401
        assert http.get("/health", auth=("ls", "secret")).status_code == 200
    finally:
        backend.runner.stop()


def test_one_backend_under_two_spellings_of_its_address_is_one_connection() -> None:
    assert same_address("http://localhost:9090", "http://127.0.0.1:9090/")
    assert same_address("http://[::1]:9090/path/", "http://LOCALHOST:9090/path")
    assert same_address("http://example.org/webhook", "http://example.org:80/webhook")
    assert not same_address("http://localhost:9090", "http://localhost:9091")
    assert not same_address("http://localhost:9090", "https://localhost:9090")
    assert not same_address("http://10.0.0.5:9090", "http://127.0.0.1:9090")
    assert not same_address("http://localhost:9090/webhook", "http://localhost:9090")
    assert not same_address("http://localhost:port", "http://localhost:9090")
