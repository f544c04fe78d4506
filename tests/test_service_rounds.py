"""A round over a workspace without Label Studio: scoring, then LCM and PLAR after the answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alc_backend.data.synthetic import make_synthetic
from alc_backend.engine.corrections import apply_corrections
from alc_backend.engine.lcm import LCMConfig
from alc_backend.engine.plar import PLARConfig
from alc_backend.service.rounds import auto_correct, choose_queries, train_round_model
from alc_backend.service.settings import BackendSettings
from alc_backend.service.workspace import ProjectState, QueryRecord, TaskRecord, Workspace

pytestmark = pytest.mark.slow


def test_a_round_asks_the_top_superpixels_and_auto_correction_leaves_answers_alone(tmp_path: Path) -> None:
    """The correctors' safety checks are relaxed so that both act on this small set."""
    dataset = make_synthetic(tmp_path / "data", 8, 2, size=48, val_fraction=0.0, progress=False)
    settings = BackendSettings(
        model_dir=tmp_path / "ws",
        method="abc+lcm+plar",
        queries_per_round=40,
        image_size=48,
        epochs=3,
        device="cpu",
        lcm=LCMConfig(tau=0.5, min_precision=0.0, require_model_agreement=False),
        plar=PLARConfig(min_precision=0.0),
    )
    workspace = Workspace(settings.model_dir, 1)
    workspace.save_state(ProjectState(1, list(dataset.classes), "<View/>", query_project=2, prepared=True))
    tasks = list(range(100, 100 + len(dataset.train_names)))
    records = {}
    for task, name in zip(tasks, dataset.train_names, strict=True):
        superpixels = dataset.superpixels(name)
        assert superpixels is not None
        workspace.save_image(task, dataset.image(name))
        workspace.save_superpixels(task, superpixels)
        workspace.save_pseudo(task, dataset.pseudo(name))
        workspace.save_labels(task, dataset.pseudo(name))
        records[task] = TaskRecord(task, name, f"{name}.png", 48, 48, "pseudo_mask")
    workspace.save_tasks(records)
    model = train_round_model(workspace, tasks, dataset.num_classes, settings, 0)
    assert workspace.checkpoint_path.is_file()

    candidates, image_scores = choose_queries(workspace, model, tasks, {}, dataset.num_classes, settings, 1)
    assert len(candidates) == 40
    assert [c.score for c in candidates] == sorted((c.score for c in candidates), reverse=True)
    assert len({(c.image_task, c.superpixel) for c in candidates}) == 40
    assert set(image_scores) == set(tasks) and all(0.0 <= s <= 1.0 for s in image_scores.values())
    for c in candidates:
        assert c.proposed == workspace.labels(c.image_task)[c.row, c.col]
        assert workspace.superpixels(c.image_task)[c.row, c.col] == c.superpixel

    asked: dict[int, set[int]] = {}
    answers = []
    for rank, c in enumerate(candidates):
        truth = int(dataset.mask(records[c.image_task].name)[c.row, c.col])
        labels = workspace.labels(c.image_task)
        labels[workspace.superpixels(c.image_task) == c.superpixel] = truth
        workspace.save_labels(c.image_task, labels)
        asked.setdefault(c.image_task, set()).add(c.superpixel)
        query = QueryRecord(1000 + rank, c.image_task, c.superpixel, c.row, c.col, c.proposed, c.label_before, 1, rank)
        answers.append((query, truth))
    before = {task: workspace.labels(task) for task in tasks}

    corrections = auto_correct(workspace, model, tasks, answers, asked, dataset.num_classes, settings, 1)

    for task in tasks:
        mine = [record for record in corrections if record.image == str(task)]
        assert np.array_equal(workspace.labels(task), apply_corrections(before[task], mine))
        assert not {record.superpixel for record in mine if record.corrector == "lcm"} & asked.get(task, set())
    for query, truth in answers:
        region = workspace.superpixels(query.image_task) == query.superpixel
        assert (workspace.labels(query.image_task)[region] == truth).all(), "an answered superpixel changed"
    assert {record.corrector for record in corrections} == {"lcm", "plar"}
