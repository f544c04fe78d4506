"""Background jobs of the backend: one interface, run in-process by default (rq: :mod:`alc_backend.rq_jobs`).

A job is a kind (``prepare``, ``reconcile``, ``finish_round``, ``write_back``) and a Label
Studio image project id. :class:`InProcessRunner` runs them one at a time on a background
thread, so the HTTP handlers only enqueue and answer at once. Submitting a job that is already
waiting is a no-op (a burst of webhooks becomes one job); a job submitted while the same job
runs is queued once more, so work that started on older data is always followed by one run
on the newest. A job that fails because Label Studio is unreachable is retried later with
growing delays; any other failure is kept in :meth:`status` as its exception's type and
message (the log has the traceback; ``/jobs`` needs no login and shows no code).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

JobKey = tuple[str, int]


class QueueUnavailable(RuntimeError):
    """The job queue (Redis) cannot be reached; the message names its URL."""


class ProjectBusy(RuntimeError):
    """A job held the project's lock for longer than a request may wait; the message says which project."""


class JobRunner(Protocol):
    """What the server needs from a runner."""

    def submit(self, kind: str, project: int) -> None: ...

    def status(self) -> dict[str, Any]: ...

    def wait_idle(self, timeout_s: float) -> bool: ...

    def project_lock(self, project: int) -> AbstractContextManager[None]: ...


@dataclass
class _Failure:
    kind: str
    project: int
    error: str
    attempts: int
    at: float = field(default_factory=time.time)


class InProcessRunner:
    """Runs jobs on one daemon thread, in submission order.

    Args:
        handlers: job kind -> function of the project id.
        transient: exception types worth retrying (e.g. Label Studio unreachable).
        retry_delays_s: waits before each retry of a transiently failed job; when they run
            out the failure is kept like any other.
    """

    def __init__(
        self,
        handlers: Mapping[str, Callable[[int], None]],
        transient: tuple[type[BaseException], ...] = (),
        retry_delays_s: Sequence[float] = (2.0, 5.0, 10.0, 30.0, 60.0, 120.0),
    ) -> None:
        self.handlers = dict(handlers)
        self.transient = transient
        self.retry_delays_s = tuple(retry_delays_s)
        self._queue: deque[tuple[JobKey, int]] = deque()
        self._waiting: set[JobKey] = set()
        self._delayed: list[tuple[float, JobKey, int]] = []
        self._running: JobKey | None = None
        self._failures: list[_Failure] = []
        self._done = 0
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="alc-jobs", daemon=True)
        self._thread.start()

    def submit(self, kind: str, project: int) -> None:
        """Queue ``kind`` for ``project`` unless it is already waiting."""
        if kind not in self.handlers:
            raise ValueError(f"unknown job kind {kind!r}; known: {', '.join(self.handlers)}")
        self._enqueue((kind, int(project)), attempt=0)

    def status(self) -> dict[str, Any]:
        """Queued, delayed, running and failed jobs, and how many finished."""
        with self._condition:
            return {
                "runner": "in-process",
                "running": _describe(self._running) if self._running else None,
                "queued": [_describe(key) for key, _ in self._queue],
                "retrying": [{**_describe(key), "attempt": attempt, "at": due} for due, key, attempt in self._delayed],
                "failed": [failure.__dict__ for failure in self._failures[-20:]],
                "done": self._done,
            }

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing is queued, delayed or running; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while self._queue or self._delayed or self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(min(remaining, 0.5))
            return True

    def project_lock(self, project: int) -> AbstractContextManager[None]:
        """No lock: the jobs run in this process and guard their files with the workspace's own lock."""
        return nullcontext()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        self._thread.join(timeout=5)

    def _enqueue(self, key: JobKey, attempt: int) -> None:
        with self._condition:
            if key in self._waiting:
                return
            self._waiting.add(key)
            self._queue.append((key, attempt))
            self._condition.notify_all()

    def _loop(self) -> None:
        while True:
            with self._condition:
                item = self._next_item()
                if item is None:
                    return
                key, attempt = item
                self._waiting.discard(key)
                self._running = key
            try:
                self.handlers[key[0]](key[1])
                outcome: BaseException | None = None
            except Exception as error:
                outcome = error
            with self._condition:
                self._running = None
                if outcome is None:
                    self._done += 1
                elif isinstance(outcome, self.transient) and attempt < len(self.retry_delays_s):
                    delay = self.retry_delays_s[attempt]
                    logger.warning("job %s of project %s failed (%s); retrying in %.0f s", *key, outcome, delay)
                    self._delayed.append((time.monotonic() + delay, key, attempt + 1))
                else:
                    logger.error("job %s of project %s failed", *key, exc_info=outcome)
                    error_text = f"{type(outcome).__name__}: {outcome}"
                    self._failures.append(_Failure(key[0], key[1], error_text, attempt + 1))
                self._condition.notify_all()

    def _next_item(self) -> tuple[JobKey, int] | None:
        """Wait for the next job (due retries first); None once stopped. Holds the condition."""
        while not self._stopped:
            now = time.monotonic()
            due = [entry for entry in self._delayed if entry[0] <= now]
            for entry in due:
                self._delayed.remove(entry)
                if entry[1] not in self._waiting:
                    self._waiting.add(entry[1])
                    self._queue.appendleft((entry[1], entry[2]))
            if self._queue:
                return self._queue.popleft()
            wait = min((entry[0] for entry in self._delayed), default=now + 1.0) - now
            self._condition.wait(max(0.01, min(wait, 1.0)))
        return None


def _describe(key: JobKey) -> dict[str, Any]:
    return {"kind": key[0], "project": key[1]}
