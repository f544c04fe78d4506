"""Bad task data and a Label Studio that goes away, against a real Label Studio."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from backend_harness import RunningBackend, eventually, serve_backend
from huge_png import huge_png
from PIL import Image

from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.config import image_label_config, parse_image_config
from alc_backend.labelstudio.local_server import free_port
from alc_backend.labelstudio.payloads import labels_from_brush_results
from alc_backend.rounds.settings import RoundSettings

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

CLASSES = ("background", "road", "car")


@pytest.fixture(scope="module")
def running_backend(label_studio: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBackend]:
    settings = label_studio.backend_settings(
        tmp_path_factory.mktemp("workspace"),
        num_superpixels=8,
        round=RoundSettings(image_size=32, epochs=1, device="cpu"),
    )
    with serve_backend(settings, retry_delays_s=(3.0, 5.0, 10.0, 20.0, 40.0)) as running:
        yield running


@pytest.fixture(scope="module")
def broken_project(label_studio: Any, running_backend: RunningBackend) -> dict[str, Any]:
    """A project with one good task and broken ones, connected to the backend through Label Studio."""
    folder = label_studio.document_root / "broken"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / "good.png")
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[20:, :] = 1
    mask[30:40, 10:30] = 2
    Image.fromarray(mask).save(folder / "good_mask.png")
    Image.fromarray(mask[:32, :32]).save(folder / "small_mask.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "bomb.png").write_bytes(huge_png(20_000, 20_000))
    client = label_studio.client()
    project = client.create_project("broken inputs", image_label_config(CLASSES))
    label_studio.add_local_storage(project["id"], folder)
    url = label_studio.local_file_url
    good = url(folder / "good.png")
    tasks = client.create_tasks(
        project["id"],
        [
            {"image": good, "pseudo_mask": url(folder / "good_mask.png")},
            {"image": "/data/local-files/?d=broken/missing.png"},
            {"image": url(folder / "corrupt.png")},
            {"image": good, "pseudo_mask": url(folder / "small_mask.png")},
            {"image": good, "pseudo_mask": "/data/local-files/?d=broken/no_mask.png"},
            {"image": url(folder / "bomb.png")},
            {"image": good, "pseudo_mask": str(folder / "good_mask.png")},
            {"image": good, "pseudo_mask": "/proc/self/environ"},
            {"image": f"http://127.0.0.1:{free_port()}/image.png"},
            {"image": "http://169.254.169.254/latest/meta-data/image.png"},
        ],
    )
    client.add_ml_backend(project["id"], running_backend.url, "alc-backend")
    eventually(lambda: running_backend.backend.workspace(project["id"]).exists(), "Label Studio to call /setup")
    running_backend.wait()
    return {"id": project["id"], "tasks": tasks, "mask": mask, "folder": folder}


def test_broken_tasks_are_reported_by_name_and_the_good_one_is_served(
    broken_project: dict[str, Any], running_backend: RunningBackend, label_studio: Any
) -> None:
    broken = broken_project["tasks"][1:]
    missing, corrupt, small, no_mask, bomb, absolute, environ, unreachable, metadata = broken
    health = requests.get(f"{running_backend.url}/health", timeout=10).json()
    errors = health["projects"][str(broken_project["id"])]["task_errors"]
    assert set(errors) == {str(task) for task in broken}
    files = f"{label_studio.url}/data/local-files/"
    assert errors[str(missing)] == (
        f"task {missing}: image /data/local-files/?d=broken/missing.png: {files} answered HTTP 404"
    )
    assert errors[str(corrupt)].startswith(
        f"task {corrupt}: image /data/local-files/?d=broken/corrupt.png is not a readable image"
    )
    assert errors[str(small)] == (
        f"task {small}: pseudo_mask /data/local-files/?d=broken/small_mask.png is 32x32 "
        "but the image is 64x48 (width x height)"
    )
    assert errors[str(no_mask)] == (
        f"task {no_mask}: pseudo_mask /data/local-files/?d=broken/no_mask.png: {files} answered HTTP 404"
    )
    assert errors[str(bomb)].startswith(
        f"task {bomb}: image /data/local-files/?d=broken/bomb.png is too large to decode: Image size (400000000 pixels)"
    )
    no_local = "a local path, and the backend reads none: list the folders it may read in ALC_LOCAL_ROOTS"
    mask_path = broken_project["folder"] / "good_mask.png"
    assert errors[str(absolute)] == f"task {absolute}: pseudo_mask {mask_path}: {no_local}"
    assert errors[str(environ)] == f"task {environ}: pseudo_mask /proc/self/environ: {no_local}"
    image = label_studio.client().get_task(unreachable)["data"]["image"]
    assert errors[str(unreachable)] == (
        f"task {unreachable}: image {image}: {image}: 127.0.0.1 is neither Label Studio's host nor listed in "
        "ALC_DOWNLOAD_HOSTS"
    )
    assert errors[str(metadata)].endswith(
        "169.254.169.254 is neither Label Studio's host nor listed in ALC_DOWNLOAD_HOSTS"
    )
    tasks = [label_studio.client().get_task(task) for task in broken_project["tasks"]]
    response = requests.post(
        f"{running_backend.url}/predict",
        json={"tasks": tasks, "project": f"{broken_project['id']}.1", "label_config": image_label_config(CLASSES)},
        timeout=10,
    )
    results = response.json()["results"]
    assert results[1:] == [[]] * len(broken)
    assert {r["value"]["brushlabels"][0] for r in results[0]["result"]} == {"background", "road", "car"}


def test_label_studio_asks_for_predictions_and_stores_the_decodable_mask(
    broken_project: dict[str, Any], label_studio: Any
) -> None:
    good = broken_project["tasks"][0]
    client: LabelStudioClient = label_studio.client()
    for prediction in client.list_predictions(good):
        client.delete_prediction(prediction["id"])
    client.retrieve_predictions(broken_project["id"], [good])
    (prediction,) = client.list_predictions(good)
    assert prediction["model_version"] == "alc-r0"
    config = parse_image_config(image_label_config(CLASSES))
    labels = labels_from_brush_results(prediction["result"], config, 48, 64)
    assert np.array_equal(labels, broken_project["mask"])


def test_a_write_back_while_label_studio_is_down_is_retried_until_it_lands(
    broken_project: dict[str, Any], running_backend: RunningBackend, label_studio: Any
) -> None:
    good = broken_project["tasks"][0]
    client: LabelStudioClient = label_studio.client()
    for prediction in client.list_predictions(good):
        client.delete_prediction(prediction["id"])
    label_studio.stop_temporarily()
    try:
        running_backend.backend.runner.submit("write_back", broken_project["id"])
        eventually(
            lambda: bool(running_backend.backend.runner.status()["retrying"]),
            "the job to be scheduled for a retry",
            120,
        )
    finally:
        label_studio.restart()
    running_backend.wait(300)
    predictions = label_studio.client().list_predictions(good)
    assert [p["model_version"] for p in predictions] == ["alc-r0"], "written exactly once"
    assert running_backend.backend.runner.status()["done"] >= 2


def test_a_round_opened_again_takes_over_the_query_tasks_label_studio_already_holds(
    broken_project: dict[str, Any], running_backend: RunningBackend, label_studio: Any
) -> None:
    """As if the backend died after creating a round's query tasks but before recording them."""
    answer = requests.post(f"{running_backend.url}/init", json={"images_project": broken_project["id"]}, timeout=120)
    assert answer.status_code == 200, answer.text
    query_project = answer.json()["query_project"]
    running_backend.wait_for_round(broken_project["id"], 1)
    client: LabelStudioClient = label_studio.client()
    before = sorted(task["id"] for task in client.list_tasks(query_project))
    assert before, "round 1 created queries"

    workspace = running_backend.backend.workspace(broken_project["id"])
    recorded = workspace.queries()
    workspace.save_queries({})
    state = workspace.state()
    state.round, state.round_open = 0, False
    workspace.save_state(state)
    running_backend.backend.runner.submit("finish_round", broken_project["id"])
    running_backend.wait_for_round(broken_project["id"], 1)

    assert sorted(task["id"] for task in client.list_tasks(query_project)) == before, "no query task twice"
    assert workspace.queries() == recorded
    for task in before:
        assert [p["model_version"] for p in client.list_predictions(task)] == ["alc-q1"]


