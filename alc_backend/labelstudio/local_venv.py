"""Find or create the separate virtual environment that holds Label Studio (for quickstart and the tests).

Label Studio is an application with its own pinned dependencies, so it never goes into the backend's
environment: it gets a venv of its own, created on first use and shared by later runs.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

LABEL_STUDIO_VERSION = "1.23.2"
OUTPUT_TAIL_CHARS = 3000


def label_studio_venv_path() -> Path:
    """The venv's root: `ALC_LABEL_STUDIO_VENV` when set, else `.venv-labelstudio` in the working directory."""
    configured = os.environ.get("ALC_LABEL_STUDIO_VENV")
    return Path(configured) if configured else Path.cwd() / ".venv-labelstudio"


def ensure_label_studio_venv() -> Path:
    """Return the root of a venv holding label-studio==1.23.2, creating it first if it lacks `bin/label-studio`.

    A file lock inside the venv's folder makes concurrent test processes wait for one installation instead of
    running two. Raises RuntimeError with the tail of the failing command's output when installing fails.
    """
    venv = label_studio_venv_path()
    if (venv / "bin" / "label-studio").exists():
        return venv
    venv.mkdir(parents=True, exist_ok=True)
    with (venv / ".alc-install.lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            if not (venv / "bin" / "label-studio").exists():
                _install(venv)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    return venv


def _install(venv: Path) -> None:
    """Create the venv (if needed) and pip-install the pinned Label Studio into it."""
    if not (venv / "bin" / "python").exists():
        _run(["python3", "-m", "venv", str(venv)], "creating the venv")
    _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"label-studio=={LABEL_STUDIO_VERSION}"],
        f"installing label-studio=={LABEL_STUDIO_VERSION}",
    )
    if not (venv / "bin" / "label-studio").exists():
        raise RuntimeError(f"pip finished but {venv / 'bin' / 'label-studio'} does not exist")


def _run(command: list[str], what: str) -> None:
    """Run `command`; raise RuntimeError with the tail of its output when it fails."""
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr)[-OUTPUT_TAIL_CHARS:]
        raise RuntimeError(f"Label Studio venv: {what} failed (exit {completed.returncode}):\n{output}")
