"""Make ``docs/query_task.png`` (or ``audit_task.png``, ``multiclass_task.png``): a query as an annotator sees it.

The script starts a real Label Studio 1.23.2 (from ``.venv-labelstudio``, as the integration tests do) and
our backend, connects a small synthetic street-scene set, waits for round 1, opens the first query of the
round in the labeling stream as the admin user in headless Chromium and saves a screenshot.

With ``--audit`` it answers every query of round 1 with the true class at its marked pixel, waits for
round 2, answers round 2's queries ranked before its first audit of an automatic correction and
screenshots that audit instead (LCM's model-confidence check is turned off, so that round 1 surely
proposes changes for round 2 to audit). With ``--multiclass`` the backend asks multi-class queries
(``multiclass:abc``), which arrive with no class ticked.

Playwright drives the browser; it comes with the development install (``pip install -e '.[dev]'``, as
the browser test needs it) and is pointed at the system's Chromium (``apt-get install chromium``; do not
run ``playwright install``, which downloads browsers)::

    .venv/bin/python docs/make_screenshot.py            # writes docs/query_task.png
    .venv/bin/python docs/make_screenshot.py --audit    # writes docs/audit_task.png
    .venv/bin/python docs/make_screenshot.py --multiclass    # writes docs/multiclass_task.png

Options: ``--audit`` or ``--multiclass``, ``--out PATH`` (another file), ``--chromium PATH`` (default
``/usr/bin/chromium``). It takes one to two minutes (a little more with ``--audit``), most of it Label
Studio's first start (database migrations).
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

from backend_harness import RunningBackend, serve_backend  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from alc_backend.data.dataset import SegmentationDataset  # noqa: E402
from alc_backend.data.synthetic import make_synthetic  # noqa: E402
from alc_backend.engine.lcm import LCMConfig  # noqa: E402
from alc_backend.labelstudio.config import image_label_config  # noqa: E402
from alc_backend.labelstudio.local_server import LabelStudioServer  # noqa: E402
from alc_backend.rounds.settings import RoundSettings  # noqa: E402
from alc_backend.service.workspace import QueryRecord  # noqa: E402

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


def round_settings(audit: bool, multiclass: bool) -> RoundSettings:
    """Small, fast rounds; for ``audit``, without LCM's model-confidence check (round 1 then proposes
    plenty); for ``multiclass``, multi-class queries."""
    lcm = LCMConfig(model_confidence=0.0) if audit else LCMConfig()
    method = "multiclass:abc" if multiclass else "abc+lcm"
    return RoundSettings(method=method, queries_per_round=8, image_size=128, epochs=2, device="cpu", lcm=lcm)


def connect_synthetic_project(
    ls: LabelStudioServer, running: RunningBackend, work_dir: Path
) -> tuple[SegmentationDataset, int, int]:
    """Create an image project with a small synthetic set, connect it, wait for round 1.

    Returns ``(data set, images project, query project)``.
    """
    root = work_dir / "synthetic"
    dataset = make_synthetic(root, NUM_IMAGES, SEED, size=IMAGE_SIZE_PX, val_fraction=0.0, progress=False)
    shutil.copytree(root, ls.document_root / "synthetic")
    client = ls.client()
    project = int(client.create_project("street scenes", image_label_config(dataset.classes))["id"])
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
    return dataset, project, query_project


def first_query_task(ls: LabelStudioServer, query_project: int) -> int:
    """The query task of round 1 with rank 0 (the one Label Studio's labeling stream serves first)."""
    tasks = [t for t in ls.client().list_tasks(query_project) if t["data"].get("round") == 1]
    return int(min(tasks, key=lambda t: int(t["data"]["rank"]))["id"])


def choice(name: str) -> list[dict[str, Any]]:
    """An answer to a query task: the class ``name``."""
    return [{"from_name": "answer", "to_name": "image", "type": "choices", "value": {"choices": [name]}}]


def answer_queries(
    ls: LabelStudioServer, project: int, dataset: SegmentationDataset, queries: list[QueryRecord]
) -> None:
    """Answer ``queries`` with the true class at each one's marked pixel."""
    client = ls.client()
    names = {int(t["id"]): str(t["data"]["name"]) for t in client.list_tasks(project)}
    for query in queries:
        truth = int(dataset.mask(names[query.image_task])[query.row, query.col])
        client.create_annotation(query.task, choice(dataset.classes[truth]))


def first_audit_task(
    ls: LabelStudioServer, running: RunningBackend, project: int, query_project: int, dataset: SegmentationDataset
) -> int:
    """Answer round 1, wait for round 2, answer round 2's queries ranked before its first audit.

    Label Studio's labeling stream then serves that audit first (it serves the next unanswered task
    whatever the URL asks for). Returns the audit's query task.
    """
    workspace = running.backend.workspace(project)
    answer_queries(ls, project, dataset, [q for q in workspace.queries().values() if q.round == 1])
    running.wait_for_round(project, 2)
    round_two = sorted((q for q in workspace.queries().values() if q.round == 2), key=lambda q: q.rank)
    audit = next((q for q in round_two if q.kind == "audit"), None)
    if audit is None:
        raise RuntimeError("round 2 has no audits: LCM proposed no changes in round 1")
    answer_queries(ls, project, dataset, [q for q in round_two if q.rank < audit.rank])
    served = ls.client().next_task(query_project)
    if served is None or int(served["id"]) != audit.task:
        raise RuntimeError(f"Label Studio serves {served and served['id']} next, not audit task {audit.task}")
    return audit.task


def log_in(page: Page, ls: LabelStudioServer) -> None:
    """Log in through Label Studio's login form as the admin user."""
    page.goto(f"{ls.url}/user/login/")
    page.fill("input[name=email]", ls.username)
    page.fill("input[name=password]", ls.password)
    with page.expect_navigation():
        page.click("button[type=submit], input[type=submit]")


def wait_for_query(page: Page, ticked: bool) -> None:
    """Wait until the editor shows the image, both prediction regions and, if ``ticked``, a ticked class."""
    page.wait_for_load_state("networkidle")
    page.wait_for_selector(".konvajs-content canvas")
    page.wait_for_function(
        "() => [...document.querySelectorAll('img[alt=image]')].some(i => i.complete && i.naturalWidth > 0)"
    )
    page.wait_for_function("() => document.querySelectorAll('.lsf-outliner-item').length >= 2")
    if ticked:
        page.wait_for_selector(".lsf-choices .ant-checkbox-wrapper-checked")
    page.wait_for_timeout(SETTLE_MS)


def screenshot_task(
    ls: LabelStudioServer, query_project: int, task_id: int, out: Path, chromium: str, ticked: bool
) -> None:
    """Open the task in the labeling stream, wait for image, regions and (if ``ticked``) a ticked class,
    save a screenshot to ``out``."""
    with tempfile.TemporaryDirectory(prefix="alc-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT
        )
        try:
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            log_in(page, ls)
            page.goto(f"{ls.url}/projects/{query_project}/data?labeling=1&task={task_id}")
            wait_for_query(page, ticked)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--audit", action="store_true", help="screenshot an audit of round 2")
    kind.add_argument("--multiclass", action="store_true", help="screenshot a multi-class query")
    parser.add_argument("--out", type=Path, help="default: docs/query_task.png (audit_task.png, multiclass_task.png)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    name = "audit_task.png" if args.audit else "multiclass_task.png" if args.multiclass else "query_task.png"
    out = args.out or REPO_ROOT / "docs" / name
    ls = LabelStudioServer()
    work_dir = Path(tempfile.mkdtemp(prefix="alc-screenshot-"))
    try:
        ls.start()
        settings = ls.backend_settings(
            work_dir / "workspace", num_superpixels=40, round=round_settings(args.audit, args.multiclass)
        )
        with serve_backend(settings) as running:
            dataset, project, query_project = connect_synthetic_project(ls, running, work_dir)
            if args.audit:
                task = first_audit_task(ls, running, project, query_project, dataset)
            else:
                task = first_query_task(ls, query_project)
            screenshot_task(ls, query_project, task, out, args.chromium, ticked=not args.multiclass)
        print(f"wrote {out} (query project {query_project}, task {task})")
    finally:
        ls.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
