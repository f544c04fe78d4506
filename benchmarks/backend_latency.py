"""Latency of the running backend: ``POST /predict``, ``GET /health`` and answer webhooks, idle and while training.

A real Label Studio (``tests/labelstudio_server.py``: the ``label-studio`` package in its own venv, on 127.0.0.1)
holds both projects and every answer, as in use: the ``reconcile`` job of each webhook reads its annotation back
from Label Studio. The backend's workspace is written directly on disk in a temporary folder, with Label Studio's
project and task ids. The image project has 21 classes (``class00``..``class20``) and 20 prepared image tasks of
512×512 px whose labels are smooth random maps holding every class (the argmax of 21 random 16×16 grids upsampled
with cubic splines), with SLIC superpixels (target 60; about 20 to 25 on these flat-coloured images) and
pseudo-labels equal to the labels. The query project is linked to it, with round 1 open and 200 query tasks, 10
superpixels of each image.

The real werkzeug threaded server runs on 127.0.0.1 in this process, called over HTTP through one
``requests.Session``. Its start-up ``recover`` job (which writes the 20 masks back as predictions) ends before
anything is timed. Per endpoint: 10 untimed warm-up calls, then 200 timed ones (``time.perf_counter`` around the
request, the response body included), reported as p50 and p95 in ms:

1. ``POST /predict`` of one image task (cycling over the 20), shaped like Label Studio's request; every response
   must hold 21 brush results;
2. ``GET /health``, the baseline of the HTTP stack (it also reads the project's state files);
3. ``POST /webhook`` with an ``ANNOTATION_CREATED`` answer, sent back to back. Before each measurement (untimed),
   one annotation per call is created in Label Studio, each answering a query with a class other than the one
   proposed; each webhook names one of them. (a) With the job runner idle but for the ``reconcile`` jobs the
   webhooks queue themselves, which read the annotations from Label Studio and recompose the answered images'
   labels; (b) the same while a DeepLabV3+ trains on the CPU in another thread of this process (``train_model`` on
   20 random 128×128 images, stopped when the measurement ends). The last query task is never answered, so the
   round never completes.

    python benchmarks/backend_latency.py --out benchmarks/_data/backend_latency.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import requests
import torch
from scipy.ndimage import zoom
from tqdm import tqdm
from werkzeug.serving import make_server

TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from labelstudio_server import LabelStudioServer  # noqa: E402

from alc_backend.engine.superpixels import compute_superpixels  # noqa: E402
from alc_backend.jobs import InProcessRunner  # noqa: E402
from alc_backend.labelstudio.client import LabelStudioClient  # noqa: E402
from alc_backend.labelstudio.config import QUESTION, query_label_config  # noqa: E402
from alc_backend.rounds.settings import RoundSettings  # noqa: E402
from alc_backend.server import create_app  # noqa: E402
from alc_backend.service.backend import Backend  # noqa: E402
from alc_backend.service.settings import BackendSettings  # noqa: E402
from alc_backend.service.workspace import ProjectState, QueryRecord, TaskRecord, Workspace, save_link  # noqa: E402
from alc_backend.training.model import ModelConfig  # noqa: E402
from alc_backend.training.trainer import TrainConfig, TrainStep, train_model  # noqa: E402


def choice_result(class_name: str) -> list[dict[str, Any]]:
    """A query annotation's result: the class ``class_name`` chosen."""
    return [{"from_name": "answer", "to_name": "image", "type": "choices", "value": {"choices": [class_name]}}]


@dataclass(frozen=True)
class Answer:
    """An annotation created in Label Studio: ``class_name`` chosen for query task ``query_task``."""

    query_task: int
    annotation: int
    class_name: str


def answer_event(query_project: int, answer: Answer) -> dict[str, Any]:
    """The ``ANNOTATION_CREATED`` webhook body Label Studio sends for ``answer``."""
    return {
        "action": "ANNOTATION_CREATED",
        "project": {"id": query_project},
        "task": {"id": answer.query_task},
        "annotation": {
            "id": answer.annotation,
            "task": answer.query_task,
            "was_cancelled": False,
            "updated_at": datetime.now(timezone.utc).isoformat(),
            "result": choice_result(answer.class_name),
        },
    }


def smooth_label_map(rng: np.random.Generator, size: int, num_classes: int, grid: int) -> np.ndarray:
    """``(size, size)`` uint8 classes holding every class: the argmax of upsampled ``(grid, grid)`` normal noise."""
    while True:
        coarse = rng.normal(size=(num_classes, grid, grid))
        labels = zoom(coarse, (1, size / grid, size / grid), order=3).argmax(axis=0).astype(np.uint8)
        if np.unique(labels).size == num_classes:
            return labels


