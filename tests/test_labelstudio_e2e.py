"""The backend end to end against a real Label Studio: connect, predict, ask, answer, correct, export.

A synthetic street-scene set with noisy pseudo-labels goes into an image project; the
backend creates the query project, Label Studio's ``next`` serves the queries in the
backend's order, answers (the true class at the query pixel, as a careful annotator would
give) arrive by webhook, and after two rounds the exported masks must be clearly better than
the pseudo-labels they started from. LCM's model-confidence criterion is off, so that it
proposes plenty in round 1 and round 2 audits some of its proposals as query tasks.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from backend_harness import RunningBackend, eventually, serve_backend
from PIL import Image

from alc_backend.cli import main
from alc_backend.data.dataset import SegmentationDataset, read_label_png
from alc_backend.data.synthetic import make_synthetic
from alc_backend.engine.lcm import LCMConfig
from alc_backend.engine.metrics import confusion_matrix, mean_iou
from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.config import image_label_config, parse_image_config, query_question
from alc_backend.labelstudio.payloads import brush_results, labels_from_brush_results
from alc_backend.rounds.settings import RoundSettings
from alc_backend.service.rounds import localised_key

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

QUERIES_PER_ROUND = 24


@pytest.fixture(scope="module")
def running_backend(label_studio: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBackend]:
    settings = label_studio.backend_settings(
        tmp_path_factory.mktemp("workspace"),
        num_superpixels=30,
        cost_min_answers=5,
        round=RoundSettings(
            queries_per_round=QUERIES_PER_ROUND,
            image_size=64,
            epochs=6,
            device="cpu",
            lcm=LCMConfig(model_confidence=0.0),
        ),
    )
    with serve_backend(settings) as running:
        yield running


@pytest.fixture(scope="module")
def synthetic(label_studio: Any, tmp_path_factory: pytest.TempPathFactory) -> SegmentationDataset:
    """13 synthetic 64-px images with noisy pseudo-labels, placed under Label Studio's document root.

    The last one is imported without its pseudo-labels: the backend's model labels it.
    """
    root = tmp_path_factory.mktemp("synthetic") / "data"
    make_synthetic(root, 13, 5, size=64, val_fraction=0.0)
    dataset = SegmentationDataset.open(root)
    shutil.copytree(root, label_studio.document_root / "synthetic")
    return dataset


@dataclass
class Corrected:
    """The headline run's outcome, shared with the tests that inspect it."""

    images_project: int
    query_project: int
    names: dict[int, str]
    unlabelled_task: int
    """The task imported without pseudo-labels (left out of the mIoU comparison)."""
    served_ranks: list[list[int]]
    answers: dict[int, int]
    lead_times: dict[int, float]
    """Seconds each answer's annotation says the annotator took (Label Studio's ``lead_time``)."""


def truth_at_query(task: dict[str, Any], dataset: SegmentationDataset, names: dict[int, str]) -> int:
    """The true class at a query task's marked pixel, read from its key point as an annotator sees it."""
    (prediction,) = task["predictions"]
    point = next(r for r in prediction["result"] if r["type"] == "keypointlabels")
    width, height = point["original_width"], point["original_height"]
    row = int(point["value"]["y"] / 100 * height)
    col = int(point["value"]["x"] / 100 * width)
    return int(dataset.mask(names[task["data"]["image_task"]])[row, col])


def choice(name: str) -> list[dict[str, Any]]:
    return [{"from_name": "answer", "to_name": "image", "type": "choices", "value": {"choices": [name]}}]


