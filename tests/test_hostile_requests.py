"""Requests an attacker or a careless client sends, against the server without Label Studio."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from alc_backend.cli import serving_url
from alc_backend.server import create_app
from alc_backend.service.backend import Backend
from alc_backend.service.settings import BackendSettings

BRUSH_CONFIG = (
    '<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image">'
    '<Label value="background"/><Label value="car"/></BrushLabels></View>'
)
ELSEWHERE = {"REMOTE_ADDR": "203.0.113.7"}


def serve(settings: BackendSettings) -> Iterator[tuple[Backend, FlaskClient]]:
    backend = Backend(settings, retry_delays_s=())
    try:
        yield backend, create_app(settings, backend).test_client()
    finally:
        backend.runner.stop()


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Backend, FlaskClient]]:
    yield from serve(BackendSettings(model_dir=tmp_path / "workspace", max_request_mb=1))


def test_a_body_over_the_limit_answers_413_in_json(served: tuple[Backend, FlaskClient]) -> None:
    _, http = served
    body = json.dumps({"project": 1, "tasks": [], "padding": "x" * (2 * 2**20)})
    response = http.post("/predict", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json == {"error": "the request body is larger than ALC_MAX_REQUEST_MB (1 MB)"}


def test_an_image_event_without_a_task_answers_400(served: tuple[Backend, FlaskClient]) -> None:
    _, http = served
    assert http.post("/setup", json={"project": "3.1", "schema": BRUSH_CONFIG}).status_code == 200
    response = http.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 3}, "annotation": {}})
    assert response.status_code == 400
    assert response.json == {"error": "the ANNOTATION_CREATED payload's task must be an integer id, got null"}
    response = http.post(
        "/webhook", json={"action": "ANNOTATION_UPDATED", "project": 3, "annotation": {"task": "12; rm"}}
    )
    assert response.json == {"error": 'the ANNOTATION_UPDATED payload\'s task must be an integer id, got "12; rm"'}


def test_a_fault_of_the_backend_answers_500_in_json_without_its_traceback(
    served: tuple[Backend, FlaskClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, http = served

    def broken() -> list[str]:
        raise KeyError("a secret detail")

    monkeypatch.setattr(backend, "versions", broken)
    response = http.get("/versions")
    assert response.status_code == 500
    assert response.json == {"error": "the backend failed on GET /versions (KeyError); its log has the details"}


@pytest.mark.parametrize(
    ("path", "body", "action"),
    [
        ("/init", {"images_project": 1}, "/init"),
        ("/train", {"project": 1}, "/train"),
        ("/export", {"project": 1}, "/export"),
        ("/webhook", {"action": "START_TRAINING", "project": 1}, "START_TRAINING"),
    ],
)
def test_operator_actions_from_another_machine_without_a_login_answer_403(
    served: tuple[Backend, FlaskClient], path: str, body: dict, action: str
) -> None:
    backend, http = served
    response = http.post(path, json=body, environ_base=ELSEWHERE)
    assert response.status_code == 403
    assert response.json == {
        "error": f"{action} is an operator action: call it from the backend's machine, or set BASIC_AUTH_USER and "
        "BASIC_AUTH_PASS and call it with that login"
    }
    assert backend.runner.status()["queued"] == []


def test_operator_actions_with_the_login_are_taken_from_anywhere(tmp_path: Path) -> None:
    settings = BackendSettings(model_dir=tmp_path, basic_auth_user="ls", basic_auth_pass="secret")
    for _, http in serve(settings):
        response = http.post("/export", json={"project": 4}, environ_base=ELSEWHERE, auth=("ls", "secret"))
        assert response.status_code == 200 and response.json["status"] == "queued"


def test_init_takes_no_address_from_the_request(served: tuple[Backend, FlaskClient]) -> None:
    _, http = served
    response = http.post("/init", json={"images_project": 1, "backend_url": "http://attacker.example:80"})
    assert response.status_code == 400
    assert response.json["error"].startswith(
        "the backend does not know its own address as Label Studio reaches it: set ALC_BACKEND_URL"
    )


def test_serve_names_its_own_address_for_label_studio() -> None:
    assert serving_url("127.0.0.1", 9090) == "http://127.0.0.1:9090"
    assert serving_url("0.0.0.0", 9091) == "http://127.0.0.1:9091"
    assert serving_url("10.1.2.3", 80) == "http://10.1.2.3:80"
    assert serving_url("::1", 9090) == "http://[::1]:9090"


def test_setup_pins_the_first_label_studio_and_refuses_another(served: tuple[Backend, FlaskClient]) -> None:
    backend, http = served
    first = {"project": "3.1", "schema": BRUSH_CONFIG, "hostname": "http://ls.local:8080", "access_token": "t1"}
    assert http.post("/setup", json=first).status_code == 200
    assert http.post("/setup", json={**first, "access_token": "t2"}).status_code == 200
    assert backend.client().url == "http://ls.local:8080"
    pinned = backend.settings.model_dir / "label-studio.json"
    response = http.post("/setup", json={**first, "hostname": "http://attacker.example:8080"})
    assert response.status_code == 403
    assert response.json == {
        "error": "/setup names Label Studio at http://attacker.example:8080, but this backend is pinned to "
        f"http://ls.local:8080: set LABEL_STUDIO_URL, or delete {pinned} to pin another"
    }
    assert backend.client().url == "http://ls.local:8080"
    restarted = Backend(backend.settings, retry_delays_s=())
    try:
        response = (
            create_app(backend.settings, restarted)
            .test_client()
            .post("/setup", json={**first, "hostname": "http://attacker.example:8080"})
        )
        assert response.status_code == 403, "the pin outlives a restart"
    finally:
        restarted.runner.stop()


def test_a_corrupt_state_file_affects_only_its_own_project(served: tuple[Backend, FlaskClient]) -> None:
    backend, http = served
    for project in (3, 4):
        assert http.post("/setup", json={"project": f"{project}.1", "schema": BRUSH_CONFIG}).status_code == 200
    broken = backend.settings.model_dir / "project-4" / "project.json"
    broken.write_text("")
    health = http.get("/health")
    assert health.status_code == 200
    assert health.json["projects"]["3"]["model_version"] == "alc-r0"
    assert health.json["projects"]["4"] == {"error": f"{broken} is corrupt (Expecting value: line 1 column 1 (char 0))"}
    assert http.get("/versions").json["versions"] == ["alc-r0"]
    response = http.post("/predict", json={"project": "4.1", "tasks": [{"id": 1}], "label_config": BRUSH_CONFIG})
    assert response.status_code == 500
    assert response.json == {"error": f"{broken} is corrupt (Expecting value: line 1 column 1 (char 0))"}
