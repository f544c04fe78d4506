"""What the web process leaves for the jobs, and what jobs report back: one interface, two stores.

Webhooks mark the annotations of query tasks that changed (by id, to be read back from Label
Studio) and the image tasks whose drawn masks changed; the next ``reconcile`` job takes the
marks. Jobs note errors for ``/health``. :class:`MemoryNotes` keeps them in the
process (the in-process runner); :class:`RedisNotes` in Redis, where the web process and rq
workers on other machines all see them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from alc_backend.jobs import QueueUnavailable

logger = logging.getLogger(__name__)

MAX_ERRORS = 50
"""Errors kept per project, newest last."""

ALL_TASKS = "*"
"""Redis set member meaning "some task, unknown which": every task is read again."""


class WorkNotes(Protocol):
    def mark_answers(self, project: int, annotations: set[int]) -> None: ...

    def mark_drawn(self, project: int, tasks: set[int] | None) -> None: ...

    def take(self, project: int) -> tuple[set[int], set[int] | None]: ...

    def note_error(self, project: int, message: str) -> None: ...

    def errors_of(self, project: int) -> list[str]: ...


class MemoryNotes:
    """Notes in this process's memory; thread-safe."""

    def __init__(self) -> None:
        self._answered: dict[int, set[int]] = {}
        self._drawn: dict[int, set[int] | None] = {}
        self._errors: dict[int, list[str]] = {}
        self._lock = threading.Lock()

    def mark_answers(self, project: int, annotations: set[int]) -> None:
        """These annotations of query tasks may have changed: the next ``reconcile`` reads them from Label Studio."""
        with self._lock:
            self._answered.setdefault(project, set()).update(annotations)

    def mark_drawn(self, project: int, tasks: set[int] | None) -> None:
        """Masks drawn on these image tasks changed (None: on some task, unknown which)."""
        with self._lock:
            known = self._drawn.get(project, set())
            self._drawn[project] = None if tasks is None or known is None else known | tasks

    def take(self, project: int) -> tuple[set[int], set[int] | None]:
        """Remove and return the marks of ``project``: (annotation ids, drawn image tasks or None = all)."""
        with self._lock:
            return self._answered.pop(project, set()), self._drawn.pop(project, set())

    def note_error(self, project: int, message: str) -> None:
        """Keep ``message`` (the last ``MAX_ERRORS`` per project) for ``/health``, and log it."""
        logger.warning("project %s: %s", project, message)
        with self._lock:
            errors = self._errors.setdefault(project, [])
            if message not in errors:
                errors.append(message)
            del errors[:-MAX_ERRORS]

    def errors_of(self, project: int) -> list[str]:
        with self._lock:
            return list(self._errors.get(project, []))


class RedisNotes:
    """Notes in Redis: ``<prefix>:answered:<project>``, ``<prefix>:drawn:<project>``, ``<prefix>:errors:<project>``.

    Raises :class:`~alc_backend.jobs.QueueUnavailable` when Redis cannot be reached.

    Args:
        redis: a ``redis.Redis`` client.
        url: its URL, for messages.
        prefix: the key prefix of one deployment (``alc:<queue name>``).
    """

    def __init__(self, redis: Any, url: str, prefix: str) -> None:
        from redis.exceptions import RedisError

        self.redis = redis
        self.url = url
        self.prefix = prefix
        self._redis_errors: tuple[type[Exception], ...] = (RedisError,)

    def mark_answers(self, project: int, annotations: set[int]) -> None:
        if annotations:
            with self._reaching():
                self.redis.sadd(f"{self.prefix}:answered:{project}", *sorted(annotations))

    def mark_drawn(self, project: int, tasks: set[int] | None) -> None:
        members = [ALL_TASKS] if tasks is None else sorted(tasks)
        if members:
            with self._reaching():
                self.redis.sadd(f"{self.prefix}:drawn:{project}", *members)

    def take(self, project: int) -> tuple[set[int], set[int] | None]:
        with self._reaching(), self.redis.pipeline(transaction=True) as pipe:
            pipe.smembers(f"{self.prefix}:answered:{project}")
            pipe.delete(f"{self.prefix}:answered:{project}")
            pipe.smembers(f"{self.prefix}:drawn:{project}")
            pipe.delete(f"{self.prefix}:drawn:{project}")
            answered, _, drawn, _ = pipe.execute()
        texts = {member.decode() for member in drawn}
        return {int(member) for member in answered}, None if ALL_TASKS in texts else {int(t) for t in texts}

    def note_error(self, project: int, message: str) -> None:
        logger.warning("project %s: %s", project, message)
        key = f"{self.prefix}:errors:{project}"
        with self._reaching():
            if message.encode() in self.redis.lrange(key, 0, -1):
                return
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, message)
                pipe.ltrim(key, -MAX_ERRORS, -1)
                pipe.execute()

    def errors_of(self, project: int) -> list[str]:
        with self._reaching():
            return [item.decode() for item in self.redis.lrange(f"{self.prefix}:errors:{project}", 0, -1)]

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        try:
            yield
        except self._redis_errors as error:
            raise QueueUnavailable(f"Redis at {self.url} is unreachable: {error}") from error
