"""Jobs on rq + Redis: the runner the web process enqueues with, and what a worker runs.

On when ``REDIS_URL`` is set. The web process only enqueues (:class:`RQRunner`); any number
of ``alc-backend worker`` processes, on any machine that reaches Redis and mounts the same
``MODEL_DIR``, run the jobs (:func:`run_job`).

Every key is prefixed with ``alc:<queue name>`` (:func:`key_prefix`), so deployments sharing a
Redis keep apart.

- **Coalescing.** ``submit`` sets ``<prefix>:pending:<kind>:<project>`` (NX) and enqueues only if it
  was not set; the job clears the flag as it starts. So a burst of submissions leaves at most
  one job waiting per kind and project, and one submitted while the same job runs (on data
  now old) is queued once more, never lost.
- **One job of a project at a time.** A job holds the Redis lock ``<prefix>:lock:<project>`` while
  it works; the lock expires ``LOCK_TTL_S`` after its holder stops renewing it (a killed
  worker), so the next job is never blocked for long.
- **Failures.** A job that raises is retried once after ``ALC_JOB_RETRY_DELAY_S``; a job whose worker
  was killed is retried by rq's clean-up of abandoned jobs once its heartbeat lapses. A job
  that fails twice stays in rq's failed registry (``status`` shows its exception's last line,
  the worker's log its traceback). Checkpoints
  are written atomically, so the last good model keeps serving meanwhile.

rq and redis are imported here only: the embedded default runs without them installed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from alc_backend.jobs import ProjectBusy, QueueUnavailable
from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.service.notes import RedisNotes
from alc_backend.service.project_work import ProjectWork
from alc_backend.service.settings import BackendSettings

JOB_KINDS = ("prepare", "prepare_part", "reconcile", "finish_round", "write_back", "export", "recover")
UNLOCKED_KINDS = ("prepare_part",)
"""Jobs that run beside the project's other jobs: the parts of a preparation write disjoint files."""
JOB_TIMEOUT_S = 24 * 3600
"""Longest a job may run before rq stops it (a long training on a large project)."""
PENDING_TTL_S = 3600
"""A pending flag outlives a lost job by at most this long (coalescing then lets one more through)."""
LOCK_TTL_S = 60
"""A project's lock expires this long after its holder last renewed it."""
LOCK_WAIT_S = 600
"""How long a job waits for its project's lock before failing (and being retried)."""
REQUEST_LOCK_WAIT_S = 30
"""How long a request of the web process waits for its project's lock (503 after)."""


def connect_redis(url: str) -> Redis:
    """A Redis client for ``url`` that answered a PING; QueueUnavailable otherwise."""
    client = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
    try:
        client.ping()
    except RedisError as error:
        raise QueueUnavailable(f"Redis at {url} is unreachable: {error}") from error
    return client


def key_prefix(queue: str) -> str:
    """The prefix of every key of the deployment whose jobs go to rq queue ``queue``."""
    return f"alc:{queue}"


def pending_key(queue: str, kind: str, project: int) -> str:
    return f"{key_prefix(queue)}:pending:{kind}:{project}"


