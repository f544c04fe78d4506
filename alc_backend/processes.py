"""Stopping a child process together with everything it started."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM the process group that ``process`` leads (started with ``start_new_session=True``),
    and SIGKILL it when ``process`` has not exited ``timeout_s`` seconds later. Waits for the exit;
    a group that is already gone is left alone."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        process.wait()
        return
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
