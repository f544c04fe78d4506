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
- **Redis outages.** rq's worker quits when Redis goes away outside its wait for a job (while it
  runs a job or records a finished one); :func:`work_through_outages` then stops the job that
  was running, waits for Redis to answer again and starts a fresh rq worker.

rq and redis are imported here only: the embedded default runs without them installed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
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
REDIS_RETRY_FIRST_S = 1.0
"""A worker that lost Redis tries it again after this long, then after twice as long each time..."""
REDIS_RETRY_MAX_S = 30.0
"""...but never waits longer than this between two tries."""
REDIS_LOST = (RedisConnectionError, RedisTimeoutError)
"""The errors that mean Redis went away (redis-py's BusyLoadingError, a Redis still loading, is one)."""


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


class _StopWaiting(Exception):
    """SIGINT or SIGTERM came while the worker waited for Redis."""


def work_through_outages(
    new_worker: Callable[[], Worker],
    redis: Redis,
    url: str,
    burst: bool = False,
    first_wait_s: float = REDIS_RETRY_FIRST_S,
    max_wait_s: float = REDIS_RETRY_MAX_S,
) -> None:
    """Run ``new_worker()``'s rq worker, and a fresh one each time Redis (``redis``, at ``url``) comes back.

    Returns when a worker stops on its own terms (SIGINT/SIGTERM, or an empty queue with ``burst``)
    or when SIGINT/SIGTERM comes while Redis is away. A worker that loses Redis says so on stderr
    and waits for it to answer a PING (``first_wait_s``, doubling to ``max_wait_s`` between tries).
    Errors other than Redis's connection errors and time-outs propagate.
    """
    while True:
        worker: Worker | None = None
        try:
            worker = new_worker()
            worker.work(burst=burst, with_scheduler=True)
            return
        except REDIS_LOST as error:
            lost = error
        if worker is not None:
            _let_go(worker)
            # rq's handler of SIGINT/SIGTERM notes the time, then asks Redis for the worker's state: a
            # signal that came as Redis went away ended in the error caught above.
            if worker._shutdown_requested_date is not None:
                return
        if not wait_for_redis(redis, url, lost, first_wait_s, max_wait_s):
            return
        if worker is not None:
            try:
                worker.register_death()  # so that a Redis that kept its data does not list it as working
            except RedisError:
                pass


def _let_go(worker: Worker) -> None:
    """Stop what an rq worker that lost Redis leaves running.

    Its work horse, if a job was running: no one watches it any more and its project's lock
    lapses, so it could overlap the job's retry (a killed worker's job is retried, the same way).
    Its pubsub thread: it would retry the dead worker's channel forever.
    """
    if worker.horse_pid:
        worker.kill_horse()
        worker.wait_for_horse()
    if worker.pubsub_thread is not None:
        worker.pubsub_thread.stop()


def wait_for_redis(redis: Redis, url: str, error: Exception, first_wait_s: float, max_wait_s: float) -> bool:
    """Wait until ``redis`` answers a PING, one line on stderr per try; False if SIGINT/SIGTERM came first.

    ``error`` is what Redis did last. Replaces the handlers of SIGINT and SIGTERM (rq's would call
    Redis) with its own for the wait, and restores Python's defaults after it: the next rq worker
    installs its own.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        for stopping in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stopping, signal.SIG_IGN)  # a second signal must not interrupt the way out
        raise _StopWaiting

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    wait_s = first_wait_s
    try:
        while True:
            print(f"Redis at {url} is unreachable ({error}); trying again in {wait_s:g} s", file=sys.stderr, flush=True)
            time.sleep(wait_s)
            try:
                redis.ping()
            except REDIS_LOST as again:
                error = again
                wait_s = min(wait_s * 2, max_wait_s)
                continue
            print(f"Redis at {url} answers again; starting a new worker", file=sys.stderr, flush=True)
            return True
    except _StopWaiting:
        print("stopping: asked to while waiting for Redis", file=sys.stderr, flush=True)
        return False
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


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
