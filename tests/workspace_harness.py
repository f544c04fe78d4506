"""A prepared workspace without Label Studio: a data set's images as image tasks, answers as webhooks leave them."""

from __future__ import annotations

from pathlib import Path

from alc_backend.data.dataset import SegmentationDataset
from alc_backend.service.answers import record_event
from alc_backend.service.rounds import compose_tasks
from alc_backend.service.workspace import AnswerRecord, ProjectState, QueryRecord, TaskRecord, Workspace

FIRST_TASK = 100


def workspace_of(dataset: SegmentationDataset, model_dir: Path) -> tuple[Workspace, list[int]]:
    """A prepared workspace holding the data set's training images as tasks 100, 101, ... in name order."""
    workspace = Workspace(model_dir, 1)
    workspace.save_state(ProjectState(1, list(dataset.classes), "<View/>", query_project=2, prepared=True))
    tasks = list(range(FIRST_TASK, FIRST_TASK + len(dataset.train_names)))
    records = {}
    for task, name in zip(tasks, dataset.train_names, strict=True):
        superpixels = dataset.superpixels(name)
        assert superpixels is not None
        workspace.save_image(task, dataset.image(name))
        workspace.save_superpixels(task, superpixels)
        workspace.save_pseudo(task, dataset.pseudo(name))
        records[task] = TaskRecord(task, name, f"{name}.png", *superpixels.shape, "pseudo_mask")
    workspace.save_tasks(records)
    compose_tasks(workspace, tasks)
    return workspace, tasks


def answer_in_workspace(workspace: Workspace, records: dict[int, QueryRecord], answers: dict[int, int]) -> None:
    """Record ``answers`` (query task -> class) as Label Studio's webhooks would, and recompose the labels."""
    stored = workspace.answers()
    for number, (task, answer) in enumerate(answers.items(), start=len(stored) + 1):
        record_event(stored, AnswerRecord(number, task, answer, f"2026-11-30T11:{number // 60:02d}:{number % 60:02d}Z"))
    workspace.save_answers(stored)
    compose_tasks(workspace, {records[task].image_task for task in answers})