@pytest.fixture(scope="module")
def corrected(
    label_studio: Any, client: LabelStudioClient, running_backend: RunningBackend, synthetic: SegmentationDataset
) -> Corrected:
    """Connect a project, answer two rounds of queries through Label Studio's ``next``."""
    project = client.create_project("street scenes", image_label_config(synthetic.classes))
    label_studio.add_local_storage(project["id"], label_studio.document_root / "synthetic")
    data = [
        {
            "image": f"/data/local-files/?d=synthetic/images/{name}.png",
            "pseudo_mask": f"/data/local-files/?d=synthetic/pseudo/{name}.png",
            "name": name,
        }
        for name in synthetic.train_names[:-1]
    ]
    data.append({"image": f"/data/local-files/?d=synthetic/images/{synthetic.train_names[-1]}.png"})
    task_ids = client.create_tasks(project["id"], data)
    names = dict(zip(task_ids, synthetic.train_names, strict=True))
    assert main(["init", "--images-project", str(project["id"]), "--backend", running_backend.url]) == 0
    query_project = running_backend.backend.workspace(project["id"]).state().query_project
    assert query_project is not None
    running_backend.wait_for_round(project["id"], 1)
    served: list[list[int]] = []
    answers: dict[int, int] = {}
    lead_times: dict[int, float] = {}
    for round_index in (1, 2):
        ranks = []
        while (task := client.next_task(query_project)) is not None:
            assert task["data"]["round"] == round_index
            ranks.append(task["data"]["rank"])
            full = client.get_task(task["id"])
            answer = truth_at_query(full, synthetic, names)
            answers[task["id"]] = answer
            lead_times[task["id"]] = 4.0 + 1.5 * (len(lead_times) % 7)
            client.create_annotation(task["id"], choice(synthetic.classes[answer]), lead_time=lead_times[task["id"]])
            if len(ranks) == QUERIES_PER_ROUND:
                break
        served.append(ranks)
        running_backend.wait_for_round(project["id"], round_index + 1)
    return Corrected(project["id"], query_project, names, task_ids[-1], served, answers, lead_times)


def decode_prediction(client: LabelStudioClient, task: int, version: str, config_xml: str) -> np.ndarray:
    (prediction,) = [p for p in client.list_predictions(task) if p["model_version"] == version]
    results = prediction["result"]
    height, width = results[0]["original_height"], results[0]["original_width"]
    return labels_from_brush_results(results, parse_image_config(config_xml), height, width)


def test_label_studio_next_serves_the_queries_in_the_backends_order(corrected: Corrected) -> None:
    assert corrected.served_ranks == [list(range(QUERIES_PER_ROUND))] * 2


def test_image_predictions_start_as_the_pseudo_labels_and_take_in_every_answer(
    corrected: Corrected, client: LabelStudioClient, running_backend: RunningBackend, synthetic: SegmentationDataset
) -> None:
    config_xml = client.get_project(corrected.images_project)["label_config"]
    for task, name in corrected.names.items():
        initial = decode_prediction(client, task, "alc-r0", config_xml)
        assert initial.shape == (64, 64)
        if task == corrected.unlabelled_task:
            assert (initial != 255).all(), "the round-0 model labelled the image that came without pseudo-labels"
        else:
            assert np.array_equal(initial, synthetic.pseudo(name))
    assert client.get_project(corrected.images_project)["model_version"] == "alc-r2"
    workspace = running_backend.backend.workspace(corrected.images_project)
    queries = workspace.queries()
    checked = 0
    for query_task, answer in corrected.answers.items():
        query = queries[query_task]
        after = decode_prediction(client, query.image_task, f"alc-r{query.round}", config_xml)
        region = workspace.superpixels(query.image_task) == query.superpixel
        assert (after[region] == answer).all(), f"query {query_task}'s answer did not reach its image"
        checked += 1
    assert checked == 2 * QUERIES_PER_ROUND


