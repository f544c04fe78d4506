"""A real ``alc-backend worker`` outlives its Redis: a private redis-server goes away while the worker
runs a job or records a finished one (rq's worker quits then), and comes back.

The jobs are this module's own functions (the worker imports them by name), so no Label Studio is needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from backend_harness import eventually
from redis import Redis
from rq import Queue, Worker
from rq_harness import RedisServer, rq_worker

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
UNREACHABLE = "is unreachable ("


def hold(folder: str) -> None:
    """A job: writes its process id to ``started`` in ``folder``, then waits (at most two minutes) for
    ``go`` to appear there."""
    (Path(folder) / "started").write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not (Path(folder) / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def touch(path: str) -> None:
    """A job: touches ``path``."""
    Path(path).touch()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own on a free port (never the machine's Redis)."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def worker_env(redis_server: RedisServer, tmp_path: Path) -> dict[str, str]:
    """What the worker needs: this Redis, a queue of its own, and this module importable for its jobs."""
    path = [str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")]
    return {
        "REDIS_URL": redis_server.url,
        "ALC_QUEUE": f"alc-outage-{uuid.uuid4().hex[:8]}",
        "MODEL_DIR": str(tmp_path / "workspace"),
        "LABEL_STUDIO_URL": "http://127.0.0.1:1",  # unused: these jobs do not call Label Studio
        "LABEL_STUDIO_API_KEY": "unused",
        "ALC_DEVICE": "cpu",
        "PYTHONPATH": os.pathsep.join(part for part in path if part),
    }


def lose_redis_while_a_job_finishes(
    redis_server: RedisServer,
    env: dict[str, str],
    folder: Path,
    log: Path,
    worker: subprocess.Popen[bytes],
    finish: bool = True,
) -> None:
    """Stop Redis while the worker runs a job, let the job end (unless not ``finish``), and wait for the
    worker to say Redis is gone."""
    queue = Queue(env["ALC_QUEUE"], connection=Redis.from_url(redis_server.url))
    queue.enqueue(f"{__name__}.hold", str(folder))
    eventually(lambda: bool((folder / "started").exists() and (folder / "started").read_text()), "the job", 120)
    redis_server.stop()
    if finish:
        (folder / "go").touch()
    eventually(lambda: UNREACHABLE in log.read_text() or worker.poll() is not None, "the worker to lose Redis", 120)
    assert worker.poll() is None, f"the worker quit (exit code {worker.returncode}):\n{log.read_text()}"
    assert f"Redis at {redis_server.url} {UNREACHABLE}" in log.read_text()


def unreachable_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if UNREACHABLE in line]


def test_a_worker_waits_for_redis_to_come_back_and_works_on(redis_server: RedisServer, tmp_path: Path) -> None:
    env = worker_env(redis_server, tmp_path)
    log = tmp_path / "worker.log"
    with rq_worker(env, log) as worker:
        lose_redis_while_a_job_finishes(redis_server, env, tmp_path, log, worker)
        eventually(lambda: len(unreachable_lines(log)) >= 2, "a second try at Redis", 120)
        assert worker.poll() is None
        redis_server.start()
        redis = Redis.from_url(redis_server.url)
        # The restarted Redis is empty: the worker registers anew and takes the next job.
        eventually(lambda: len(Worker.all(queue=Queue(env["ALC_QUEUE"], connection=redis))) == 1, "a worker", 120)
        Queue(env["ALC_QUEUE"], connection=redis).enqueue(f"{__name__}.touch", str(tmp_path / "after"))
        eventually(lambda: (tmp_path / "after").exists() or worker.poll() is not None, "the next job", 120)
        assert (tmp_path / "after").exists(), log.read_text()
        assert worker.poll() is None
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log.read_text()
    waits = [line.rsplit("trying again in ", 1)[-1] for line in unreachable_lines(log)]
    assert waits[:2] == ["1 s", "2 s"], unreachable_lines(log)
    assert f"Redis at {redis_server.url} answers again; starting a new worker" in log.read_text()


def test_a_job_running_when_redis_goes_away_is_stopped(redis_server: RedisServer, tmp_path: Path) -> None:
    env = worker_env(redis_server, tmp_path)
    log = tmp_path / "worker.log"
    with rq_worker(env, log) as worker:
        # The worker notices at its next heartbeat of the job (--monitoring-interval 5).
        lose_redis_while_a_job_finishes(redis_server, env, tmp_path, log, worker, finish=False)
        horse = int((tmp_path / "started").read_text())
        assert not Path(f"/proc/{horse}").exists(), "the job's process outlived its worker's hold on it"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_worker_waiting_for_redis_stops_on_a_signal(
    redis_server: RedisServer, tmp_path: Path, signum: signal.Signals
) -> None:
    env = worker_env(redis_server, tmp_path)
    log = tmp_path / "worker.log"
    with rq_worker(env, log) as worker:
        lose_redis_while_a_job_finishes(redis_server, env, tmp_path, log, worker)
        os.killpg(worker.pid, signum)
        assert worker.wait(timeout=10) == 0, log.read_text()
    assert "stopping: asked to while waiting for Redis" in log.read_text()


def test_a_burst_worker_still_stops_when_the_queue_is_empty(redis_server: RedisServer, tmp_path: Path) -> None:
    env = worker_env(redis_server, tmp_path)
    Queue(env["ALC_QUEUE"], connection=Redis.from_url(redis_server.url)).enqueue(
        f"{__name__}.touch", str(tmp_path / "done")
    )
    log = tmp_path / "worker.log"
    with rq_worker(env, log, "--burst") as worker:
        assert worker.wait(timeout=120) == 0, log.read_text()
    assert (tmp_path / "done").exists(), log.read_text()
