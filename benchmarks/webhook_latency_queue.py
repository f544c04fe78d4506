"""Answer-webhook latency while a model trains: in the server's process, or in an rq worker's.

The Label Studio and the workspace are the ones of ``backend_latency.py`` (built by its :func:`build_workspace`; the
workspace is written once and copied so that both set-ups start from the same files): an image project with 21
classes and 20 prepared 512×512 tasks, a query project linked to it with round 1 open and 200 queries, both in a real
Label Studio on 127.0.0.1. The real werkzeug threaded server runs on 127.0.0.1 in this process and is called over
HTTP through one ``requests.Session``. Each set-up sends 10 untimed warm-up answer webhooks, then 200 timed ones
(``ANNOTATION_CREATED``, each naming an annotation created in Label Studio just before, untimed, with a class other
than the one proposed; the last query is never answered), reported as p50 and p95 in ms, while the same training
runs:
``train_model`` of a DeepLabV3+ on the CPU on 20 random 128×128 images (:func:`training_data`), in a thread, for
more epochs than the measurement needs, stopped once it ends.

(a) In-process runner (no ``REDIS_URL``): the training runs in a thread of the server's own process
    (``backend_latency.TrainingLoad``), and the ``reconcile`` jobs the webhooks queue run on the in-process
    runner's thread, also in this process, each reading its annotations back from Label Studio.
(b) rq runner: ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) and a fresh ``ALC_QUEUE``. A real
    ``alc-backend worker`` subprocess (own process group) takes a real rq job from that queue,
    :func:`train_in_worker`, which runs the same ``TrainingLoad`` in its work horse until told to stop through a
    Redis key. The server only marks the answers and enqueues (``RQRunner.submit``, ``RedisNotes``); its
    ``reconcile`` jobs wait on the queue behind the training job (and behind the start-up ``recover`` job, which
    the worker runs first) and run once it ends.

At the end the worker gets SIGTERM (its process group), the queue's keys (``alc:<queue>:*``) and rq's (the queue,
its registries, its jobs and their results) are deleted, and the server is stopped.

    python benchmarks/webhook_latency_queue.py --out benchmarks/_data/webhook_latency_queue.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import requests
import torch
from redis import Redis
from rq import Queue
from rq.job import Job
from werkzeug.serving import make_server

BENCHMARKS = Path(__file__).resolve().parent
for folder in (BENCHMARKS, BENCHMARKS.parent / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from backend_latency import (  # noqa: E402
    Project,
    TrainingLoad,
    add_workspace_arguments,
    answer_sender,
    backend_settings,
    build_workspace,
    check_answer,
    check_jobs,
    cpu_model,
    create_answers,
    labelstudio_server,
    measure,
    percentiles,
    running_server,
    smooth_label_map,
)
from labelstudio_server import LabelStudioServer  # noqa: E402
from rq_harness import rq_worker  # noqa: E402

from alc_backend.rq_jobs import RQRunner, key_prefix  # noqa: E402
from alc_backend.server import create_app  # noqa: E402
from alc_backend.service.backend import Backend  # noqa: E402
from alc_backend.service.settings import BackendSettings  # noqa: E402

TRAIN_IMAGES = 20
TRAIN_SIZE = 128
TRAIN_JOB_TIMEOUT_S = 3600


def training_data(seed: int, num_classes: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The training load's data: ``TRAIN_IMAGES`` random RGB images with smooth label maps, from ``seed``."""
    rng = np.random.default_rng(seed)
    return [
        (
            rng.integers(0, 256, size=(TRAIN_SIZE, TRAIN_SIZE, 3), dtype=np.uint8),
            smooth_label_map(rng, TRAIN_SIZE, num_classes, 8),
        )
        for _ in range(TRAIN_IMAGES)
    ]


def train_in_worker(
    redis_url: str, steps_key: str, stop_key: str, num_classes: int, epochs: int, seed: int
) -> dict[str, Any]:
    """The rq job of set-up (b): ``TrainingLoad`` in the work horse until ``stop_key`` exists in Redis.

    The optimisation steps done so far are written to ``steps_key`` every 0.1 s. Returns the steps, whether the
    training ended by itself and the horse's torch thread count.
    """
    redis = Redis.from_url(redis_url)
    training = TrainingLoad(training_data(seed, num_classes), num_classes, TRAIN_SIZE, epochs)
    training.start()
    try:
        while not training.ended_by_itself and not redis.exists(stop_key):
            redis.set(steps_key, training.steps)
            time.sleep(0.1)
    finally:
        training.stop()
        redis.set(steps_key, training.steps)
    return {"steps": training.steps, "ended_by_itself": training.ended_by_itself, "threads": torch.get_num_threads()}