def test_the_exported_masks_beat_the_pseudo_labels_by_a_clear_margin(
    corrected: Corrected, client: LabelStudioClient, label_studio: Any, synthetic: SegmentationDataset, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    command = ["export", "--project", str(corrected.images_project), "--out", str(out)]
    assert main([*command, "--url", client.url, "--api-key", label_studio.token]) == 0
    sources = json.loads((out / "sources.json").read_text())
    assert sources["skipped"] == {}
    assert set(sources["sources"]) == set(synthetic.train_names)
    assert set(sources["sources"].values()) == {"prediction alc-r2"}
    assert (out / "classes.txt").read_text().split() == list(synthetic.classes)
    num_classes = synthetic.num_classes
    exported = sum(
        confusion_matrix(read_label_png(out / "masks" / f"{n}.png"), synthetic.mask(n), num_classes)
        for n in synthetic.train_names[:-1]
    )
    pseudo = sum(
        confusion_matrix(synthetic.pseudo(n), synthetic.mask(n), num_classes) for n in synthetic.train_names[:-1]
    )
    gain = mean_iou(exported) - mean_iou(pseudo)
    print(f"pseudo-label mIoU {mean_iou(pseudo):.1f}, exported mIoU {mean_iou(exported):.1f}, gain {gain:+.1f}")
    assert gain >= 3.0


def test_round_two_audits_lcm_proposals_as_query_tasks_and_health_shows_what_they_found(
    corrected: Corrected,
    client: LabelStudioClient,
    running_backend: RunningBackend,
    synthetic: SegmentationDataset,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workspace = running_backend.backend.workspace(corrected.images_project)
    audits = [query for query in workspace.queries().values() if query.kind == "audit" and query.round == 2]
    assert len(audits) == round(0.2 * QUERIES_PER_ROUND)
    assert not any(query.kind == "audit" for query in workspace.queries().values() if query.round == 1)
    for query in audits:
        data = client.get_task(query.task)["data"]
        name = synthetic.classes[query.proposed]
        assert data["kind"] == "audit" and query.corrector == "lcm" and query.audited_round == 1
        assert data["question"] == query_question("audit", name)
        assert data["question"].startswith(f"This region was changed to {name}: is {name} right?")
    confirmed = sum(corrected.answers[query.task] == query.proposed for query in audits)
    health = requests.get(f"{running_backend.url}/health", timeout=10).json()
    lcm = health["projects"][str(corrected.images_project)]["correctors"]["lcm"]
    assert (lcm["audited"], lcm["confirmed"]) == (len(audits), confirmed)
    assert lcm["precision"] == pytest.approx(confirmed / len(audits))
    assert main(["status", "--backend", running_backend.url]) == 0
    printed = capsys.readouterr().out
    assert f"{len(audits)} audited, {confirmed} confirmed" in printed


def test_health_and_status_show_the_measured_seconds_per_query_by_predicted_classes(
    corrected: Corrected, running_backend: RunningBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each answer's lead time, read back from Label Studio, counts in its query's class-count bucket;
    a bucket with 5 or more answers (the fixture's ALC_COST_MIN_ANSWERS) uses their median."""
    queries = running_backend.backend.workspace(corrected.images_project).queries()
    buckets: dict[str, list[float]] = {"1": [], "2": [], "3+": []}
    for task, seconds in corrected.lead_times.items():
        buckets[["1", "2", "3+"][min(queries[task].predicted_classes, 3) - 1]].append(seconds)
    health = requests.get(f"{running_backend.url}/health", timeout=10).json()
    measured = health["projects"][str(corrected.images_project)]["answer_seconds"]["correction"]
    table = {"1": 6.38, "2": 8.025, "3+": 8.605}
    for label, times in buckets.items():
        entry = measured[label]
        assert entry["answers"] == len(times)
        assert entry["median_s"] == (pytest.approx(float(np.median(times))) if times else None)
        expected = float(np.median(times)) if len(times) >= 5 else table[label]
        assert entry["seconds"] == pytest.approx(expected)
        assert entry["source"] == ("measured" if len(times) >= 5 else "model")
    assert sum(len(times) for times in buckets.values()) == len(corrected.answers)
    assert main(["status", "--backend", running_backend.url]) == 0
    assert "seconds per correction query: 1 class(es)" in capsys.readouterr().out


def test_health_reports_the_answers_and_audits_and_report_draws_them(
    corrected: Corrected, running_backend: RunningBackend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = corrected.images_project
    health = requests.get(f"{running_backend.url}/health", timeout=10).json()
    report = health["projects"][str(project)]["report"]
    counts = [count for _, count in report["answers_over_time"]]
    assert counts[-1] == len(corrected.answers) and counts == sorted(counts)
    queries = running_backend.backend.workspace(project).queries()
    audits = [query for query in queries.values() if query.kind == "audit" and query.task in corrected.answers]
    assert audits and {query.audited_round for query in audits} == {1}  # round 3's audits are not answered
    lcm = report["corrections_by_round"]["1"]["lcm"]
    assert lcm["audited"] == len(audits)
    assert lcm["rejected"] == sum(corrected.answers[query.task] != query.proposed for query in audits)
    changed = [
        (queries[task].label_before, answer)
        for task, answer in corrected.answers.items()
        if queries[task].label_before not in (answer, 255)
    ]
    people = np.array(report["label_changes"]["people"])
    assert people.sum() == len(changed)
    before, after = changed[0]
    assert people[before, after] == changed.count((before, after))
    out = tmp_path / "report.png"
    assert main(["report", "--project", str(project), "--out", str(out), "--backend", running_backend.url]) == 0
    assert read_png_size(out) == (1600, 1000)
    assert main(["report", "--project", "999", "--out", str(out), "--backend", running_backend.url]) == 2
    assert f"does not serve image project 999 (it serves: {project})" in capsys.readouterr().err


def read_png_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a PNG file, from its header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def open_query_task(client: LabelStudioClient, corrected: Corrected) -> dict[str, Any]:
    task = client.next_task(corrected.query_project)
    assert task is not None and task["data"]["round"] == 3
    return client.get_task(task["id"])


def test_an_unknown_label_is_reported_and_the_corrected_answer_then_applies(
    corrected: Corrected, client: LabelStudioClient, running_backend: RunningBackend, synthetic: SegmentationDataset
) -> None:
    task = open_query_task(client, corrected)
    annotation = client.create_annotation(task["id"], choice("zebra"))
    expected = f"annotation {annotation['id']} of task {task['id']}: unknown label 'zebra'"

    def reported() -> bool:
        health = requests.get(f"{running_backend.url}/health", timeout=10).json()
        return any(e.startswith(expected) for e in health["projects"][str(corrected.images_project)]["errors"])

    eventually(reported, "the unknown label to show in /health")
    workspace = running_backend.backend.workspace(corrected.images_project)
    assert annotation["id"] not in workspace.answers(), "an unreadable answer must not be applied"

    answer = truth_at_query(task, synthetic, corrected.names)
    client.update_annotation(annotation["id"], choice(synthetic.classes[answer]))
    eventually(lambda: annotation["id"] in workspace.answers(), "the corrected answer to arrive")
    running_backend.wait()
    query = workspace.queries()[task["id"]]
    region = workspace.superpixels(query.image_task) == query.superpixel
    assert workspace.answers()[annotation["id"]].answer == answer
    assert (workspace.labels(query.image_task)[region] == answer).all()


def test_a_second_tick_flags_a_mixed_region_whose_pixels_are_localised(
    corrected: Corrected, client: LabelStudioClient, running_backend: RunningBackend, synthetic: SegmentationDataset
) -> None:
    """A correction query arrives with its class ticked; ticking a second one makes it a mixed answer."""
    task = open_query_task(client, corrected)
    (prediction,) = task["predictions"]
    (shown,) = [result for result in prediction["result"] if result["type"] == "choices"]
    workspace = running_backend.backend.workspace(corrected.images_project)
    query = workspace.queries()[task["id"]]
    assert shown["value"]["choices"] == [synthetic.classes[query.proposed]], "the current class arrives ticked"
    region = workspace.superpixels(query.image_task) == query.superpixel
    other = (query.proposed + 1) % synthetic.num_classes
    names = [synthetic.classes[query.proposed], synthetic.classes[other]]
    annotation = client.create_annotation(
        task["id"], [{"from_name": "answer", "to_name": "image", "type": "choices", "value": {"choices": names}}]
    )
    classes = tuple(sorted((query.proposed, other)))
    eventually(lambda: annotation["id"] in workspace.answers(), "the mixed answer to arrive")
    running_backend.wait()
    assert workspace.answers()[annotation["id"]].classes == classes
    localised = workspace.localised(task["id"], localised_key(classes))
    assert localised is not None, "the mixed region was localised"
    labels = workspace.labels(query.image_task)
    assert set(np.unique(labels[region]).tolist()) <= set(classes)
    np.testing.assert_array_equal(labels[region], localised[region])


def test_a_deleted_answer_is_taken_back_and_a_replayed_webhook_changes_nothing(
    corrected: Corrected, client: LabelStudioClient, running_backend: RunningBackend, synthetic: SegmentationDataset
) -> None:
    task = open_query_task(client, corrected)
    workspace = running_backend.backend.workspace(corrected.images_project)
    query = workspace.queries()[task["id"]]
    region = workspace.superpixels(query.image_task) == query.superpixel
    before = workspace.labels(query.image_task)
    other = (int(before[query.row, query.col]) + 1) % synthetic.num_classes
    annotation = client.create_annotation(task["id"], choice(synthetic.classes[other]))
    eventually(lambda: annotation["id"] in workspace.answers(), "the answer to arrive")
    running_backend.wait()
    assert (workspace.labels(query.image_task)[region] == other).all()

    replay = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": corrected.query_project},
        "task": {"id": task["id"]},
        "annotation": {**annotation, "task": task["id"]},
    }
    answers = workspace.answers()
    response = requests.post(f"{running_backend.url}/webhook", json=replay, timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "queued", "job": "reconcile"}
    running_backend.wait()
    assert workspace.answers() == answers

    client.delete_annotation(annotation["id"])
    eventually(lambda: workspace.answers()[annotation["id"]].deleted, "the deletion to arrive")
    running_backend.wait()
    assert np.array_equal(workspace.labels(query.image_task), before)
    assert workspace.answers()[annotation["id"]].deleted


def test_forged_webhooks_change_nothing(
    corrected: Corrected, client: LabelStudioClient, running_backend: RunningBackend, synthetic: SegmentationDataset
) -> None:
    """Events that Label Studio did not send: each is checked against Label Studio, which knows better."""
    task = open_query_task(client, corrected)
    workspace = running_backend.backend.workspace(corrected.images_project)
    query = workspace.queries()[task["id"]]
    truth = truth_at_query(task, synthetic, corrected.names)
    annotation = client.create_annotation(task["id"], choice(synthetic.classes[truth]))
    eventually(lambda: annotation["id"] in workspace.answers(), "the true answer to arrive")
    running_backend.wait()
    answers, labels = workspace.answers(), workspace.labels(query.image_task)
    wrong = synthetic.classes[(truth + 1) % synthetic.num_classes]

    def forge(action: str, **fields: Any) -> None:
        body = {"action": action, "project": {"id": corrected.query_project}, **fields}
        response = requests.post(f"{running_backend.url}/webhook", json=body, timeout=10)
        assert response.status_code == 200 and response.json() == {"status": "queued", "job": "reconcile"}
        running_backend.wait()

    made_up = {"id": annotation["id"] + 10_000, "task": task["id"], "result": choice(wrong), "updated_at": "2099-01-01"}
    forge("ANNOTATION_CREATED", annotation=made_up)
    relabelled = {**annotation, "task": task["id"], "result": choice(wrong), "updated_at": "2099-01-01T00:00:00Z"}
    forge("ANNOTATION_UPDATED", annotation=relabelled)
    forge("ANNOTATIONS_DELETED", annotations=[{"id": annotation["id"]}, {"id": annotation["id"] + 20_000}])
    assert workspace.answers() == answers
    assert np.array_equal(workspace.labels(query.image_task), labels)

    client.update_annotation(annotation["id"], choice(wrong))
    eventually(
        lambda: workspace.answers()[annotation["id"]].answer == (truth + 1) % synthetic.num_classes,
        "a true update after the forged deletion to be taken",
    )


def test_a_mask_drawn_on_an_image_task_overrides_the_backend_and_is_exported(
    corrected: Corrected,
    client: LabelStudioClient,
    running_backend: RunningBackend,
    synthetic: SegmentationDataset,
    label_studio: Any,
    tmp_path: Path,
) -> None:
    task, name = next(iter(corrected.names.items()))
    config = parse_image_config(client.get_project(corrected.images_project)["label_config"])
    truth = synthetic.mask(name)
    annotation = client.create_annotation(task, brush_results(truth, config))
    workspace = running_backend.backend.workspace(corrected.images_project)
    eventually(lambda: workspace.manual(task) is not None, "the drawn mask to reach the backend")
    running_backend.wait()
    known = truth != 255
    assert np.array_equal(workspace.labels(task)[known], truth[known])

    out = tmp_path / "export"
    command = ["export", "--project", str(corrected.images_project), "--out", str(out)]
    assert main([*command, "--url", client.url, "--api-key", label_studio.token]) == 0
    assert json.loads((out / "sources.json").read_text())["sources"][name] == "annotation"
    assert np.array_equal(read_label_png(out / "masks" / f"{name}.png")[known], truth[known])

    client.delete_annotation(annotation["id"])
    eventually(lambda: workspace.manual(task) is None, "the deletion to reach the backend")


def test_start_training_ends_the_round_before_every_query_is_answered(
    corrected: Corrected, client: LabelStudioClient, running_backend: RunningBackend
) -> None:
    workspace = running_backend.backend.workspace(corrected.images_project)
    assert workspace.state().round == 3
    round_three = [task for task in client.list_tasks(corrected.query_project) if task["data"]["round"] == 3]
    answered = sorted(task["id"] for task in round_three if task["annotations"])
    open_queries = sorted(task["id"] for task in round_three if not task["annotations"])
    assert open_queries, "round 3 still has unanswered queries"
    (ml_backend,) = client.list_ml_backends(corrected.query_project)
    client.start_training(ml_backend["id"])
    running_backend.wait_for_round(corrected.images_project, 4)
    # the unanswered queries of round 3 left the queue and the backend's records; the answered stay
    left = sorted(task["id"] for task in client.list_tasks(corrected.query_project) if task["data"]["round"] == 3)
    assert left == answered
    assert sorted(task for task, query in workspace.queries().items() if query.round == 3) == answered
    assert client.get_project(corrected.images_project)["model_version"] == "alc-r3"
    assert client.get_project(corrected.query_project)["model_version"] == "alc-q4"


def test_label_studios_own_png_export_of_the_predictions_matches_alc_backend_export(
    corrected: Corrected, client: LabelStudioClient, label_studio: Any, tmp_path: Path
) -> None:
    """Label Studio's *Create Annotations From Predictions*, then its Brush → PNG export: one binary
    PNG per class region, named by task and annotation; put together they are the masks that
    ``alc-backend export`` writes as one PNG per image, named after the image.

    Runs last: the annotations it creates become the image tasks' drawn masks.
    """
    project = corrected.images_project
    out = tmp_path / "ours"
    command = ["export", "--project", str(project), "--out", str(out), "--url", client.url]
    assert main([*command, "--api-key", label_studio.token]) == 0
    version = client.get_project(project)["model_version"]
    response = requests.post(
        f"{client.url}/api/dm/actions",
        params={"id": "predictions_to_annotations", "project": project},
        json={"selectedItems": {"all": True, "excluded": []}, "model_version": version},
        headers=client.authorization(),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert all(len(client.list_annotations(task)) == 1 for task in corrected.names)

    classes = parse_image_config(client.get_project(project)["label_config"]).class_names
    masks: dict[int, np.ndarray] = {}
    with zipfile.ZipFile(io.BytesIO(client.export(project, "BRUSH_TO_PNG"))) as archive:
        names = [name for name in archive.namelist() if name.endswith(".png")]
        assert names, f"the export holds no PNG: {archive.namelist()}"
        for name in names:
            found = re.fullmatch(r"(?:.*/)?task-(\d+)-annotation-\d+-by-.*-tag-(.+)-0\.png", name)
            assert found is not None, name
            task, label = int(found.group(1)), found.group(2)
            with Image.open(io.BytesIO(archive.read(name))) as png:
                layer = np.asarray(png.convert("L")) > 128
            mask = masks.setdefault(task, np.full(layer.shape, 255, np.uint8))
            assert not (layer & (mask != 255)).any(), f"task {task}: two classes claim one pixel"
            mask[layer] = classes.index(label)
    assert sorted(masks) == sorted(corrected.names)
    for task, name in corrected.names.items():
        assert np.array_equal(masks[task], read_label_png(out / "masks" / f"{name}.png")), name
