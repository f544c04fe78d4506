"""A real alc-backend HTTP server on 127.0.0.1 for the end-to-end tests, and helpers around it."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from werkzeug.serving import make_server

from alc_backend.data.dataset import SegmentationDataset
from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.config import image_label_config
from alc_backend.labelstudio.local_server import LabelStudioServer, free_port
from alc_backend.server import create_app
from alc_backend.service.backend import Backend
from alc_backend.service.settings import BackendSettings


@dataclass
class RunningBackend:
    """The server's URL and the :class:`Backend` behind it (to wait for its jobs)."""

    url: str
    backend: Backend

    def wait(self, timeout_s: float = 900.0) -> None:
        """Wait until no job is queued or running; fail if one failed."""
        assert self.backend.runner.wait_idle(timeout_s), "the backend's jobs did not finish in time"
        failed = self.backend.runner.status()["failed"]
        assert not failed, f"jobs failed: {json.dumps(failed, indent=1)[:3000]}"

    def wait_for_round(self, project: int, round_index: int, timeout_s: float = 900.0) -> None:
        """Wait until image project ``project`` has opened round ``round_index`` and its jobs are done.

        Label Studio may deliver a webhook a moment after the annotation call returns, so an
        idle runner alone does not mean the last answer was seen.
        """
        deadline = time.monotonic() + timeout_s
        workspace = self.backend.workspace(project)
        while time.monotonic() < deadline:
            if workspace.exists():
                state = workspace.state()
                if state.round >= round_index and state.round_open:
                    self.wait(max(1.0, deadline - time.monotonic()))
                    return
            failed = self.backend.runner.status()["failed"]
            assert not failed, f"jobs failed: {json.dumps(failed, indent=1)[:3000]}"
            time.sleep(0.2)
        raise AssertionError(f"project {project} did not open round {round_index} within {timeout_s} s")


@contextmanager
def serve_backend(
    settings: BackendSettings, retry_delays_s: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 32.0)
) -> Iterator[RunningBackend]:
    """Run the backend's Flask app on a free port in a thread for the duration of the block.

    Unless ``settings`` name the backend's address, it is the served one, as ``alc-backend serve`` does.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if not settings.backend_url:
        settings = dataclasses.replace(settings, backend_url=url)
    backend = Backend(settings, retry_delays_s=retry_delays_s)
    server = make_server("127.0.0.1", port, create_app(settings, backend), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningBackend(url, backend)
    finally:
        server.shutdown()
        stop = getattr(backend.runner, "stop", None)
        if stop is not None:
            stop()


def eventually(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``check`` until it holds (webhooks arrive a moment after the API call that caused them)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def import_synthetic(
    client: LabelStudioClient, label_studio: LabelStudioServer, dataset: SegmentationDataset, folder: str, title: str
) -> tuple[int, dict[int, str]]:
    """Copy ``dataset`` under Label Studio's document root as ``folder`` and import its training images,
    each with its pseudo-labels, into a new image project ``title``; returns ``(project, task -> name)``."""
    shutil.copytree(dataset.root, label_studio.document_root / folder)
    project = int(client.create_project(title, image_label_config(dataset.classes))["id"])
    label_studio.add_local_storage(project, label_studio.document_root / folder)
    data = [
        {
            "image": f"/data/local-files/?d={folder}/images/{name}.png",
            "pseudo_mask": f"/data/local-files/?d={folder}/pseudo/{name}.png",
        }
        for name in dataset.train_names
    ]
    return project, dict(zip(client.create_tasks(project, data), dataset.train_names, strict=True))
