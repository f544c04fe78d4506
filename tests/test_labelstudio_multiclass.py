"""Multi-class queries end to end against a real Label Studio.

The backend asks ``multiclass:abc`` queries on SLIC superpixels, which straddle the synthetic
objects. Each query task arrives with nothing ticked and the multi-class question; the
annotator ticks every true class in the region it shows. Regions ticked with one class take
it; regions ticked with several are localised, each pixel taking one of the ticked classes.
One query is submitted with nothing ticked: it counts as skipped, and when its answer arrives
after the round has ended it is applied then.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import requests
from backend_harness import RunningBackend, eventually, import_synthetic, serve_backend

from alc_backend.cli import main
from alc_backend.data.dataset import SegmentationDataset
from alc_backend.data.synthetic import make_synthetic
from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.config import MULTICLASS_QUESTION
from alc_backend.labelstudio.payloads import outline_width, region_outline
from alc_backend.labelstudio.rle import rle_to_mask
from alc_backend.rounds.settings import RoundSettings
from alc_backend.service.rounds import localised_key
from alc_backend.service.workspace import Workspace

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

QUERIES_PER_ROUND = 10


@pytest.fixture(scope="module")
def running_backend(label_studio: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBackend]:
    settings = label_studio.backend_settings(
        tmp_path_factory.mktemp("workspace"),
        num_superpixels=12,
        round=RoundSettings(
            method="multiclass:abc", queries_per_round=QUERIES_PER_ROUND, image_size=64, epochs=4, device="cpu"
        ),
    )
    with serve_backend(settings) as running:
        yield running


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SegmentationDataset:
    root = tmp_path_factory.mktemp("multiclass") / "data"
    make_synthetic(root, 6, 7, size=64, val_fraction=0.0)
    return SegmentationDataset.open(root)


def query_region(task: dict[str, Any], workspace: Workspace) -> np.ndarray:
    """The ``(H, W)`` bool region a query task asks about, as the backend recorded it; the task's
    prediction shows its outline, which the annotator reads as the region inside it."""
    (prediction,) = task["predictions"]
    (brush,) = [result for result in prediction["result"] if result["type"] == "brushlabels"]
    height, width = brush["original_height"], brush["original_width"]
    region = np.zeros(height * width, bool)
    for start, length in workspace.queries()[task["id"]].region or []:
        region[start : start + length] = True
    region = region.reshape(height, width)
    shown = rle_to_mask(brush["value"]["rle"], height, width)
    assert (shown == region_outline(region, outline_width(region.shape))).all()
    return region


def ticks(names: list[str]) -> list[dict[str, Any]]:
    return [{"from_name": "answer", "to_name": "image", "type": "choices", "value": {"choices": names}}]


@dataclass
class Answered:
    images_project: int
    query_project: int
    names: dict[int, str]
    given: dict[int, tuple[int, ...]]
    """Query task -> the classes ticked (ascending)."""
    tasks: dict[int, dict[str, Any]]
    """Query task -> the task as Label Studio served it, with its predictions."""
    skipped: tuple[int, int]
    """(query task, annotation) submitted with nothing ticked."""


@pytest.fixture(scope="module")
def answered(
    label_studio: Any, client: LabelStudioClient, running_backend: RunningBackend, synthetic: SegmentationDataset
) -> Answered:
    """Connect a project and answer round 1's multi-class queries: the true classes of each region,
    except the last query, submitted with nothing ticked."""
    project, names = import_synthetic(client, label_studio, synthetic, "multiclass", "multi-class queries")
    assert main(["init", "--images-project", str(project), "--backend", running_backend.url]) == 0
    query_project = running_backend.backend.workspace(project).state().query_project
    assert query_project is not None
    running_backend.wait_for_round(project, 1)
    workspace = running_backend.backend.workspace(project)
    given: dict[int, tuple[int, ...]] = {}
    tasks: dict[int, dict[str, Any]] = {}
    skipped = (0, 0)
    for served in range(QUERIES_PER_ROUND):
        next_task = client.next_task(query_project)
        assert next_task is not None
        task = client.get_task(next_task["id"])
        tasks[task["id"]] = task
        if served == QUERIES_PER_ROUND - 1:
            skipped = (task["id"], client.create_annotation(task["id"], ticks([]), lead_time=3.0)["id"])
            continue
        truth = synthetic.mask(names[task["data"]["image_task"]])[query_region(task, workspace)]
        given[task["id"]] = tuple(int(value) for value in np.unique(truth[truth != 255]))
        chosen = [synthetic.classes[value] for value in given[task["id"]]]
        client.create_annotation(task["id"], ticks(chosen), lead_time=7.0 + len(chosen))
    running_backend.wait_for_round(project, 2)
    return Answered(project, query_project, names, given, tasks, skipped)


def test_a_multiclass_query_arrives_with_nothing_ticked_and_asks_for_every_class(answered: Answered) -> None:
    for task in answered.tasks.values():
        assert task["data"]["kind"] == "multiclass"
        assert task["data"]["question"] == MULTICLASS_QUESTION
        (prediction,) = task["predictions"]
        assert sorted(result["type"] for result in prediction["result"]) == ["brushlabels", "keypointlabels"]
    assert any(len(classes) > 1 for classes in answered.given.values()), "some SLIC regions straddle objects"
    assert any(len(classes) == 1 for classes in answered.given.values())


def test_every_answer_labels_its_region_with_the_classes_ticked(
    answered: Answered, running_backend: RunningBackend
) -> None:
    """One class fills the region; several are localised, every pixel taking one of them."""
    workspace = running_backend.backend.workspace(answered.images_project)
    answers = {record.query_task: record for record in workspace.answers().values()}
    queries = workspace.queries()
    for query_task, classes in answered.given.items():
        assert answers[query_task].classes == classes
        query = queries[query_task]
        labels = workspace.labels(query.image_task)
        region = query_region(answered.tasks[query_task], workspace)
        if len(classes) == 1:
            assert (labels[region] == classes[0]).all()
            continue
        localised = workspace.localised(query_task, localised_key(classes))
        assert localised is not None, f"query {query_task}'s mixed answer was localised"
        assert (localised[~region] == 255).all()
        assert set(np.unique(labels[region]).tolist()) <= set(classes)
        np.testing.assert_array_equal(labels[region], localised[region])


def test_health_measures_multiclass_seconds_apart_from_correction_seconds(
    answered: Answered, running_backend: RunningBackend
) -> None:
    health = requests.get(f"{running_backend.url}/health", timeout=10).json()
    seconds = health["projects"][str(answered.images_project)]["answer_seconds"]
    assert sum(entry["answers"] for entry in seconds["multiclass"].values()) == len(answered.given)
    assert sum(entry["answers"] for entry in seconds["correction"].values()) == 0


def test_a_query_with_nothing_ticked_is_skipped_and_its_late_answer_applies_in_the_next_round(
    answered: Answered, client: LabelStudioClient, running_backend: RunningBackend, synthetic: SegmentationDataset
) -> None:
    workspace = running_backend.backend.workspace(answered.images_project)
    query_task, annotation = answered.skipped
    assert workspace.answers()[annotation].classes == (), "nothing ticked counts as skipped"
    assert workspace.state().round == 2, "the skipped query did not hold the round open"
    task = answered.tasks[query_task]
    region = query_region(task, workspace)
    truth = synthetic.mask(answered.names[task["data"]["image_task"]])[region]
    classes = tuple(int(value) for value in np.unique(truth[truth != 255]))
    client.update_annotation(annotation, ticks([synthetic.classes[value] for value in classes]))
    eventually(lambda: workspace.answers()[annotation].classes == classes, "the late answer to arrive")
    running_backend.wait()
    labels = workspace.labels(task["data"]["image_task"])
    assert set(np.unique(labels[region]).tolist()) <= set(classes)
    if len(classes) == 1:
        assert (labels[region] == classes[0]).all()
    else:
        assert workspace.localised(query_task, localised_key(classes)) is not None
