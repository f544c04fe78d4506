"""Find or create the separate virtual environment that holds Label Studio (for quickstart and the tests).

Label Studio is an application with its own pinned dependencies, so it never goes into the backend's
environment: it gets a venv of its own, created on first use and shared by later runs.
"""

from __future__ import annotations

import collections
import fcntl
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

LABEL_STUDIO_VERSION = "1.23.2"
OUTPUT_TAIL_CHARS = 3000


def label_studio_venv_path() -> Path:
    """The venv's root: `ALC_LABEL_STUDIO_VENV` when set, else `.venv-labelstudio` in the working directory."""
    configured = os.environ.get("ALC_LABEL_STUDIO_VENV")
    return Path(configured) if configured else Path.cwd() / ".venv-labelstudio"


def ensure_label_studio_venv(*, show_progress: bool = False) -> Path:
    """Return the root of a venv holding label-studio==1.23.2, creating it first if it lacks `bin/label-studio`.

    A file lock inside the venv's folder makes concurrent test processes wait for one installation instead of
    running two. With ``show_progress``, a progress line on stderr counts the packages pip collects. Raises
    RuntimeError with the tail of the failing command's output when installing fails.
    """
    venv = label_studio_venv_path()
    if (venv / "bin" / "label-studio").exists():
        return venv
    venv.mkdir(parents=True, exist_ok=True)
    with (venv / ".alc-install.lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            if not (venv / "bin" / "label-studio").exists():
                _install(venv, show_progress)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    return venv


def _install(venv: Path, show_progress: bool) -> None:
    """Create the venv (if needed) and pip-install the pinned Label Studio into it."""
    if not (venv / "bin" / "python").exists():
        _run(["python3", "-m", "venv", str(venv)], "creating the venv")
    requirement = f"label-studio=={LABEL_STUDIO_VERSION}"
    with tqdm(desc=f"installing {requirement}", unit=" packages", disable=not show_progress) as bar:

        def collected(package: str) -> None:
            bar.update(1)
            bar.set_postfix_str(package)

        pip_install(venv / "bin" / "python", [requirement], on_package=collected)
    if not (venv / "bin" / "label-studio").exists():
        raise RuntimeError(f"pip finished but {venv / 'bin' / 'label-studio'} does not exist")


def pip_install(python: Path, requirements: Sequence[str], on_package: Callable[[str], None] | None = None) -> None:
    """Run ``python -m pip install REQUIREMENTS``, calling ``on_package(name)`` as pip collects each package.

    pip's own output is read line by line: it names each package on a line ``Collecting NAME``
    (from an index) or ``Processing PATH`` (a file, also from a ``file://`` index). Raises
    RuntimeError with the tail of that output when pip fails.
    """
    command = [str(python), "-m", "pip", "install", "--progress-bar", "off", *requirements]
    tail: collections.deque[str] = collections.deque(maxlen=60)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            tail.append(line)
            package = _package_named(line)
            if on_package is not None and package is not None:
                on_package(package)
    if process.returncode != 0:
        output = "".join(tail)[-OUTPUT_TAIL_CHARS:]
        raise RuntimeError(f"pip install {' '.join(requirements)} failed (exit {process.returncode}):\n{output}")


def _package_named(line: str) -> str | None:
    """The package a line of pip's output starts on (``Collecting six``, ``Processing /w/six-1.17.0-py3-none-any.whl``
    -> ``six``), or None."""
    words = line.split()
    if len(words) < 2 or line[0].isspace():
        return None
    if words[0] == "Collecting":
        return words[1]
    if words[0] == "Processing":
        return Path(words[1]).name.split("-")[0]
    return None


def _run(command: list[str], what: str) -> None:
    """Run `command`; raise RuntimeError with the tail of its output when it fails."""
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr)[-OUTPUT_TAIL_CHARS:]
        raise RuntimeError(f"Label Studio venv: {what} failed (exit {completed.returncode}):\n{output}")
