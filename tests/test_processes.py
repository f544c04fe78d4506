"""stop_process_group stops a child and what it started, and kills what ignores SIGTERM."""

from __future__ import annotations

import signal
import subprocess

from backend_harness import eventually

from alc_backend.processes import stop_process_group


def started(script: str) -> tuple[subprocess.Popen[bytes], int]:
    """Run ``script`` in bash in a new session; returns the process and the pid the script printed once ready."""
    process = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_whole_group_stops() -> None:
    process, child = started("sleep 300 & echo $!; wait")
    stop_process_group(process, 10.0)
    assert process.returncode == -signal.SIGTERM
    eventually(lambda: not alive(child), "the child to take its SIGTERM", 10.0)


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    process, _ = started("trap '' TERM; echo $$; while true; do sleep 0.1; done")
    stop_process_group(process, 0.5)
    assert process.returncode == -signal.SIGKILL


def test_a_group_that_is_gone_is_left_alone() -> None:
    process = subprocess.Popen(["true"], start_new_session=True)
    process.wait()
    stop_process_group(process)
    assert process.returncode == 0
