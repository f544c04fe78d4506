"""LabelStudioClient against a real Label Studio 1.23.2 (the session's `label_studio` fixture) and local stubs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from alc_backend.labelstudio.client import (
    LabelStudioAPIError,
    LabelStudioClient,
    LabelStudioUnavailable,
    is_personal_access_token,
)
from alc_backend.labelstudio.local_server import LabelStudioServer, free_port
from alc_backend.service.downloads import SourceRules, TaskFiles

BRUSH_CONFIG = (
    '<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image">'
    '<Label value="background"/><Label value="car"/></BrushLabels></View>'
)
LEGACY_TOKEN = "0123456789abcdef0123456789abcdef01234567"

Responder = Callable[[str, str, Any], tuple[int, Any]]


class StubServer:
    """A tiny HTTP server on 127.0.0.1 that records requests and answers through `responder(method, path, body)`."""

    def __init__(self, responder: Responder) -> None:
        self.requests: list[tuple[str, str, Any, str | None]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                stub.requests.append((method, self.path, body, self.headers.get("Authorization")))
                status, payload = responder(method, self.path, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def log_message(self, *args: object) -> None:
                """Keep the test output quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def actions(self) -> list[str]:
        """The `action` of every webhook POST received so far."""
        return [body["action"] for method, path, body, _ in self.requests if path == "/webhook"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def ml_backend_responder(method: str, path: str, body: Any) -> tuple[int, Any]:
    """Answers like a minimal ML backend: /health, /setup and /webhook."""
    if path == "/setup":
        return 200, {"model_version": "stub-v1"}
    return 200, {"status": "UP"}


def write_png(path: Path, value: int) -> bytes:
    """Write a small grey PNG and return its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 8), value, dtype=np.uint8)).save(path)
    return path.read_bytes()


def brush_result(label: str = "car", readonly: bool = False) -> list[dict[str, Any]]:
    """One brush region in Label Studio's format (its RLE is not checked by the server)."""
    return [
        {
            "from_name": "tag",
            "to_name": "image",
            "type": "brushlabels",
            "original_width": 8,
            "original_height": 6,
            "readonly": readonly,
            "value": {"format": "rle", "rle": [0, 0, 0, 4], "brushlabels": [label]},
        }
    ]


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll `condition` until it holds or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def stub_ml_backend() -> Iterator[StubServer]:
    server = StubServer(ml_backend_responder)
    yield server
    server.close()


def new_project(client: LabelStudioClient, title: str, images: int) -> tuple[int, list[int]]:
    """A brush project with `images` tasks whose image URLs need not exist."""
    project_id = client.create_project(title, BRUSH_CONFIG)["id"]
    task_ids = client.create_tasks(project_id, [{"image": f"/data/upload/{title}-{i}.png"} for i in range(images)])
    return project_id, task_ids


# ---- without Label Studio ---------------------------------------------------------------------------------


def test_personal_access_tokens_are_told_from_legacy_tokens() -> None:
    assert is_personal_access_token("aaa.bbb.ccc")
    assert not is_personal_access_token(LEGACY_TOKEN)
    assert not is_personal_access_token("a..c")


def test_unavailable_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = LabelStudioClient(url, LEGACY_TOKEN, retries=2, backoff_s=0.01)
    with pytest.raises(LabelStudioUnavailable, match=r"after 3 attempts") as caught:
        client.version()
    assert f"{url}/api/version" in str(caught.value)


def test_gateway_errors_are_retried_and_client_errors_are_not() -> None:
    answers = iter([(503, {"detail": "starting"}), (502, {}), (200, {"release": "1.23.2"})])
    stub = StubServer(lambda method, path, body: next(answers) if path == "/api/version" else (400, "x" * 900))
    try:
        client = LabelStudioClient(stub.url, LEGACY_TOKEN, retries=2, backoff_s=0.01)
        assert client.version() == {"release": "1.23.2"}
        assert [auth for _, _, _, auth in stub.requests] == [f"Token {LEGACY_TOKEN}"] * 3
        with pytest.raises(LabelStudioAPIError, match=r"POST /api/projects/ answered 400") as caught:
            client.create_project("p", BRUSH_CONFIG)
        assert caught.value.status == 400
        assert len(str(caught.value)) < 600
        assert len(stub.requests) == 4
    finally:
        stub.close()


# ---- against Label Studio ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.labelstudio
def test_version(client: LabelStudioClient) -> None:
    assert client.version()["release"] == "1.23.2"


@pytest.mark.slow
@pytest.mark.labelstudio
def test_local_images_are_served_through_a_local_storage(
    label_studio: LabelStudioServer, client: LabelStudioClient
) -> None:
    folder = label_studio.document_root / "local-images"
    contents = [write_png(folder / f"img{i}.png", value=40 * i) for i in range(3)]
    project_id = client.create_project("local images", BRUSH_CONFIG)["id"]
    label_studio.add_local_storage(project_id, folder)
    urls = [label_studio.local_file_url(folder / f"img{i}.png") for i in range(3)]

    task_ids = client.create_tasks(project_id, [{"image": url} for url in urls])

    tasks = client.list_tasks(project_id)
    assert [task["id"] for task in tasks] == task_ids
    assert [task["data"]["image"] for task in tasks] == urls
    assert all(task["annotations"] == [] and task["predictions"] == [] for task in tasks)
    assert urls[1] == "/data/local-files/?d=local-images/img1.png"
    task_files = TaskFiles(client, SourceRules())
    for url, content in zip(urls, contents, strict=True):
        assert task_files.read(url) == content, "read from Label Studio's own host with the backend's token"
    assert client.get_task(task_ids[2])["data"]["image"] == urls[2]


@pytest.mark.slow
@pytest.mark.labelstudio
def test_list_tasks_reads_every_page(client: LabelStudioClient) -> None:
    project_id, task_ids = new_project(client, "many", images=130)
    assert [task["id"] for task in client.list_tasks(project_id)] == task_ids


@pytest.mark.slow
@pytest.mark.labelstudio
def test_uncertainty_sampling_serves_the_lowest_score_of_the_project_model_version(client: LabelStudioClient) -> None:
    project_id, task_ids = new_project(client, "queue", images=4)
    for task_id, score in zip(task_ids[:3], (0.9, 0.2, 0.5), strict=True):
        client.create_prediction(task_id, brush_result(), score, "v1")
    client.create_prediction(task_ids[0], brush_result(), 0.01, "other-model")
    client.create_prediction(task_ids[3], brush_result(), 0.0, "other-model")

    project = client.update_project(project_id, sampling="Uncertainty sampling", model_version="v1")
    assert (project["sampling"], project["model_version"]) == ("Uncertainty sampling", "v1")

    served = []
    while (task := client.next_task(project_id)) is not None:
        assert client.next_task(project_id)["id"] == task["id"]  # locked for this user until answered
        served.append(task["id"])
        client.create_annotation(task["id"], brush_result())
    assert served == [task_ids[1], task_ids[2], task_ids[0], task_ids[3]]  # other versions' scores do not count
    with pytest.raises(LabelStudioAPIError, match="404"):
        client.next_task(999_999)


@pytest.mark.slow
@pytest.mark.labelstudio
def test_predictions_keep_their_payload(client: LabelStudioClient) -> None:
    _, (task_id,) = new_project(client, "payload", images=1)
    result = brush_result("background", readonly=True)

    prediction = client.create_prediction(task_id, result, 0.25, "v7")

    assert prediction["result"] == result
    assert (prediction["score"], prediction["model_version"], prediction["task"]) == (0.25, "v7", task_id)
    assert [p["id"] for p in client.list_predictions(task_id)] == [prediction["id"]]
    assert client.get_task(task_id)["predictions"][0]["result"][0]["readonly"] is True
    client.delete_prediction(prediction["id"])
    client.delete_prediction(prediction["id"])  # already gone: no error
    assert client.list_predictions(task_id) == []


@pytest.mark.slow
@pytest.mark.labelstudio
def test_annotations_are_created_updated_and_deleted(client: LabelStudioClient) -> None:
    _, (task_id,) = new_project(client, "annotations", images=1)

    annotation = client.create_annotation(task_id, brush_result("car"))
    assert annotation["task"] == task_id and annotation["result"][0]["value"]["brushlabels"] == ["car"]

    updated = client.update_annotation(annotation["id"], brush_result("background"))
    assert updated["id"] == annotation["id"]
    listed = client.list_annotations(task_id)
    assert [a["result"][0]["value"]["brushlabels"] for a in listed] == [["background"]]

    client.delete_annotation(annotation["id"])
    client.delete_annotation(annotation["id"])  # already gone: no error
    assert client.list_annotations(task_id) == []


@pytest.mark.slow
@pytest.mark.labelstudio
def test_webhook_and_json_export(client: LabelStudioClient) -> None:
    project_id, (task_id,) = new_project(client, "export", images=1)
    webhook = client.add_webhook(project_id, "http://127.0.0.1:9/hook", ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"])
    assert webhook["send_payload"] is True
    assert sorted(webhook["actions"]) == ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]
    assert [hook["id"] for hook in client.list_webhooks(project_id)] == [webhook["id"]]
    client.create_annotation(task_id, brush_result())  # the webhook's target is down: Label Studio shrugs

    exported = json.loads(client.export(project_id, "JSON"))

    assert [task["id"] for task in exported] == [task_id]
    assert exported[0]["annotations"][0]["result"] == brush_result()


@pytest.mark.slow
@pytest.mark.labelstudio
def test_connected_ml_backend_receives_annotation_and_training_webhooks(
    client: LabelStudioClient, stub_ml_backend: StubServer
) -> None:
    project_id, task_ids = new_project(client, "ml backend", images=2)
    with pytest.raises(LabelStudioAPIError, match=r"400.*health check failed"):
        client.add_ml_backend(project_id, f"http://127.0.0.1:{free_port()}", "nowhere")

    backend = client.add_ml_backend(project_id, stub_ml_backend.url, "alc")

    assert (backend["readable_state"], backend["model_version"]) == ("Connected", "stub-v1")
    assert client.get_project(project_id)["model_version"] == "alc"  # the backend's title, not its version
    assert [b["id"] for b in client.list_ml_backends(project_id)] == [backend["id"]]
    hooks = client.list_webhooks(project_id)
    assert [(h["url"], h["send_for_all_actions"]) for h in hooks] == [(f"{stub_ml_backend.url}/webhook", True)]

    client.create_annotation(task_ids[0], brush_result())
    assert wait_for(lambda: stub_ml_backend.actions() == ["ANNOTATION_CREATED"])
    client.update_project(project_id, start_training_on_annotation_update=True)
    assert client.get_project(project_id)["min_annotations_to_start_training"] == 1
    client.create_annotation(task_ids[1], brush_result())
    assert wait_for(lambda: stub_ml_backend.actions()[-2:] == ["START_TRAINING", "ANNOTATION_CREATED"])
    assert "/predict" not in [path for _, path, _, _ in stub_ml_backend.requests]


@pytest.mark.slow
@pytest.mark.labelstudio
def test_personal_access_token(label_studio: LabelStudioServer, client: LabelStudioClient) -> None:
    created = requests.post(
        f"{label_studio.url}/api/token/", headers={"Authorization": f"Token {label_studio.token}"}, timeout=30
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert is_personal_access_token(token)

    pat_client = LabelStudioClient(label_studio.url, token)
    assert pat_client.version()["release"] == "1.23.2"
    project_id = client.create_project("pat", BRUSH_CONFIG)["id"]
    pat_client._access_token = "expired.access.token"  # the next 401 makes the client refresh once
    assert pat_client.get_project(project_id)["title"] == "pat"
    assert pat_client._access_token != "expired.access.token"

    with pytest.raises(LabelStudioAPIError, match=r"POST /api/token/refresh/ answered 401"):
        LabelStudioClient(label_studio.url, "not.a.token", retries=0).version()


@pytest.mark.slow
@pytest.mark.labelstudio
def test_a_write_is_retried_across_a_label_studio_restart(label_studio: LabelStudioServer) -> None:
    client = label_studio.client()
    _, (task_id,) = new_project(client, "restart", images=1)
    patient = label_studio.client(retries=10, backoff_s=0.5)
    outcome: dict[str, Any] = {}

    def write() -> None:
        try:
            outcome["prediction"] = patient.create_prediction(task_id, brush_result(), 0.4, "v1")
        except Exception as error:  # reported by the assertion below
            outcome["error"] = error

    label_studio.stop_temporarily()
    writer = threading.Thread(target=write)
    try:
        writer.start()
        time.sleep(2.0)
        assert writer.is_alive()
    finally:
        label_studio.restart()
    writer.join(timeout=180)

    assert "error" not in outcome, outcome.get("error")
    assert [p["id"] for p in client.list_predictions(task_id)] == [outcome["prediction"]["id"]]