class RQRunner:
    """Enqueues jobs on the rq queue ``settings.queue`` of the Redis at ``settings.redis_url``."""

    def __init__(self, settings: BackendSettings, redis: Redis | None = None) -> None:
        self.settings = settings
        self.redis = redis if redis is not None else connect_redis(settings.redis_url)
        self.queue = Queue(settings.queue, connection=self.redis)

    def submit(self, kind: str, project: int) -> None:
        """Enqueue ``kind`` for ``project`` unless one is already waiting; QueueUnavailable if Redis is down."""
        if kind not in JOB_KINDS:
            raise ValueError(f"unknown job kind {kind!r}; known: {', '.join(JOB_KINDS)}")
        key = pending_key(self.queue.name, kind, project)
        try:
            if not self.redis.set(key, "1", nx=True, ex=PENDING_TTL_S):
                return
            try:
                self.queue.enqueue(
                    run_job,
                    kind,
                    int(project),
                    job_timeout=JOB_TIMEOUT_S,
                    retry=Retry(max=1, interval=self.settings.job_retry_delay_s),
                    description=f"{kind} of project {project}",
                    meta={"kind": kind, "project": int(project)},
                    failure_ttl=7 * 24 * 3600,
                )
            except BaseException:
                self.redis.delete(key)
                raise
        except RedisError as error:
            raise QueueUnavailable(f"Redis at {self.settings.redis_url} is unreachable: {error}") from error

    def status(self) -> dict[str, Any]:
        """Queued, running and failed jobs of the queue, and how many finished (kept for rq's result TTL)."""
        try:
            started = StartedJobRegistry(queue=self.queue)
            failed = FailedJobRegistry(queue=self.queue)
            return {
                "runner": "rq",
                "queue": self.queue.name,
                "workers": _worker_count(self.queue),
                "running": [_describe(job) for job in _jobs(self.redis, started.get_job_ids())],
                "queued": [_describe(job) for job in _jobs(self.redis, self.queue.get_job_ids())],
                "retrying": [_describe(job) for job in _jobs(self.redis, _scheduled_ids(self.queue))],
                "failed": [_describe(job, with_error=True) for job in _jobs(self.redis, failed.get_job_ids())],
                "done": FinishedJobRegistry(queue=self.queue).count,
            }
        except RedisError as error:
            return {"runner": "rq", "queue": self.queue.name, "error": f"Redis is unreachable: {error}"}

    def project_lock(self, project: int) -> AbstractContextManager[None]:
        """The lock the workers hold while they work on ``project``, for the web process's own writes.

        A request waits for it at most ``REQUEST_LOCK_WAIT_S``, then gets ProjectBusy.
        """
        return project_lock(self.redis, f"{key_prefix(self.queue.name)}:lock:{project}", REQUEST_LOCK_WAIT_S)

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until no job is queued, scheduled for a retry or running; False on timeout."""
        deadline = time.monotonic() + timeout_s
        started = StartedJobRegistry(queue=self.queue)
        while time.monotonic() < deadline:
            being_taken = self.redis.llen(self.queue.intermediate_queue_key)
            busy = self.queue.count + being_taken + started.count + len(_scheduled_ids(self.queue))
            if busy == 0:
                return True
            time.sleep(0.2)
        return False


def run_job(kind: str, project: int) -> None:
    """What a worker runs: job ``kind`` of ``project``, holding the project's lock.

    Settings come from the worker's environment (``MODEL_DIR``, ``LABEL_STUDIO_URL``,
    ``LABEL_STUDIO_API_KEY``, ``REDIS_URL``, ``ALC_*``).
    """
    settings = BackendSettings.from_env()
    if not settings.label_studio_url or not settings.api_key:
        raise RuntimeError("a worker needs LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY in its environment")
    redis = connect_redis(settings.redis_url)
    redis.delete(pending_key(settings.queue, kind, project))
    runner = RQRunner(settings, redis)
    work = ProjectWork(
        settings,
        lambda: LabelStudioClient(settings.label_studio_url, settings.api_key),
        notes=RedisNotes(redis, settings.redis_url, key_prefix(settings.queue)),
        submit=runner.submit,
    )
    if kind in UNLOCKED_KINDS:
        getattr(work, kind)(project)
        return
    with project_lock(redis, f"{key_prefix(settings.queue)}:lock:{project}"):
        getattr(work, kind)(project)


@contextmanager
def project_lock(redis: Redis, name: str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the Redis lock ``name`` for the block, renewing it every ``LOCK_TTL_S / 3`` seconds.

    Raises ProjectBusy when another holder keeps it for more than ``wait_s`` seconds.
    """
    lock = redis.lock(name, timeout=LOCK_TTL_S, blocking_timeout=wait_s, thread_local=False)
    if not lock.acquire():
        raise ProjectBusy(f"{name} stayed held by a job for {wait_s:g} s; try again once it is done")
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LOCK_TTL_S / 3):
            try:
                lock.reacquire()
            except RedisError:
                return

    renewer = threading.Thread(target=renew, name=f"renew {name}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        try:
            lock.release()
        except RedisError:
            pass


def worker_environment_problem() -> str | None:
    """What keeps this machine from running jobs, or None: the settings a worker needs."""
    missing = [name for name in ("REDIS_URL", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY") if not os.environ.get(name)]
    return f"a worker needs {', '.join(missing)} in its environment" if missing else None


def _jobs(redis: Redis, ids: list[str]) -> list[Job]:
    return [job for job in Job.fetch_many(ids, connection=redis) if job is not None]


def _scheduled_ids(queue: Queue) -> list[str]:
    return queue.scheduled_job_registry.get_job_ids()


def _worker_count(queue: Queue) -> int:
    return len(Worker.all(queue=queue))


def _describe(job: Job, with_error: bool = False) -> dict[str, Any]:
    described: dict[str, Any] = {
        "id": job.id,
        "kind": job.meta.get("kind"),
        "project": job.meta.get("project"),
        "enqueued_at": job.enqueued_at.isoformat() if job.enqueued_at else None,
        "retries_left": job.retries_left,
    }
    if with_error:
        result = job.latest_result()
        lines = (result.exc_string or "").strip().splitlines() if result is not None else []
        described["error"] = lines[-1] if lines else None
        described["ended_at"] = job.ended_at.isoformat() if job.ended_at else None
    return described
