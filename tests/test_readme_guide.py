"""The README's "Label Studio, step by step", followed as written, against a real Label Studio.

Every shell command comes from the guide's code blocks and runs in bash, with what a reader fills
in or changes too: ``<password>`` and ``<token>`` filled in, ports 8080 and 9090 moved to free
ones (the tests run beside other servers), and so ``--backend`` given to the commands that would
call the backend on 9090; ``HOME`` a fresh folder (so ``$HOME/data`` and Label Studio's data
folder are the test's own), ``.venv`` this test run's venv and ``label-studio`` the one in
``.venv-labelstudio``. What the guide does in the browser (log in and make a token, create
the project, add the storage, import, connect the model, answer a query) goes through the REST
calls those pages make.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from backend_harness import eventually

from alc_backend.data.dataset import SegmentationDataset, read_label_png
from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.local_server import free_port
from alc_backend.labelstudio.local_venv import ensure_label_studio_venv
from alc_backend.processes import stop_process_group

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

README = Path(__file__).resolve().parents[1] / "README.md"
PASSWORD = "guide-password-1"
START_TIMEOUT_S = 300.0
ROUND_TIMEOUT_S = 600.0


def guide_blocks() -> list[tuple[str, str]]:
    """The (language, text) of each fenced block of the README's step-by-step guide, in order."""
    text = README.read_text()
    section = text[text.index("## Label Studio, step by step") : text.index("### Settings")]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL)


def block(containing: str, language: str = "bash") -> str:
    """The one block of the guide in ``language`` that holds ``containing``."""
    (found,) = [text for kind, text in guide_blocks() if kind == language and containing in text]
    return found