@contextmanager
def running_rq_server(settings: BackendSettings) -> Iterator[tuple[str, RQRunner]]:
    """The backend's Flask app with its rq runner, on werkzeug's threaded server on 127.0.0.1, for the block."""
    backend = Backend(settings)
    runner = backend.runner
    assert isinstance(runner, RQRunner), f"expected the rq runner, got {type(runner).__name__}"
    server = make_server("127.0.0.1", 0, create_app(settings, backend), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="http-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", runner
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def delete_queue_keys(redis: Redis, queue: Queue, job_ids: set[str]) -> int:
    """Delete ``alc:<queue>:*``, the queue's jobs, registries and results; returns how many of its keys remain."""
    registries = (
        queue.started_job_registry,
        queue.finished_job_registry,
        queue.failed_job_registry,
        queue.deferred_job_registry,
        queue.scheduled_job_registry,
        queue.canceled_job_registry,
        queue.ready_job_registry,
    )
    ids = set(job_ids) | set(queue.get_job_ids())
    for registry in registries:
        ids.update(registry.get_job_ids())
    for job in Job.fetch_many(sorted(ids), connection=redis):
        if job is not None:
            job.delete()
    queue.empty()
    queue.delete(delete_jobs=True)
    for pattern in (f"{key_prefix(queue.name)}:*", f"*:{queue.name}", f"*:{queue.name}:*"):
        keys = list(redis.scan_iter(match=pattern))
        if keys:
            redis.delete(*keys)
    left = [key for pattern in (f"*{queue.name}*",) for key in redis.scan_iter(match=pattern)]
    left += [key for job_id in ids for key in redis.scan_iter(match=f"*{job_id}*")]
    return len(left)


def wait_for(check: Callable[[], bool], what: str, timeout_s: float, alive: Callable[[], bool]) -> None:
    """Poll ``check`` every 0.1 s until it holds; fail after ``timeout_s`` or once ``alive()`` is False."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if not alive():
            raise RuntimeError(f"gave up waiting for {what}: the worker exited")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def measure_in_process(
    model_dir: Path, project: Project, args: argparse.Namespace, labelstudio: LabelStudioServer
) -> tuple[list[float], dict[str, Any]]:
    """Set-up (a): webhooks while ``TrainingLoad`` runs in a thread of this process, with the in-process runner."""
    training = TrainingLoad(training_data(args.seed, args.classes), args.classes, TRAIN_SIZE, args.train_epochs)
    settings = backend_settings(model_dir, labelstudio, args)
    with running_server(settings) as (url, runner), requests.Session() as session:
        assert runner.wait_idle(600), "the start-up recover job did not finish"
        check_jobs(runner.status())
        done_before = runner.status()["done"]
        answers = create_answers(labelstudio.client(), project, args.warmup + args.calls, 0)
        send = answer_sender(session, url, project.query_project, answers)
        training.start()
        steps_before = training.steps
        try:
            times = measure(send, check_answer, args.warmup, args.calls, "(a) in-process, training")
            steps_during = training.steps - steps_before
        finally:
            training.stop()
        assert runner.wait_idle(300), "the reconcile jobs did not finish"
        status = runner.status()
        check_jobs(status)
    return times, {
        "training_steps_during_measurement": steps_during,
        "training_ended_by_itself": training.ended_by_itself,
        "reconcile_jobs_run": status["done"] - done_before,
        "torch_threads": torch.get_num_threads(),
    }


def measure_with_worker(
    model_dir: Path, project: Project, args: argparse.Namespace, labelstudio: LabelStudioServer, log: Path
) -> tuple[list[float], dict[str, Any]]:
    """Set-up (b): webhooks to a server with the rq runner while a worker subprocess runs :func:`train_in_worker`."""
    queue_name = f"alc-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    settings = backend_settings(model_dir, labelstudio, args, redis_url=args.redis_url, queue=queue_name)
    redis = Redis.from_url(args.redis_url)
    redis.ping()
    queue = Queue(queue_name, connection=redis)
    prefix = key_prefix(queue_name)
    steps_key, stop_key = f"{prefix}:bench:steps", f"{prefix}:bench:stop"
    python_path = os.pathsep.join(filter(None, [str(BENCHMARKS), os.environ.get("PYTHONPATH", "")]))
    env = {
        "REDIS_URL": args.redis_url,
        "ALC_QUEUE": queue_name,
        "MODEL_DIR": str(model_dir),
        "ALC_DEVICE": "cpu",
        "ALC_NUM_SUPERPIXELS": str(args.superpixels),
        "LABEL_STUDIO_URL": labelstudio.url,
        "LABEL_STUDIO_API_KEY": labelstudio.token,
        "PYTHONPATH": python_path,
    }
    job_ids: set[str] = set()
    try:
        with running_rq_server(settings) as (url, runner), requests.Session() as session:
            with rq_worker(env, log) as worker:

                def alive() -> bool:
                    return worker.poll() is None

                train_job = queue.enqueue(
                    "webhook_latency_queue.train_in_worker",
                    args.redis_url,
                    steps_key,
                    stop_key,
                    args.classes,
                    args.train_epochs,
                    args.seed,
                    job_timeout=TRAIN_JOB_TIMEOUT_S,
                    description="benchmark training load",
                )
                job_ids.add(train_job.id)
                wait_for(lambda: int(redis.get(steps_key) or 0) >= 1, "the worker's first training step", 300, alive)
                per_measurement = args.warmup + args.calls
                answers = create_answers(labelstudio.client(), project, per_measurement, per_measurement)
                send = answer_sender(session, url, project.query_project, answers)
                steps_before = int(redis.get(steps_key) or 0)
                times = measure(send, check_answer, args.warmup, args.calls, "(b) rq worker, training")
                steps_during = int(redis.get(steps_key) or 0) - steps_before
                queued_behind = [job["kind"] for job in runner.status()["queued"]]
                redis.set(stop_key, "1")
                ended = ("finished", "failed")
                wait_for(lambda: train_job.get_status(refresh=True) in ended, "the training's end", 300, alive)
                assert runner.wait_idle(300), "the reconcile jobs did not finish"
                status = runner.status()
                job_ids.update(job["id"] for job in status["failed"])
                check_jobs(status)
                result = train_job.return_value(refresh=True) or {}
                finished_ids = queue.finished_job_registry.get_job_ids()
                job_ids.update(finished_ids)
                finished = Job.fetch_many(finished_ids, connection=redis)
                reconciles = sum(1 for job in finished if job is not None and job.meta.get("kind") == "reconcile")
    finally:
        left = delete_queue_keys(redis, queue, job_ids)
        redis.close()
    return times, {
        "queue": queue_name,
        "training_steps_during_measurement": steps_during,
        "training_ended_by_itself": bool(result.get("ended_by_itself")),
        "worker_torch_threads": result.get("threads"),
        "jobs_queued_behind_training_at_end": queued_behind,
        "reconcile_jobs_run": reconciles,
        "redis_keys_left_after_cleanup": left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_workspace_arguments(parser)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    load_average = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="alc-webhook-queue-") as scratch, labelstudio_server() as labelstudio:
        dir_a, dir_b = Path(scratch) / "in-process", Path(scratch) / "rq"
        project = build_workspace(dir_a, np.random.default_rng(args.seed), args, labelstudio.client())
        shutil.copytree(dir_a, dir_b)
        times: dict[str, list[float]] = {}
        details: dict[str, dict[str, Any]] = {}
        times["in_process"], details["in_process"] = measure_in_process(dir_a, project, args, labelstudio)
        log = Path(scratch) / "worker.log"
        try:
            times["rq_worker"], details["rq_worker"] = measure_with_worker(dir_b, project, args, labelstudio, log)
        except BaseException:
            print(log.read_text()[-5000:] if log.exists() else "(no worker log)", file=sys.stderr)
            raise

    stats = {name: percentiles(values) for name, values in times.items()}
    ratios = {
        "rq_over_in_process_p50": stats["rq_worker"]["p50"] / stats["in_process"]["p50"],
        "rq_over_in_process_p95": stats["rq_worker"]["p95"] / stats["in_process"]["p95"],
    }
    machine = {
        "processor": platform.processor(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": load_average,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    labels = {
        "in_process": "(a) in-process runner, training in a thread of the server's process",
        "rq_worker": "(b) rq runner, training in an `alc-backend worker` subprocess",
    }
    print(f"{args.calls} timed answer webhooks after {args.warmup} warm-up calls each; {machine}")
    print("| set-up | p50 (ms) | p95 (ms) |")
    print("|---|---:|---:|")
    for name, label in labels.items():
        print(f"| {label} | {stats[name]['p50']:.1f} | {stats[name]['p95']:.1f} |")
    print(f"(b) / (a) = {ratios['rq_over_in_process_p50']:.2f} (p50), {ratios['rq_over_in_process_p95']:.2f} (p95)")
    print(json.dumps(details, indent=1))
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
                "training": {"images": TRAIN_IMAGES, "image_size": TRAIN_SIZE, "epochs_cap": args.train_epochs},
                "seed": args.seed,
            },
            "machine": machine,
            "ms": stats,
            "ratios": ratios,
            "details": details,
            "times_ms": times,
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