def test_a_preparation_in_parts_writes_every_task_back(
    broken_project: dict[str, Any], label_studio: Any, tmp_path: Path
) -> None:
    """An image project without a query project, prepared in parts of one task (in-process runner)."""
    settings = label_studio.backend_settings(
        tmp_path / "workspace",
        num_superpixels=8,
        prepare_chunk=1,
        round=RoundSettings(device="cpu"),
    )
    client: LabelStudioClient = label_studio.client()
    project = client.create_project("in parts", image_label_config(CLASSES))
    folder = label_studio.document_root / "broken"
    label_studio.add_local_storage(project["id"], folder)
    url = label_studio.local_file_url
    data = {"image": url(folder / "good.png"), "pseudo_mask": url(folder / "good_mask.png")}
    tasks = client.create_tasks(project["id"], [data, data, data])
    with serve_backend(settings) as running:
        client.add_ml_backend(project["id"], running.url, "alc-backend")
        eventually(lambda: running.backend.workspace(project["id"]).exists(), "Label Studio to call /setup")
        eventually(lambda: all(client.list_predictions(task) for task in tasks), "every task to be written back", 120)
        running.wait()
        assert set(running.backend.workspace(project["id"]).tasks()) == set(tasks)
        assert not (running.backend.workspace(project["id"]).root / "preparation").exists() or not list(
            (running.backend.workspace(project["id"]).root / "preparation").iterdir()
        )