@contextmanager
def background(command: str, environment: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in bash in its own process group, logging to ``log``; stop the group on exit."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            ["bash", "-c", command], cwd=cwd, env=environment, stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        stop_process_group(process, 60.0)


def run(command: str, environment: dict[str, str], cwd: Path) -> str:
    """Run ``command`` in bash (stopping at the first failing line); its standard output."""
    done = subprocess.run(
        ["bash", "-ec", command], cwd=cwd, env=environment, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{command}\nexited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def answers(url: str, check: Any) -> bool:
    """Whether ``GET url`` answers 200 and ``check`` holds for its JSON (False while nothing listens)."""
    try:
        response = requests.get(url, timeout=10)
    except requests.RequestException:
        return False
    return response.status_code == 200 and bool(check(response.json()))


def personal_access_token(url: str, username: str, password: str) -> str:
    """Log in as the login page does and create a token as *Account & Settings → Personal Access Token* does."""
    session = requests.Session()
    session.get(f"{url}/user/login/", timeout=30)
    csrf = session.cookies["csrftoken"]
    login = {"email": username, "password": password, "csrfmiddlewaretoken": csrf}
    response = session.post(f"{url}/user/login/", data=login, headers={"Referer": f"{url}/user/login/"}, timeout=30)
    assert response.status_code == 200 and "/user/login" not in response.url, "the README's login works"
    created = session.post(f"{url}/api/token/", headers={"X-CSRFToken": session.cookies["csrftoken"]}, timeout=30)
    assert created.status_code == 201, created.text
    return str(created.json()["token"])


def test_the_step_by_step_guide_runs_as_written(tmp_path: Path) -> None:
    label_studio_port, backend_port = str(free_port()), str(free_port())
    backend_url = f"http://127.0.0.1:{backend_port}"

    def filled(command: str, token: str = "") -> str:
        command = command.replace("8080", label_studio_port).replace("9090", backend_port)
        for calling in ("init", "report"):
            command = command.replace(f"alc-backend {calling} ", f"alc-backend {calling} --backend {backend_url} ")
        return command.replace("<password>", PASSWORD).replace("<token>", token)

    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    unset = ("VIRTUAL_ENV", "PYTHONPATH", "MODEL_DIR", "REDIS_URL", "BASIC_AUTH_USER", "BASIC_AUTH_PASS")
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in unset and not key.startswith(("ALC_", "LABEL_STUDIO_", "XDG_"))
    }
    environment["HOME"] = str(home)
    label_studio_bin = ensure_label_studio_venv() / "bin"
    studio_environment = environment | {"PATH": f"{label_studio_bin}:{environment['PATH']}"}

    # 1. Start Label Studio; log in; make a token.
    step_1 = filled(block("label-studio start"))
    with background(step_1, studio_environment, tmp_path, tmp_path / "label-studio.log") as studio:
        url = f"http://localhost:{label_studio_port}"
        eventually(lambda: answers(f"{url}/health", lambda body: True), "Label Studio to start", START_TIMEOUT_S)
        assert studio.poll() is None
        login = re.search(r"--username (\S+)", step_1)
        assert login is not None, step_1
        token = personal_access_token(url, login.group(1), PASSWORD)

        # 2. Start the backend.
        step_2 = filled(block("alc-backend serve"), token)
        with background(step_2, environment, tmp_path, tmp_path / "backend.log") as backend:
            eventually(lambda: answers(f"{backend_url}/health", lambda body: True), "the backend to start", 120.0)

            # 3. The sample data, its labeling config and tasks; the project, its storage and the import.
            run(filled(block("alc-backend label-config")), environment, tmp_path)
            data = home / "data" / "street"
            dataset = SegmentationDataset.open(data)
            client = LabelStudioClient(url, token)
            project = client.create_project("street", (tmp_path / "config.xml").read_text())["id"]
            assert project == 1, "the guide's later commands name project 1"
            client.add_local_storage(project, str(data), title="street")
            tasks = json.loads((tmp_path / "tasks.json").read_text())
            assert tasks[0] == json.loads(block('"pseudo_mask"', "json"))[0], "the guide shows the first task"
            client.create_tasks(project, tasks)

            # 4. Connect the backend (Settings → Model → Connect Model).
            client.add_ml_backend(project, f"http://localhost:{backend_port}", "alc-backend")

            # 5. The query project; round 1 opens.
            run(filled(block("alc-backend init")), environment, tmp_path)
            health = f"{backend_url}/health"

            def round_one_open(body: dict[str, Any]) -> bool:
                state = body["projects"].get(str(project), {})
                return state.get("round") == 1 and state.get("answers", {}).get("round_queries", 0) > 0

            eventually(lambda: answers(health, round_one_open), "round 1's queries", ROUND_TIMEOUT_S)
            assert backend.poll() is None
            query_project = int(requests.get(health, timeout=10).json()["projects"][str(project)]["query_project"])

            # 6. Answer: the first query, submitted as it arrives.
            query = client.next_task(query_project)
            assert query is not None
            (prediction,) = query["predictions"]
            client.create_annotation(int(query["id"]), prediction["result"], lead_time=4.0)
            eventually(
                lambda: answers(health, lambda body: body["projects"][str(project)]["answers"]["received"] == 1),
                "the answer to reach the backend",
            )

            # 7. Where the project stands: status (as the guide shows it) and the report.
            status = run(f".venv/bin/alc-backend status --backend {backend_url}", environment, tmp_path)
            first_line = r"^project 1: 16 tasks, round 1 \(open\), model version alc-r0, query project 2$"
            assert re.search(first_line, status, re.M), status
            assert re.search(r"^  answers: 1 received; round 1: 1 of \d+ queries answered$", status, re.M), status
            run(filled(block("alc-backend report")), environment, tmp_path)
            assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

            # 8. Export: one mask per image, named after it: the pseudo-labels until round 1 ends.
            run(filled(block("alc-backend export"), token), environment, tmp_path)
            exported = SegmentationDataset.open(tmp_path / "corrected")
            assert exported.classes == dataset.classes
            assert exported.train_names + exported.val_names == dataset.train_names + dataset.val_names
            for name in dataset.train_names:
                mask = read_label_png(tmp_path / "corrected" / "masks" / f"{name}.png")
                assert np.array_equal(mask, dataset.pseudo(name)), name
