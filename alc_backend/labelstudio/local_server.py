"""Run a real Label Studio process on 127.0.0.1, for ``alc-backend quickstart`` and the integration tests.

Each server gets a port (a free one by default), a data folder (SQLite database, uploads, log; a fresh
temporary one by default) and a document root for local files, a superuser with a fixed legacy API
token, and the settings that let it talk to an ML backend on the loopback address. It can be stopped
and started again on the same port and data, so tests can check that our writes survive a Label
Studio outage.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.local_venv import ensure_label_studio_venv
from alc_backend.processes import stop_process_group
from alc_backend.service.settings import BackendSettings

START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_CHARS = 4000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LabelStudioServer:
    """One Label Studio process with its own port, data folder, document root and admin user."""

    def __init__(
        self,
        *,
        username: str = "admin@example.com",
        password: str = "alc-test-password",
        base_dir: Path | None = None,
        port: int | None = None,
        token: str | None = None,
        document_root: Path | None = None,
        show_progress: bool = False,
    ) -> None:
        """``base_dir`` holds the data folder, the document root and the log (kept by :meth:`stop`
        when given; a temporary folder, deleted by :meth:`stop`, when None); ``port`` is a free one
        when None; ``token`` the admin's legacy API token (a new random one when None);
        ``document_root`` the folder served as local files (``base_dir/documents`` when None);
        ``show_progress`` shows on stderr the installation of Label Studio and the wait for it to start."""
        self.show_progress = show_progress
        self.venv = ensure_label_studio_venv(show_progress=show_progress)
        self._owns_base_dir = base_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix="alc-labelstudio-")) if base_dir is None else base_dir
        self.data_dir = self.base_dir / "data"
        self.document_root = self.base_dir / "documents" if document_root is None else document_root
        self.log_path = self.base_dir / "label-studio.log"
        self.document_root.mkdir(parents=True, exist_ok=True)
        self.port = free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}"
        self.username = username
        self.password = password
        self.token = secrets.token_hex(20) if token is None else token
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start Label Studio and wait until its API answers (the first start runs migrations, ~1 min)."""
        if self._process is not None:
            raise RuntimeError("Label Studio is already running")
        command = [
            str(self.venv / "bin" / "label-studio"),
            "start",
            "--no-browser",
            "--internal-host", "127.0.0.1",
            "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            "--username", self.username,
            "--password", self.password,
            "--user-token", self.token,
            "--enable-legacy-api-token",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environment(),
                cwd=self.base_dir,
                start_new_session=True,
            )
        self._wait_until_ready()

    def stop_temporarily(self) -> None:
        """Stop the process but keep port, data and token, so that `restart()` brings the same server back."""
        process = self._process
        if process is None:
            return
        self._process = None
        stop_process_group(process, STOP_TIMEOUT_S)

    def restart(self) -> None:
        """Start the server again after `stop_temporarily()`."""
        self.start()

    def stop(self) -> None:
        """Stop the process; delete its data folder and document root when they are a temporary folder."""
        self.stop_temporarily()
        if self._owns_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def client(self, *, retries: int = 5, backoff_s: float = 0.5) -> LabelStudioClient:
        """A client authenticated with the admin's legacy token."""
        return LabelStudioClient(self.url, self.token, retries=retries, backoff_s=backoff_s)

    def backend_settings(self, model_dir: Path, **fields: Any) -> BackendSettings:
        """Backend settings with this server's address and token, a workspace at `model_dir`, and `fields`."""
        return BackendSettings(model_dir=model_dir, label_studio_url=self.url, api_key=self.token, **fields)

    def add_local_storage(self, project_id: int, folder: Path) -> dict[str, object]:
        """Serve `folder` (under the document root) to the project, for `/data/local-files/?d=<relative path>`."""
        folder = folder.resolve()
        if not folder.is_relative_to(self.document_root.resolve()):
            raise ValueError(f"{folder} is not under the document root {self.document_root}")
        return self.client().add_local_storage(project_id, str(folder), title=folder.name)

    def local_file_url(self, path: Path) -> str:
        """The task data URL under which Label Studio serves `path` (a file under the document root)."""
        relative = path.resolve().relative_to(self.document_root.resolve())
        return f"/data/local-files/?d={relative.as_posix()}"

    def log_tail(self) -> str:
        """The end of Label Studio's log file."""
        if not self.log_path.exists():
            return "(no log file)"
        return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]

    def _environment(self) -> dict[str, str]:
        """The process environment: ours, minus the backend venv's, plus Label Studio's settings."""
        environment = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
        environment.update(
            {
                "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.document_root),
                "LABEL_STUDIO_ML_BLOCK_LOCAL_IP": "false",
                "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            }
        )
        return environment

    def _wait_until_ready(self) -> None:
        """Poll `GET /api/version` until it answers 200; raise with the log's tail on exit or timeout."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        headers = {"Authorization": f"Token {self.token}"}
        with tqdm(desc="starting Label Studio", bar_format="{desc}: {elapsed}", disable=not self.show_progress) as bar:
            while time.monotonic() < deadline:
                bar.refresh()
                if self._api_answers(headers):
                    return
                time.sleep(1.0)
        self.stop_temporarily()
        raise RuntimeError(
            f"Label Studio did not answer at {self.url}/api/version within {START_TIMEOUT_S:.0f} s. "
            f"Log tail:\n{self.log_tail()}"
        )

    def _api_answers(self, headers: dict[str, str]) -> bool:
        """Whether `GET /api/version` answers 200 now; raise with the log's tail when the process has exited."""
        assert self._process is not None
        if self._process.poll() is not None:
            code = self._process.returncode
            self._process = None
            raise RuntimeError(f"Label Studio exited with code {code} while starting. Log tail:\n{self.log_tail()}")
        try:
            return requests.get(f"{self.url}/api/version", headers=headers, timeout=5).status_code == 200
        except requests.RequestException:
            return False
