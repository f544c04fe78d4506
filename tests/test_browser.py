"""A person's path through a query, in a real browser: log in, answer by clicking a class, submit, see the next.

Headless Debian Chromium, driven by Playwright, against a real Label Studio and the backend.
Without Chromium or Playwright the test is skipped, unless ``ALC_REQUIRE_BROWSER=1`` (as CI sets)
makes their absence a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backend_harness import RunningBackend, eventually, serve_backend

from alc_backend.cli import main
from alc_backend.data.synthetic import make_synthetic
from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.config import image_label_config
from alc_backend.rounds.settings import RoundSettings

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

CHROMIUM = Path(os.environ.get("ALC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 900}
PAGE_TIMEOUT_MS = 60_000


def browser_or_skip() -> Any:
    """Playwright's sync API, or skip (fail under ``ALC_REQUIRE_BROWSER=1``) naming what is missing."""
    missing = []
    try:
        from playwright import sync_api
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
        sync_api = None
    if not CHROMIUM.exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium, or set ALC_CHROMIUM)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("ALC_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return sync_api


@pytest.fixture(scope="module")
def running_backend(label_studio: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBackend]:
    settings = label_studio.backend_settings(
        tmp_path_factory.mktemp("workspace"),
        num_superpixels=20,
        round=RoundSettings(method="abc", queries_per_round=4, image_size=64, epochs=2, device="cpu"),
    )
    with serve_backend(settings) as running:
        yield running


def test_an_annotator_answers_a_query_in_the_browser_and_the_next_one_comes_up(
    label_studio: Any, client: LabelStudioClient, running_backend: RunningBackend, tmp_path: Path
) -> None:
    sync_api = browser_or_skip()
    root = tmp_path / "data"
    dataset = make_synthetic(root, 4, 11, size=64, val_fraction=0.0, progress=False)
    shutil.copytree(root, label_studio.document_root / "browser")
    project = int(client.create_project("browser path", image_label_config(dataset.classes))["id"])
    label_studio.add_local_storage(project, label_studio.document_root / "browser")
    data = [
        {
            "image": f"/data/local-files/?d=browser/images/{name}.png",
            "pseudo_mask": f"/data/local-files/?d=browser/pseudo/{name}.png",
        }
        for name in dataset.train_names
    ]
    names = dict(zip(client.create_tasks(project, data), dataset.train_names, strict=True))
    assert main(["init", "--images-project", str(project), "--backend", running_backend.url]) == 0
    running_backend.wait_for_round(project, 1)
    workspace = running_backend.backend.workspace(project)
    query_project = workspace.state().query_project
    by_rank = sorted((q for q in workspace.queries().values() if q.round == 1), key=lambda q: q.rank)
    first, second = by_rank[0], by_rank[1]
    truth = dataset.classes[int(dataset.mask(names[first.image_task])[first.row, first.col])]
    proposed = dataset.classes[first.proposed]

    with tempfile.TemporaryDirectory(prefix="alc-chromium-") as profile, sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT
        )
        try:
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{label_studio.url}/user/login/")
            page.fill("input[name=email]", label_studio.username)
            page.fill("input[name=password]", label_studio.password)
            with page.expect_navigation():
                page.click("button[type=submit], input[type=submit]")
            with page.expect_response(lambda response: "id=next_task" in response.url) as served:
                page.goto(f"{label_studio.url}/projects/{query_project}/data?labeling=1")
            assert served.value.json()["id"] == first.task
            wait_for_query(page)
            assert ticked(page) == [proposed]  # a correction query arrives with its class ticked
            if truth != proposed:
                choice(page, proposed).click()
                choice(page, truth).click()
            assert ticked(page) == [truth]
            with page.expect_response(lambda response: "id=next_task" in response.url) as served:
                page.get_by_test_id("bottombar-submit-button").click()
            assert served.value.json()["id"] == second.task
            wait_for_query(page)
        finally:
            context.close()

    def answered() -> bool:
        answer = workspace.answers()
        return any(record.query_task == first.task for record in answer.values())

    eventually(answered, "the browser's answer to reach the backend")
    (record,) = [r for r in workspace.answers().values() if r.query_task == first.task]
    assert record.classes == (dataset.classes.index(truth),)


def ticked(page: Any) -> list[str]:
    """The classes ticked on the page (their labels without the hotkey hint, ``car[5]`` -> ``car``)."""
    texts = page.locator(".lsf-choices .ant-checkbox-wrapper-checked").all_inner_texts()
    return [re.sub(r"\[\d+\]$", "", text.strip()) for text in texts]


def choice(page: Any, name: str) -> Any:
    """The checkbox label of class ``name``."""
    return page.locator(".lsf-choices label", has_text=re.compile(rf"^{re.escape(name)}(\[\d+\])?$"))


def wait_for_query(page: Any) -> None:
    """Wait until the editor shows the image and the query's region and pixel."""
    page.wait_for_selector(".konvajs-content canvas")
    page.wait_for_function(
        "() => [...document.querySelectorAll('img[alt=image]')].some(i => i.complete && i.naturalWidth > 0)"
    )
    page.wait_for_function("() => document.querySelectorAll('.lsf-outliner-item').length >= 2")
