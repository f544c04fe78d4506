"""Real rq workers in subprocesses, and Redis servers of the tests' own, for the queue tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alc_backend.labelstudio.local_server import free_port
from alc_backend.processes import stop_process_group

MACHINE_REDIS = "redis://127.0.0.1:6379"


@contextmanager
def rq_worker(env: dict[str, str], log: Path, *options: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``alc-backend worker`` with ``env`` in its own process group; stopped (SIGTERM) at the end."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "alc_backend.cli", "worker", "--monitoring-interval", "5", *options],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_process_group(process)


def kill_worker(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and its children at once, as a machine that loses power would.

    rq's work horse puts itself in a process group of its own, so the worker's group alone
    would leave it running (and holding the project's lock).
    """
    children = _child_pids(process.pid)
    os.killpg(process.pid, signal.SIGKILL)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def _child_pids(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (from ``/proc``)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


class RedisServer:
    """A Redis server of the test's own on a free port (to be stopped and started at will)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(command, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while (
            subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout.strip() != b"PONG"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
