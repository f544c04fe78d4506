"""With a login set, the whole flow works against a real Label Studio, and nothing works without it.

The connection is made the way Label Studio's *Connect Model* form makes it, with basic auth;
``alc-backend init`` gives the webhooks Label Studio creates the login's header; an answer then
reaches the backend; and ``alc-backend status`` (the Docker image's health check) reads
``/health`` with the login from the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from backend_harness import eventually, serve_backend
from PIL import Image

from alc_backend.cli import main
from alc_backend.labelstudio.config import image_label_config
from alc_backend.rounds.settings import RoundSettings
from alc_backend.service.addresses import same_address
from alc_backend.service.backend import basic_authorization

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

CLASSES = ("background", "road", "car")
LOGIN = ("alc", "s3cret-pass")


def test_with_a_login_the_whole_flow_works(
    label_studio: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = label_studio.document_root / "login"
    folder.mkdir()
    rng = np.random.default_rng(1)
    data = []
    for index in range(3):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / f"{index}.png")
        mask = np.zeros((48, 64), dtype=np.uint8)
        mask[24:, :] = 1
        mask[30:40, 8 * index : 8 * index + 20] = 2
        Image.fromarray(mask).save(folder / f"{index}_mask.png")
        data.append(
            {
                "image": label_studio.local_file_url(folder / f"{index}.png"),
                "pseudo_mask": label_studio.local_file_url(folder / f"{index}_mask.png"),
            }
        )
    settings = label_studio.backend_settings(
        tmp_path / "workspace",
        basic_auth_user=LOGIN[0],
        basic_auth_pass=LOGIN[1],
        num_superpixels=8,
        round=RoundSettings(queries_per_round=4, image_size=32, epochs=1, device="cpu"),
    )
    client = label_studio.client()
    project = client.create_project("with a login", image_label_config(CLASSES))["id"]
    label_studio.add_local_storage(project, folder)
    client.create_tasks(project, data)
    with serve_backend(settings) as running:
        assert requests.get(f"{running.url}/health", timeout=10).status_code == 401
        # connected by hand under another spelling of its address: init must not connect it twice
        client.add_ml_backend(project, running.url.replace("127.0.0.1", "localhost"), "alc-backend", LOGIN)
        workspace = running.backend.workspace(project)
        eventually(workspace.exists, "Label Studio to call /setup with the login")

        assert main(["init", "--images-project", str(project), "--backend", running.url]) == 2
        assert "authentication required" in capsys.readouterr().err
        monkeypatch.setenv("BASIC_AUTH_USER", LOGIN[0])
        monkeypatch.setenv("BASIC_AUTH_PASS", LOGIN[1])
        assert main(["init", "--images-project", str(project), "--backend", running.url]) == 0
        running.wait_for_round(project, 1)
        query_project = workspace.state().query_project
        assert query_project is not None
        for connected in (project, query_project):
            (backend,) = client.list_ml_backends(connected)
            assert backend["auth_method"] == "BASIC_AUTH"
            hooks = [h for h in client.list_webhooks(connected) if same_address(h["url"], f"{running.url}/webhook")]
            assert [h["headers"]["Authorization"] for h in hooks] == [basic_authorization(*LOGIN)]

        task = client.next_task(query_project)
        assert task is not None
        answer = [{"from_name": "answer", "to_name": "image", "type": "choices", "value": {"choices": ["car"]}}]
        annotation = client.create_annotation(task["id"], answer)
        eventually(lambda: annotation["id"] in workspace.answers(), "the answer's webhook to pass the login")
        assert workspace.answers()[annotation["id"]].answer == CLASSES.index("car")

        capsys.readouterr()
        assert main(["status", "--backend", running.url]) == 0
        printed = capsys.readouterr().out
        assert f"project {project}: 3 tasks, round 1 (open)" in printed
        asked = sum(query.round == 1 for query in workspace.queries().values())
        assert f"  answers: 1 received; round 1: 1 of {asked} queries answered" in printed
        monkeypatch.delenv("BASIC_AUTH_USER")
        assert main(["status", "--backend", running.url]) == 2
        assert f"{running.url}/health answered 401: authentication required" in capsys.readouterr().err
