"""``alc-backend quickstart``: from nothing to a correction loop in the browser, with one command.

It checks its input first (ports free, a ``--data`` folder in the VOC layout), then starts a Label
Studio (installed into its own venv on first use) unless one is given, starts the backend, makes a
sample data set (the synthetic street scenes) unless ``--data`` names one, creates and connects the
image project and runs ``init``. It prints where to go, the login and an API token, and keeps both
servers running until Ctrl-C, which stops what it started. Everything it writes lives under
``--workdir``; a second run reuses Label Studio's data and token there, and the image project the
first run made for the same data (``quickstart.json`` records which).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from alc_backend.atomic import write_atomically
from alc_backend.data.dataset import SegmentationDataset
from alc_backend.data.synthetic import make_synthetic
from alc_backend.labelstudio.client import LabelStudioAPIError, LabelStudioClient
from alc_backend.labelstudio.config import image_label_config
from alc_backend.labelstudio.local_server import LabelStudioServer
from alc_backend.labelstudio.local_venv import label_studio_venv_path
from alc_backend.labelstudio.tasks import folder_tasks

SAMPLE_IMAGES = 16
SAMPLE_SEED = 0
USERNAME = "admin@example.com"
READY_TIMEOUT_S = 900.0
RUN_RECORD = "quickstart.json"


@dataclass(frozen=True)
class QuickstartConfig:
    """What ``alc-backend quickstart`` was asked for (see ``alc-backend quickstart --help``)."""

    workdir: Path
    data: Path | None = None
    label_studio_url: str | None = None
    label_studio_token: str | None = None
    label_studio_port: int = 8080
    port: int = 9090
    images: int = SAMPLE_IMAGES


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port``: a bind succeeds, with ``SO_REUSEADDR`` as servers
    bind, so that connections of an earlier run waiting out TIME_WAIT do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_input(config: QuickstartConfig) -> SegmentationDataset | None:
    """Raise ValueError (DatasetError for ``--data``) for bad input, before anything starts; the ``--data`` set."""
    if (config.label_studio_url is None) != (config.label_studio_token is None):
        raise ValueError("give both --label-studio-url and --label-studio-token, or neither")
    if config.label_studio_url is None and not port_is_free(config.label_studio_port):
        raise ValueError(
            f"port {config.label_studio_port} is taken, so Label Studio cannot start there; "
            "choose another with --label-studio-port"
        )
    if not port_is_free(config.port):
        raise ValueError(f"port {config.port} is taken, so the backend cannot start there; choose another with --port")
    return None if config.data is None else SegmentationDataset.open(config.data)


def run_quickstart(config: QuickstartConfig) -> int:
    """Run the quickstart (see the module docstring) until Ctrl-C or SIGTERM; returns the exit code."""
    dataset = check_input(config)
    config.workdir.mkdir(parents=True, exist_ok=True)
    server: LabelStudioServer | None = None
    backend: subprocess.Popen[bytes] | None = None
    previous = {number: signal.signal(number, _interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        if dataset is None:
            print(f"[1/5] making {config.images} synthetic street scenes", flush=True)
            root = config.workdir / "label-studio" / "documents" / "sample"
            dataset = _sample(root, config.images)
        if config.label_studio_url is None:
            print(f"[2/5] starting Label Studio (the first run installs it into {label_studio_venv_path()}", flush=True)
            print("      and migrates its database: about two minutes)", flush=True)
            server = LabelStudioServer(
                username=USERNAME,
                password=_secret(config.workdir / "label-studio" / "password.txt"),
                base_dir=config.workdir / "label-studio",
                port=config.label_studio_port,
                token=_secret(config.workdir / "label-studio" / "token.txt"),
                document_root=dataset.root.resolve().parent,
                show_progress=True,
            )
            server.start()
            url, token = server.url, server.token
        else:
            print("[2/5] using the Label Studio at " + str(config.label_studio_url), flush=True)
            url, token = str(config.label_studio_url), str(config.label_studio_token)
        print(f"[3/5] starting the backend on port {config.port}", flush=True)
        backend = _start_backend(config, url, token)
        client = LabelStudioClient(url, token)
        project = _earlier_image_project(client, config.workdir / RUN_RECORD, url, dataset)
        if project is None:
            print("[4/5] creating the image project and connecting it", flush=True)
            project = _image_project(client, dataset)
            _record_image_project(config.workdir / RUN_RECORD, url, dataset, project)
        else:
            print(f"[4/5] reusing image project {project} of the last run, and its queries", flush=True)
        print("[5/5] preparing the project and training the first model (progress below)", flush=True)
        backend_url = f"http://127.0.0.1:{config.port}"
        _init(backend_url, project)
        query_project = _wait_for_round_one(backend_url, project, backend)
        _print_welcome(url, server, token, project, query_project)
        while backend.poll() is None:
            time.sleep(1.0)
        print(f"the backend stopped with exit code {backend.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        if backend is not None and backend.poll() is None:
            backend.terminate()
            backend.wait(timeout=30)
        if server is not None:
            server.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)


def _interrupt(signal_number: int, frame: object) -> None:
    """Turn Ctrl-C and SIGTERM into KeyboardInterrupt, also when the shell started us ignoring SIGINT."""
    raise KeyboardInterrupt


def _sample(root: Path, images: int) -> SegmentationDataset:
    """The synthetic sample under ``root`` (made once, reused by later runs)."""
    if (root / "classes.txt").exists():
        return SegmentationDataset.open(root)
    return make_synthetic(root, images, SAMPLE_SEED, val_fraction=0.0)


def _secret(path: Path) -> str:
    """The secret stored in ``path``, made and stored on first use (so a second run logs in the same)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(20)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


