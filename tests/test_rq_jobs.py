"""Jobs on the real Redis at 127.0.0.1:6379 and real rq workers in subprocesses, against a real Label Studio."""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from backend_harness import RunningBackend, eventually, serve_backend
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from rq_harness import MACHINE_REDIS, RedisServer, kill_worker, rq_worker

from alc_backend.cli import main
from alc_backend.data.dataset import SegmentationDataset
from alc_backend.data.synthetic import make_synthetic
from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.config import image_label_config
from alc_backend.service.settings import BackendSettings
from alc_backend.training.checkpoint import load_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

QUERIES = 100


@pytest.fixture(scope="module")
def env(label_studio: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The settings shared by the backend and its workers: a queue of this module's own."""
    return {
        "REDIS_URL": f"{MACHINE_REDIS}/0",
        "ALC_QUEUE": f"alc-test-{uuid.uuid4().hex[:8]}",
        "MODEL_DIR": str(tmp_path_factory.mktemp("workspace")),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "ALC_QUERIES_PER_ROUND": str(QUERIES),
        "ALC_NUM_SUPERPIXELS": "40",
        "ALC_IMAGE_SIZE": "48",
        "ALC_EPOCHS": "3",
        "ALC_DEVICE": "cpu",
        "ALC_JOB_RETRY_DELAY_S": "0",
        "ALC_PREPARE_CHUNK": "3",
    }


@pytest.fixture(scope="module")
def running(env: dict[str, str]) -> Iterator[RunningBackend]:
    with serve_backend(BackendSettings.from_env(env)) as backend:
        yield backend


@pytest.fixture(scope="module")
def dataset(label_studio: Any, tmp_path_factory: pytest.TempPathFactory) -> SegmentationDataset:
    root = tmp_path_factory.mktemp("queue-data") / "data"
    data = make_synthetic(root, 8, 11, size=48, val_fraction=0.0, progress=False)
    shutil.copytree(root, label_studio.document_root / "queue-data")
    return data


def import_project(label_studio: Any, dataset: SegmentationDataset, title: str) -> tuple[int, dict[int, str]]:
    client: LabelStudioClient = label_studio.client()
    project = client.create_project(title, image_label_config(dataset.classes))
    label_studio.add_local_storage(project["id"], label_studio.document_root / "queue-data")
    data = [
        {
            "image": f"/data/local-files/?d=queue-data/images/{name}.png",
            "pseudo_mask": f"/data/local-files/?d=queue-data/pseudo/{name}.png",
            "name": name,
        }
        for name in dataset.train_names
    ]
    ids = client.create_tasks(project["id"], data)
    return project["id"], dict(zip(ids, dataset.train_names, strict=True))


def finished_kinds(env: dict[str, str]) -> list[str]:
    redis = Redis.from_url(env["REDIS_URL"])
    registry = FinishedJobRegistry(queue=Queue(env["ALC_QUEUE"], connection=redis))
    return [job.meta["kind"] for job in Job.fetch_many(registry.get_job_ids(), connection=redis) if job]


@pytest.fixture(scope="module")
def burst(
    env: dict[str, str],
    running: RunningBackend,
    dataset: SegmentationDataset,
    label_studio: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Connect a project through two workers (its 8 images prepared in parts of 3), answer its 100
    queries at once from 8 threads, write back."""
    project, names = import_project(label_studio, dataset, "queued")
    client: LabelStudioClient = label_studio.client()
    logs = tmp_path_factory.mktemp("logs")
    with rq_worker(env, logs / "worker-1.log"), rq_worker(env, logs / "worker-2.log"):
        answer = requests.post(f"{running.url}/init", json={"images_project": project}, timeout=120)
        assert answer.status_code == 200, answer.text
        query_project = answer.json()["query_project"]
        running.wait_for_round(project, 1, 600)
        tasks = client.list_tasks(query_project)
        assert len(tasks) == QUERIES

        def answer_query(task: dict[str, Any]) -> tuple[int, int]:
            (prediction,) = task["predictions"]
            point = next(r for r in prediction["result"] if r["type"] == "keypointlabels")
            row = int(point["value"]["y"] / 100 * point["original_height"])
            col = int(point["value"]["x"] / 100 * point["original_width"])
            truth = int(dataset.mask(names[task["data"]["image_task"]])[row, col])
            choice = {"from_name": "answer", "to_name": "image", "type": "choices"}
            client.create_annotation(task["id"], [{**choice, "value": {"choices": [dataset.classes[truth]]}}])
            return task["id"], truth

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = dict(pool.map(answer_query, tasks))
        running.wait_for_round(project, 2, 600)
        running.backend.submit("write_back", project)
        exported = requests.post(f"{running.url}/export", json={"project": project}, timeout=10)
        assert exported.status_code == 200, exported.text
        assert running.backend.runner.wait_idle(300)
        folder = Path(exported.json()["folder"])
        assert sorted(path.stem for path in (folder / "masks").glob("*.png")) == sorted(dataset.train_names)
    return {"project": project, "answers": answers, "kinds": finished_kinds(env)}


def test_every_job_kind_runs_on_a_worker(burst: dict[str, Any]) -> None:
    assert {"prepare", "prepare_part", "reconcile", "finish_round", "write_back", "export"} <= set(burst["kinds"])


def test_a_large_preparation_is_split_into_parts_that_workers_take(
    burst: dict[str, Any], running: RunningBackend, dataset: SegmentationDataset
) -> None:
    assert burst["kinds"].count("prepare_part") >= 3, "8 images in parts of 3"
    records = running.backend.workspace(burst["project"]).tasks()
    assert sorted(record.name for record in records.values()) == sorted(dataset.train_names)
    assert not [record.error for record in records.values() if record.error]
    assert not (running.backend.workspace(burst["project"]).root / "preparation" / "plan.json").exists()


def test_a_burst_of_100_answers_trains_at_most_twice_and_every_answer_is_in_the_masks(
    burst: dict[str, Any], running: RunningBackend
) -> None:
    assert 1 <= burst["kinds"].count("finish_round") <= 2, burst["kinds"]
    workspace = running.backend.workspace(burst["project"])
    queries = workspace.queries()
    for query_task, truth in burst["answers"].items():
        query = queries[query_task]
        region = workspace.superpixels(query.image_task) == query.superpixel
        assert (workspace.labels(query.image_task)[region] == truth).all(), f"answer to {query_task} lost"


def test_a_worker_killed_mid_round_leaves_the_last_model_and_the_job_is_retried(
    env: dict[str, str], running: RunningBackend, burst: dict[str, Any], tmp_path: Path
) -> None:
    project = burst["project"]
    workspace = running.backend.workspace(project)
    checkpoint = workspace.checkpoint_path
    before = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    start_round = workspace.state().round
    slow = {**env, "ALC_EPOCHS": "400"}
    with rq_worker(slow, tmp_path / "killed.log", "--maintenance-interval", "5") as doomed:
        response = requests.post(
            f"{running.url}/webhook", json={"action": "START_TRAINING", "project": {"id": project}}, timeout=10
        )
        assert response.status_code == 200
        redis = Redis.from_url(env["REDIS_URL"])
        lock = f"alc:{env['ALC_QUEUE']}:lock:{project}"
        eventually(lambda: bool(redis.exists(lock)), "the worker's work horse to take the project's lock", 120)
        kill_worker(doomed)
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == before, "the last good model was replaced"
    load_checkpoint(checkpoint)
    # What rq's maintenance does once the dead worker's heartbeat has lapsed, done now: the
    # abandoned job is retried. Its project lock still expires on its own (LOCK_TTL_S).
    StartedJobRegistry(queue=Queue(env["ALC_QUEUE"], connection=redis)).cleanup(timestamp=time.time() + 3600)
    with rq_worker(env, tmp_path / "rescuer.log"):
        eventually(
            lambda: workspace.state().round == start_round + 1 and workspace.state().round_open, "the retry", 900
        )
        assert running.backend.runner.wait_idle(120)
    assert not running.backend.runner.status()["failed"]
    load_checkpoint(checkpoint)
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() != before, "the retried round trained a new model"


def test_a_job_that_fails_twice_is_kept_with_its_error_and_shown_by_status(
    env: dict[str, str], running: RunningBackend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with rq_worker(env, tmp_path / "worker.log"):
        running.backend.submit("write_back", 424242)
        eventually(lambda: bool(running.backend.runner.status()["failed"]), "the job to fail twice", 120)
    (failure,) = running.backend.runner.status()["failed"]
    assert (failure["kind"], failure["project"], failure["retries_left"]) == ("write_back", 424242, 0)
    assert failure["error"].startswith("FileNotFoundError:") and "project-424242/project.json" in failure["error"]
    assert "traceback" not in failure
    assert main(["status", "--backend", running.url]) == 0
    assert "failed: write_back of project 424242: FileNotFoundError:" in capsys.readouterr().out


def test_the_backend_and_its_worker_ride_out_a_redis_restart(
    label_studio: Any, dataset: SegmentationDataset, tmp_path: Path
) -> None:
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    env = {
        "REDIS_URL": redis_server.url,
        "ALC_QUEUE": "alc-restart",
        "MODEL_DIR": str(tmp_path / "workspace"),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "ALC_NUM_SUPERPIXELS": "20",
        "ALC_DEVICE": "cpu",
    }
    client: LabelStudioClient = label_studio.client()
    try:
        with serve_backend(BackendSettings.from_env(env)) as running, rq_worker(env, tmp_path / "worker.log"):
            project, names = import_project(label_studio, dataset, "restart")
            client.add_ml_backend(project, running.url, "alc-backend")
            first = min(names)

            def written() -> bool:
                return all(client.list_predictions(task) for task in names)

            probe = Redis.from_url(redis_server.url)

            def worker_idle() -> bool:
                workers = Worker.all(connection=probe)
                return bool(workers) and all(worker.get_state() == "idle" for worker in workers)

            eventually(written, "the worker to prepare the project", 300)
            # Redis goes away while the worker waits for work: rq's worker reconnects then. Going away
            # while it runs or records a job: test_worker_outage.py.
            eventually(worker_idle, "the worker to finish its jobs", 300)
            task = client.get_task(first)
            redis_server.stop()

            body = {"tasks": [task], "project": f"{project}.1", "label_config": image_label_config(dataset.classes)}
            predicted = requests.post(f"{running.url}/predict", json=body, timeout=10)
            assert predicted.status_code == 200 and predicted.json()["results"][0]["result"]
            health = requests.get(f"{running.url}/health", timeout=10)
            assert health.status_code == 200
            assert health.json()["jobs"]["error"].startswith("Redis is unreachable")
            event = {"action": "START_TRAINING", "project": {"id": project}}
            refused = requests.post(f"{running.url}/webhook", json=event, timeout=10)
            assert refused.status_code == 503
            assert refused.json()["error"].startswith(f"Redis at {redis_server.url} is unreachable")

            redis_server.start()
            for prediction in client.list_predictions(first):
                client.delete_prediction(prediction["id"])
            running.backend.submit("write_back", project)
            eventually(lambda: bool(client.list_predictions(first)), "the worker to write back after the restart", 180)
    finally:
        redis_server.stop()
