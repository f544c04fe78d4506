"""Make ``docs/query_task.png``: a correction query as an annotator sees it in Label Studio's labeling UI.

The script starts a real Label Studio 1.23.2 (from ``.venv-labelstudio``, as the integration tests do) and
our backend, connects a small synthetic street-scene set, waits for round 1, opens the first query of the
round in the labeling stream as the admin user in headless Chromium and saves a screenshot.

Playwright drives the browser. It is a docs tool only, not a dependency of the backend or its tests, so
install it by hand into the backend's venv and point it at the system's Chromium (do not run
``playwright install``, which downloads browsers)::

    .venv/bin/pip install playwright
    .venv/bin/python docs/make_screenshot.py            # writes docs/query_task.png

Options: ``--out PATH`` (another file), ``--chromium PATH`` (default ``/usr/bin/chromium``).
It takes one to two minutes, most of it Label Studio's first start (database migrations).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from backend_harness import RunningBackend, brush_config, serve_backend  # noqa: E402
from labelstudio_server import LabelStudioServer  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from alc_backend.data.synthetic import make_synthetic  # noqa: E402
from alc_backend.rounds.settings import RoundSettings  # noqa: E402
from alc_backend.service.settings import BackendSettings  # noqa: E402

IMAGE_SIZE_PX = 256
NUM_IMAGES = 4
SEED = 3
VIEWPORT = {"width": 1400, "height": 900}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TIMEOUT_MS = 60_000
SETTLE_MS = 1000


def connect_synthetic_project(ls: LabelStudioServer, running: RunningBackend, work_dir: Path) -> tuple[int, int]:
    """Create an image project with a small synthetic set, connect it, wait for round 1.

    Returns ``(images project, query project)``.
    """
    root = work_dir / "synthetic"
    dataset = make_synthetic(root, NUM_IMAGES, SEED, size=IMAGE_SIZE_PX, val_fraction=0.0, progress=False)
    shutil.copytree(root, ls.document_root / "synthetic")
    client = ls.client()
    project = int(client.create_project("street scenes", brush_config(dataset.classes))["id"])
    ls.add_local_storage(project, ls.document_root / "synthetic")
    data = [
        {
            "image": ls.local_file_url(ls.document_root / "synthetic" / "images" / f"{name}.png"),
            "pseudo_mask": ls.local_file_url(ls.document_root / "synthetic" / "pseudo" / f"{name}.png"),
            "name": name,
        }
        for name in dataset.train_names
    ]
    client.create_tasks(project, data)
    response = requests.post(f"{running.url}/init", json={"images_project": project}, timeout=120)
    response.raise_for_status()
    query_project = int(response.json()["query_project"])
    running.wait_for_round(project, 1)
    return project, query_project


def first_query_task(ls: LabelStudioServer, query_project: int) -> dict[str, Any]:
    """The query task of round 1 with rank 0 (the one Label Studio's labeling stream serves first)."""
    tasks = [t for t in ls.client().list_tasks(query_project) if t["data"].get("round") == 1]
    return min(tasks, key=lambda t: int(t["data"]["rank"]))


def log_in(page: Page, ls: LabelStudioServer) -> None:
    """Log in through Label Studio's login form as the admin user."""
    page.goto(f"{ls.url}/user/login/")
    page.fill("input[name=email]", ls.username)
    page.fill("input[name=password]", ls.password)
    with page.expect_navigation():
        page.click("button[type=submit], input[type=submit]")


def wait_for_query(page: Page) -> None:
    """Wait until the editor shows the image, both prediction regions and a selected choice."""
    page.wait_for_load_state("networkidle")
    page.wait_for_selector(".konvajs-content canvas")
    page.wait_for_function(
        "() => [...document.querySelectorAll('img[alt=image]')].some(i => i.complete && i.naturalWidth > 0)"
    )
    page.wait_for_function("() => document.querySelectorAll('.lsf-outliner-item').length >= 2")
    page.wait_for_selector(".lsf-choices .ant-checkbox-wrapper-checked")
    page.wait_for_timeout(SETTLE_MS)


def screenshot_task(ls: LabelStudioServer, query_project: int, task_id: int, out: Path, chromium: str) -> None:
    """Open the task in the labeling stream, wait for image, regions and choice, save a screenshot to ``out``."""
    with tempfile.TemporaryDirectory(prefix="alc-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT
        )
        try:
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            log_in(page, ls)
            page.goto(f"{ls.url}/projects/{query_project}/data?labeling=1&task={task_id}")
            wait_for_query(page)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "query_task.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    ls = LabelStudioServer()
    work_dir = Path(tempfile.mkdtemp(prefix="alc-screenshot-"))
    try:
        ls.start()
        settings = BackendSettings(
            model_dir=work_dir / "workspace",
            label_studio_url=ls.url,
            api_key=ls.token,
            num_superpixels=40,
            round=RoundSettings(queries_per_round=8, image_size=128, epochs=2, device="cpu"),
        )
        with serve_backend(settings) as running:
            _, query_project = connect_synthetic_project(ls, running, work_dir)
            task = first_query_task(ls, query_project)
            screenshot_task(ls, query_project, int(task["id"]), args.out, args.chromium)
        print(f"wrote {args.out} (query project {query_project}, task {task['id']})")
    finally:
        ls.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