def test_answers_given_while_the_backend_was_down_are_taken_in_when_it_starts(
    broken_project: dict[str, Any], label_studio: Any, tmp_path: Path
) -> None:
    """As after ``kill -9``: the webhooks of every answer of the round were lost; the next start catches up.

    Its two images have so few superpixels that round 1 asks about all of them: the round ends
    and no round 2 follows.
    """
    settings = label_studio.backend_settings(
        tmp_path / "workspace",
        num_superpixels=8,
        round=RoundSettings(queries_per_round=3, image_size=32, epochs=1, device="cpu"),
    )
    client: LabelStudioClient = label_studio.client()
    project = client.create_project("killed", image_label_config(CLASSES))["id"]
    folder = broken_project["folder"]
    label_studio.add_local_storage(project, folder)
    url = label_studio.local_file_url
    client.create_tasks(
        project, [{"image": url(folder / "good.png"), "pseudo_mask": url(folder / "good_mask.png")}] * 2
    )
    with serve_backend(settings) as first:
        answer = requests.post(f"{first.url}/init", json={"images_project": project}, timeout=120)
        assert answer.status_code == 200, answer.text
        first.wait_for_round(project, 1)
    workspace_dir = settings.model_dir / f"project-{project}"
    query_project = answer.json()["query_project"]
    car = [{"from_name": "answer", "to_name": "image", "type": "choices", "value": {"choices": ["car"]}}]
    query_tasks = client.list_tasks(query_project)
    assert query_tasks, "round 1 asked something"
    for task in query_tasks:
        client.create_annotation(task["id"], car)

    with serve_backend(settings) as second:
        workspace = second.backend.workspace(project)
        assert workspace.root == workspace_dir
        eventually(lambda: workspace.state().model_version == "alc-r1", "round 1 to end", 600)
        second.wait()
        answers = workspace.answers()
        assert sorted(record.query_task for record in answers.values()) == sorted(t["id"] for t in query_tasks)
        assert {record.answer for record in answers.values()} == {CLASSES.index("car")}