def brush_config(class_names: list[str]) -> str:
    """The image project's labeling config: one Image and one BrushLabels with ``class_names``."""
    labels = "".join(f'<Label value="{name}"/>' for name in class_names)
    return (
        '<View><Image name="image" value="$image"/>'
        f'<BrushLabels name="tag" toName="image">{labels}</BrushLabels></View>'
    )


@dataclass
class Project:
    """What the benchmark wrote: Label Studio's project ids, the image tasks, the open round's queries."""

    image_project: int
    query_project: int
    class_names: list[str]
    records: dict[int, TaskRecord]
    queries: dict[int, QueryRecord]
    label_config: str
    superpixel_counts: list[int]


def build_workspace(
    model_dir: Path, rng: np.random.Generator, args: argparse.Namespace, client: LabelStudioClient
) -> Project:
    """Create both projects and their tasks in Label Studio; write the image project's workspace and the link."""
    class_names = [f"class{index:02d}" for index in range(args.classes)]
    label_config = brush_config(class_names)
    image_project = int(client.create_project("latency: images", label_config)["id"])
    query_project = int(client.create_project("latency: queries", query_label_config(class_names))["id"])
    names = [f"image{index:02d}.png" for index in range(1, args.images + 1)]
    urls = [f"/data/upload/{image_project}/{name}" for name in names]
    task_ids = client.create_tasks(image_project, [{"image": url} for url in urls])
    workspace = Workspace(model_dir, image_project)
    palette = rng.integers(0, 256, size=(args.classes, 3))
    records: dict[int, TaskRecord] = {}
    points: list[tuple[int, int, int, int, int]] = []
    superpixel_counts: list[int] = []
    per_image = args.queries // args.images
    for task, name, url in tqdm(list(zip(task_ids, names, urls, strict=True)), desc="workspace", unit="image"):
        labels = smooth_label_map(rng, args.size, args.classes, args.grid)
        image = palette[labels].astype(np.uint8)
        superpixels = compute_superpixels(image, "slic", num_segments=args.superpixels)
        workspace.save_image(task, image)
        workspace.save_superpixels(task, superpixels)
        workspace.save_pseudo(task, labels)
        workspace.save_labels(task, labels)
        records[task] = TaskRecord(task, name, url, args.size, args.size, "benchmark", None, rng.random())
        count = int(superpixels.max()) + 1
        superpixel_counts.append(count)
        if count < per_image:
            raise RuntimeError(f"image {task} has {count} superpixels, fewer than the {per_image} queries it needs")
        for superpixel in rng.choice(count, size=per_image, replace=False):
            pixels = np.argwhere(superpixels == superpixel)
            row, col = (int(value) for value in pixels[len(pixels) // 2])
            points.append((task, int(superpixel), row, col, int(labels[row, col])))
    query_data = [{"image": records[task].image, "question": QUESTION} for task, *_ in points]
    query_tasks = client.create_tasks(query_project, query_data)
    queries = {
        query_task: QueryRecord(query_task, task, superpixel, row, col, proposed, proposed, 1, order)
        for order, (query_task, (task, superpixel, row, col, proposed)) in enumerate(
            zip(query_tasks, points, strict=True)
        )
    }
    workspace.save_tasks(records)
    workspace.save_queries(queries)
    workspace.save_state(
        ProjectState(image_project, class_names, label_config, query_project, round=1, round_open=True, prepared=True)
    )
    save_link(model_dir, query_project, image_project)
    return Project(image_project, query_project, class_names, records, queries, label_config, superpixel_counts)


def create_answers(client: LabelStudioClient, project: Project, count: int, offset: int) -> list[Answer]:
    """Create ``count`` annotations in Label Studio, the ``offset``-th onwards of the benchmark's answer sequence.

    The ``i``-th answers query ``i`` modulo all but the last query (which stays unanswered, so the round never
    completes) with a class other than the one proposed.
    """
    answered = sorted(project.queries)[:-1]
    classes = len(project.class_names)
    answers = []
    for index in tqdm(range(offset, offset + count), desc="answers in Label Studio", unit="annotation"):
        query = project.queries[answered[index % len(answered)]]
        name = project.class_names[(query.proposed + 1 + index % (classes - 1)) % classes]
        created = client.create_annotation(query.task, choice_result(name))
        answers.append(Answer(query.task, int(created["id"]), name))
    return answers


def answer_sender(
    session: requests.Session, url: str, query_project: int, answers: list[Answer]
) -> Callable[[int], requests.Response]:
    """``send(i)``: POST the answer webhook of ``answers[i]`` to the backend at ``url``."""

    def send(index: int) -> requests.Response:
        return session.post(f"{url}/webhook", json=answer_event(query_project, answers[index]), timeout=30)

    return send


def check_answer(response: requests.Response) -> None:
    """The webhook marked the answer and queued (or coalesced into) a ``reconcile`` job."""
    response.raise_for_status()
    assert response.json() == {"status": "queued", "job": "reconcile"}, response.text


def check_jobs(runner_status: dict[str, Any]) -> None:
    """Fail with the failed jobs' errors if any job failed."""
    failed = runner_status["failed"]
    assert not failed, f"jobs failed: {json.dumps(failed, indent=1)[:3000]}"


def backend_settings(
    model_dir: Path, labelstudio: LabelStudioServer, args: argparse.Namespace, **extra: Any
) -> BackendSettings:
    """The benchmarked backend's settings: this workspace, this Label Studio, the CPU; ``extra`` adds more."""
    return BackendSettings(
        model_dir=model_dir,
        label_studio_url=labelstudio.url,
        api_key=labelstudio.token,
        num_superpixels=args.superpixels,
        round=RoundSettings(device="cpu"),
        **extra,
    )


@contextmanager
def labelstudio_server() -> Iterator[LabelStudioServer]:
    """A real Label Studio on 127.0.0.1 with a fresh database, for the block."""
    server = LabelStudioServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def running_server(settings: BackendSettings) -> Iterator[tuple[str, InProcessRunner]]:
    """The backend's Flask app on werkzeug's threaded server, on a free port of 127.0.0.1, for the block."""
    backend = Backend(settings)
    runner = backend.runner
    assert isinstance(runner, InProcessRunner)
    server = make_server("127.0.0.1", 0, create_app(settings, backend), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="http-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", runner
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        runner.stop()


class _StopTraining(Exception):
    """Raised from the training's step callback once the measurement no longer needs the load."""


class TrainingLoad:
    """``train_model`` on random data in a thread of this process, from :meth:`start` to :meth:`stop`."""

    def __init__(
        self, data: list[tuple[np.ndarray, np.ndarray]], num_classes: int, image_size: int, epochs: int
    ) -> None:
        self.data = data
        self.model_config = ModelConfig(num_classes=num_classes)
        self.train_config = TrainConfig(image_size=image_size, epochs=epochs, batch_size=8, lr=0.03, seed=0)
        self.steps = 0
        self.ended_by_itself = False
        self._stop = threading.Event()
        self._stepped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="training", daemon=True)

    def start(self) -> None:
        """Start training and return after its first optimisation step."""
        self._thread.start()
        while not self._stepped.wait(0.1):
            if not self._thread.is_alive():
                raise RuntimeError("the training thread ended before its first step")

    def stop(self) -> None:
        """End training at its next step and wait for the thread."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            train_model(self.data, self.model_config, self.train_config, torch.device("cpu"), False, self._on_step)
            self.ended_by_itself = True
        except _StopTraining:
            pass

    def _on_step(self, step: TrainStep) -> None:
        self.steps += 1
        self._stepped.set()
        if self._stop.is_set():
            raise _StopTraining


def measure(
    send: Callable[[int], requests.Response],
    check: Callable[[requests.Response], None],
    warmup: int,
    calls: int,
    desc: str,
) -> list[float]:
    """Milliseconds of each of ``calls`` timed ``send(i)`` after ``warmup`` untimed ones; ``check`` every response."""
    for index in range(warmup):
        check(send(index))
    times = []
    for index in tqdm(range(warmup, warmup + calls), desc=desc, unit="call"):
        start = time.perf_counter()
        response = send(index)
        times.append(1e3 * (time.perf_counter() - start))
        check(response)
    return times


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` is often empty on Linux), or ''."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def percentiles(times: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95))}


def add_workspace_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the benchmark workspace and of the measurements, shared by the latency benchmarks."""
    parser.add_argument("--images", type=int, default=20, help="image tasks in the image project")
    parser.add_argument("--size", type=int, default=512, help="image height and width in pixels")
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--grid", type=int, default=16, help="side of the random grid that is upsampled")
    parser.add_argument("--superpixels", type=int, default=60, help="SLIC's target number of superpixels")
    parser.add_argument("--queries", type=int, default=200, help="query tasks of the open round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls before each measurement")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per measurement")
    parser.add_argument("--train-epochs", type=int, default=1000, help="more than the webhook measurement needs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write every number to this JSON file")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_workspace_arguments(parser)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    rng = np.random.default_rng(args.seed)

    with tempfile.TemporaryDirectory(prefix="alc-latency-") as scratch, labelstudio_server() as labelstudio:
        model_dir = Path(scratch)
        client = labelstudio.client()
        project = build_workspace(model_dir, rng, args, client)
        records = project.records
        task_ids = sorted(records)
        training_data = [
            (rng.integers(0, 256, size=(128, 128, 3), dtype=np.uint8), smooth_label_map(rng, 128, args.classes, 8))
            for _ in range(20)
        ]
        training = TrainingLoad(training_data, args.classes, 128, args.train_epochs)
        settings = backend_settings(model_dir, labelstudio, args)
        with running_server(settings) as (url, runner), requests.Session() as session:
            assert runner.wait_idle(600), "the start-up recover job did not finish"
            check_jobs(runner.status())

            def predict(index: int) -> requests.Response:
                record = records[task_ids[index % len(task_ids)]]
                task = {
                    "id": record.task,
                    "data": {"image": record.image},
                    "annotations": [],
                    "predictions": [],
                    "project": project.image_project,
                }
                body = {
                    "tasks": [task],
                    "project": f"{project.image_project}.1700000000",
                    "label_config": project.label_config,
                    "params": {"context": None},
                }
                return session.post(f"{url}/predict", json=body, timeout=30)

            def check_predict(response: requests.Response) -> None:
                response.raise_for_status()
                result = response.json()["results"][0]["result"]
                assert len(result) == args.classes, f"/predict returned {len(result)} brush results"

            def health(_: int) -> requests.Response:
                return session.get(f"{url}/health", timeout=30)

            def check_health(response: requests.Response) -> None:
                response.raise_for_status()
                assert response.json()["status"] == "UP"

            per_measurement = args.warmup + args.calls
            times = {
                "predict": measure(predict, check_predict, args.warmup, args.calls, "/predict"),
                "health": measure(health, check_health, args.warmup, args.calls, "/health"),
            }
            answers = create_answers(client, project, per_measurement, 0)
            send = answer_sender(session, url, project.query_project, answers)
            reconciles_before = runner.status()["done"]
            times["webhook_idle"] = measure(send, check_answer, args.warmup, args.calls, "/webhook, idle")
            assert runner.wait_idle(300), "the reconcile jobs did not finish"
            reconciles_idle = runner.status()["done"] - reconciles_before
            answers = create_answers(client, project, per_measurement, per_measurement)
            send = answer_sender(session, url, project.query_project, answers)
            training.start()
            steps_before = training.steps
            try:
                times["webhook_training"] = measure(send, check_answer, args.warmup, args.calls, "/webhook, training")
                steps_during = training.steps - steps_before
            finally:
                training.stop()
            assert runner.wait_idle(300), "the reconcile jobs did not finish"
            reconciles_training = runner.status()["done"] - reconciles_before - reconciles_idle
            check_jobs(runner.status())
            recorded = len(Workspace(model_dir, project.image_project).answers())

    stats = {name: percentiles(values) for name, values in times.items()}
    ratios = {
        "predict_over_health_p50": stats["predict"]["p50"] / stats["health"]["p50"],
        "webhook_training_over_idle_p50": stats["webhook_training"]["p50"] / stats["webhook_idle"]["p50"],
        "webhook_training_over_idle_p95": stats["webhook_training"]["p95"] / stats["webhook_idle"]["p95"],
    }
    machine = {
        "processor": platform.processor(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    labels = {
        "predict": f"`POST /predict`, 1 task of {args.size}×{args.size} px, {args.classes} brushes",
        "health": "`GET /health`",
        "webhook_idle": "`POST /webhook` answer, runner idle",
        "webhook_training": "`POST /webhook` answer, training in another thread",
    }
    print(f"{args.calls} timed calls after {args.warmup} warm-up calls each; {machine}")
    print("| endpoint | p50 (ms) | p95 (ms) |")
    print("|---|---:|---:|")
    for name, label in labels.items():
        print(f"| {label} | {stats[name]['p50']:.1f} | {stats[name]['p95']:.1f} |")
    print(f"/predict p50 / /health p50 = {ratios['predict_over_health_p50']:.1f}")
    print(
        f"webhook training / idle = {ratios['webhook_training_over_idle_p50']:.2f} (p50), "
        f"{ratios['webhook_training_over_idle_p95']:.2f} (p95); {steps_during} training steps during (b), "
        f"{'ended by itself' if training.ended_by_itself else 'stopped after the measurement'}; "
        f"reconcile jobs run: {reconciles_idle} in (a), {reconciles_training} in (b); "
        f"{recorded} answers confirmed with Label Studio and recorded"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {
            "setup": {
                "images": args.images,
                "size": args.size,
                "classes": args.classes,
                "superpixels_target": args.superpixels,
                "superpixels_per_image": project.superpixel_counts,
                "queries": len(project.queries),
                "warmup": args.warmup,
                "calls": args.calls,
                "seed": args.seed,
            },
            "machine": machine,
            "ms": stats,
            "ratios": ratios,
            "training": {
                "steps_during_measurement": steps_during,
                "ended_by_itself": training.ended_by_itself,
                "image_size": 128,
                "images": len(training_data),
            },
            "reconcile_jobs": {"webhook_idle": reconciles_idle, "webhook_training": reconciles_training},
            "answers_recorded": recorded,
            "times_ms": times,
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
