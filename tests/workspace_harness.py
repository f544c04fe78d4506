"""A prepared workspace without Label Studio: a data set's images as image tasks, answers as webhooks leave them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from alc_backend.data.dataset import SegmentationDataset
from alc_backend.rounds.settings import RoundSettings
from alc_backend.service.answers import record_event
from alc_backend.service.rounds import compose_tasks, localise_answers
from alc_backend.service.workspace import AnswerRecord, ProjectState, QueryRecord, TaskRecord, Workspace

FIRST_TASK = 100


def workspace_of(
    dataset: SegmentationDataset, model_dir: Path, superpixels_of: Callable[[str], np.ndarray] | None = None
) -> tuple[Workspace, list[int]]:
    """A prepared workspace holding the data set's training images as tasks 100, 101, ... in name order,
    with the data set's own superpixels or those ``superpixels_of`` gives each image name."""
    workspace = Workspace(model_dir, 1)
    workspace.save_state(ProjectState(1, list(dataset.classes), "<View/>", query_project=2, prepared=True))
    tasks = list(range(FIRST_TASK, FIRST_TASK + len(dataset.train_names)))
    records = {}
    for task, name in zip(tasks, dataset.train_names, strict=True):
        superpixels = dataset.superpixels(name) if superpixels_of is None else superpixels_of(name)
        assert superpixels is not None
        workspace.save_image(task, dataset.image(name))
        workspace.save_superpixels(task, superpixels)
        workspace.save_pseudo(task, dataset.pseudo(name))
        records[task] = TaskRecord(task, name, f"{name}.png", *superpixels.shape, "pseudo_mask")
    workspace.save_tasks(records)
    compose_tasks(workspace, tasks)
    return workspace, tasks


def answer_in_workspace(
    workspace: Workspace,
    records: dict[int, QueryRecord],
    answers: dict[int, tuple[int, ...]],
    settings: RoundSettings | None = None,
) -> None:
    """Record ``answers`` (query task -> classes ticked) as the backend takes in Label Studio's, and
    recompose the labels; with ``settings``, mixed answers are localised first, as the backend does."""
    stored = workspace.answers()
    for number, (task, classes) in enumerate(answers.items(), start=len(stored) + 1):
        record_event(
            stored, AnswerRecord(number, task, classes, f"2026-11-30T11:{number // 60:02d}:{number % 60:02d}Z")
        )
    workspace.save_answers(stored)
    tasks = {records[task].image_task for task in answers}
    if settings is not None:
        localise_answers(workspace, tasks, settings)
    compose_tasks(workspace, tasks)