def _start_backend(config: QuickstartConfig, url: str, token: str) -> subprocess.Popen[bytes]:
    """Start ``alc-backend serve`` for Label Studio at ``url``, logging to ``workdir/backend.log``; wait for /health."""
    environment = {
        **os.environ,
        "LABEL_STUDIO_URL": url,
        "LABEL_STUDIO_API_KEY": token,
        "MODEL_DIR": str(config.workdir / "workspace"),
    }
    command = [sys.executable, "-m", "alc_backend.cli", "serve", "--port", str(config.port)]
    log_path = config.workdir / "backend.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the backend exited with code {process.returncode}; see {log_path}")
        try:
            if requests.get(f"http://127.0.0.1:{config.port}/health", timeout=5).status_code == 200:
                return process
        except requests.RequestException:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"the backend did not answer on port {config.port}; see {log_path}")


def _image_project(client: LabelStudioClient, dataset: SegmentationDataset) -> int:
    """Create the image project for ``dataset`` with its images (and pseudo masks) as local files."""
    title = f"{dataset.root.name} (alc-backend quickstart)"
    project = int(client.create_project(title, image_label_config(dataset.classes))["id"])
    folder = dataset.root.resolve()
    client.add_local_storage(project, str(folder), title=folder.name)
    client.create_tasks(project, folder_tasks(folder, f"/data/local-files/?d={folder.name}"))
    return project


def _earlier_image_project(
    client: LabelStudioClient, record: Path, url: str, dataset: SegmentationDataset
) -> int | None:
    """The image project an earlier run made in the same Label Studio for the same data, if it still exists."""
    try:
        earlier = json.loads(record.read_text())
        same = earlier["label_studio_url"] == url and earlier["data"] == str(dataset.root.resolve())
        project = int(earlier["images_project"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no record, or one this version cannot read: make a new project
    if not same:
        return None
    try:
        client.get_project(project)
    except LabelStudioAPIError as error:
        if error.status == 404:
            return None
        raise
    return project


def _record_image_project(record: Path, url: str, dataset: SegmentationDataset, project: int) -> None:
    """Remember which image project this run made, for which Label Studio and data (``quickstart.json``)."""
    text = json.dumps({"label_studio_url": url, "data": str(dataset.root.resolve()), "images_project": project})
    write_atomically(record, lambda path: Path(path).write_text(text + "\n"))


def _init(backend_url: str, project: int) -> None:
    """``alc-backend init``: the query project, both projects connected to the backend."""
    response = requests.post(f"{backend_url}/init", json={"images_project": project}, timeout=120)
    if response.status_code != 200:
        raise RuntimeError(f"init failed: {response.status_code} {response.text[:300]}")


def _wait_for_round_one(backend_url: str, project: int, backend: subprocess.Popen[bytes]) -> int:
    """Poll /health, printing each new state, until round 1's queries are up; returns the query project."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    shown = ""
    while time.monotonic() < deadline:
        if backend.poll() is not None:
            raise RuntimeError(f"the backend exited with code {backend.returncode} while preparing")
        state = requests.get(f"{backend_url}/health", timeout=10).json()["projects"].get(str(project), {})
        line = (
            f"      prepared: {state.get('prepared')}, round {state.get('round')}, "
            f"queries: {state.get('answers', {}).get('round_queries', 0)}"
        )
        if line != shown:
            print(line, flush=True)
            shown = line
        if state.get("round", 0) >= 1 and state.get("answers", {}).get("round_queries", 0) > 0:
            return int(state["query_project"])
        time.sleep(1.0)
    raise RuntimeError(f"round 1 did not open within {READY_TIMEOUT_S:.0f} s")


def _print_welcome(url: str, server: LabelStudioServer | None, token: str, project: int, query_project: int) -> None:
    """Where to go, the login, the token on a line of its own, and what to click first."""
    print(f"\nReady. Open {url}/projects/{query_project}/data?labeling=1 to answer the first query.")
    if server is not None:
        print(f"login: {USERNAME}")
        print(f"password: {server.password}")
    print(f"token: {token}")
    print(
        f"Tick the right class of the outlined region (untick the ticked one if it is wrong) and press Submit;\n"
        f"the next query comes up. The corrected masks appear as predictions in project {project}.\n"
        "Ctrl-C stops what quickstart started.",
        flush=True,
    )
