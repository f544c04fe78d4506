"""The backend's round steps over a workspace without Label Studio, and the two images of a round agreeing.

- A round over a workspace: queries from the scored pool, answers, then the correctors of the
  one round core; no automatic correction ever changes a pixel a human answered.
- The round core's two :class:`~alc_backend.rounds.images.RoundImages` (the backend's
  workspace and the simulation's store) hold the same labels after the same answers,
  corrections and rejections.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from workspace_harness import answer_in_workspace, workspace_of

from alc_backend.data.synthetic import make_synthetic
from alc_backend.engine.corrections import apply_corrections, relabel_superpixels
from alc_backend.engine.lcm import LCMConfig
from alc_backend.engine.plar import PLARConfig
from alc_backend.rounds.images import Query, flat_runs
from alc_backend.rounds.settings import AuditConfig, RoundSettings
from alc_backend.service.rounds import (
    WorkspaceImages,
    choose_round_queries,
    corrector_status,
    end_round,
    record_queries,
    round_model,
)
from alc_backend.service.workspace import QueryRecord
from alc_backend.simulation.state import LabelStore, SimulationImages, SuperpixelSource


@pytest.mark.slow
def test_a_round_over_a_workspace_asks_the_top_superpixels_and_correctors_leave_answers_alone(tmp_path: Path) -> None:
    """Correctors loosened, audits off: LCM and PLAR both write in round 1."""
    dataset = make_synthetic(tmp_path / "data", 8, 2, size=48, val_fraction=0.0, progress=False)
    settings = RoundSettings(
        method="abc+lcm+plar",
        queries_per_round=40,
        image_size=48,
        epochs=3,
        device="cpu",
        lcm=LCMConfig(tau=0.5, model_confidence=0.0),
        plar=PLARConfig(min_precision=0.0, protect_unverified=False),
        audit=AuditConfig(share=0.0),
    )
    workspace, tasks = workspace_of(dataset, tmp_path / "ws")
    model = round_model(workspace, tasks, 0, settings)
    assert model is not None and workspace.checkpoint_path.is_file() and workspace.state().model_round == 0

    choice = choose_round_queries(workspace, model, tasks, settings, 1)
    queries = choice.queries
    assert len(queries) == 40
    assert [q.score for q in queries] == sorted((q.score for q in queries), reverse=True)
    assert len({(q.image, q.superpixel) for q in queries}) == 40
    assert all(0.0 <= record.score <= 1.0 for record in workspace.tasks().values())
    for q in queries:
        labels = workspace.labels(int(q.image))
        assert q.proposed == labels[q.row, q.col]
        assert workspace.superpixels(int(q.image))[q.row, q.col] == q.superpixel

    records = {1000 + rank: QueryRecord.of(1000 + rank, q, 1, rank) for rank, q in enumerate(queries)}
    record_queries(workspace, records)
    before_answers = {task: workspace.labels(task) for task in tasks}
    names = {task: record.name for task, record in workspace.tasks().items()}
    answers = {task: int(dataset.mask(names[r.image_task])[r.row, r.col]) for task, r in records.items()}
    answer_in_workspace(workspace, records, {task: (answer,) for task, answer in answers.items()})
    for record in records.values():
        region = workspace.superpixels(record.image_task) == record.superpixel
        assert (workspace.before(record.image_task)[region] == before_answers[record.image_task][region]).all()
    answered_labels = {task: workspace.labels(task) for task in tasks}

    outcome = end_round(workspace, tasks, settings, 1)
    assert outcome is not None
    assert {record.corrector for record in outcome.written} == {"lcm", "plar"}
    for task in tasks:
        mine = [record for record in outcome.written if record.image == str(task)]
        assert np.array_equal(workspace.labels(task), apply_corrections(answered_labels[task], mine))
    for task, record in records.items():
        region = workspace.superpixels(record.image_task) == record.superpixel
        assert (workspace.labels(record.image_task)[region] == answers[task]).all(), "an answered superpixel changed"
    status = corrector_status(
        workspace.answers(), workspace.queries(), workspace.corrections(), workspace.round_notes(), settings.correctors
    )
    assert status["lcm"]["corrections"] == sum(r.corrector == "lcm" for r in outcome.written)
    assert status["plar"]["corrected_pixels"] == sum(r.pixels for r in outcome.written if r.corrector == "plar")
    assert status["lcm"]["audited"] == 0 and status["lcm"]["precision"] is None

    # ending the round again (a retried job) writes the same changes once, not twice
    again = end_round(workspace, tasks, settings, 1)
    assert again is not None and len(workspace.corrections()) == len(outcome.written) == len(again.written)


def test_both_images_of_a_round_hold_the_same_labels_after_answers_corrections_and_an_audit(tmp_path: Path) -> None:
    dataset = make_synthetic(tmp_path / "data", 3, 4, size=32, val_fraction=0.0, progress=False)
    workspace, tasks = workspace_of(dataset, tmp_path / "ws")
    LabelStore.from_pseudo_labels(tmp_path / "sim" / "labels", dataset, dataset.train_names)
    source = SuperpixelSource(dataset, tmp_path / "cache")
    simulated = SimulationImages(dataset, source, dataset.train_names, tmp_path / "sim")
    task, name = tasks[0], dataset.train_names[0]
    superpixels = workspace.superpixels(task)
    first, second, third = (int(s) for s in np.unique(superpixels)[:3])

    # a correction query about the first superpixel, answered 1
    region = superpixels == first
    row, col = (int(v[0]) for v in np.nonzero(region))
    asked = Query(str(task), first, row, col, 0, 0, flat_runs(region))
    records = {1: QueryRecord.of(1, asked, 1, 0)}
    record_queries(workspace, records)
    answer_in_workspace(workspace, records, {1: (1,)})
    simulated.answer([(replace(asked, image=name), (1,))], {})

    # LCM writes 2 over the third superpixel (decided on the same labels in both)
    labels = workspace.labels(task)
    assert np.array_equal(labels, simulated.labels(name))
    lcm = relabel_superpixels(labels, superpixels, {third: (2, 0.99)}, corrector="lcm", round_index=1, image=str(task))
    WorkspaceImages(workspace, tasks, dataset.num_classes).apply_corrections(lcm)
    simulated.apply_corrections([replace(r, image=name) for r in lcm])
    assert np.array_equal(workspace.labels(task), simulated.labels(name))
    assert (workspace.labels(task)[superpixels == third] == 2).all()

    # round 2 audits a held-back proposal of 2 for the second superpixel: the annotator says 3
    audit_region = superpixels == second
    arow, acol = (int(v[0]) for v in np.nonzero(audit_region))
    audit = Query(str(task), second, arow, acol, 2, 0, flat_runs(audit_region), 0.0, "audit", "lcm", 1)
    records[2] = QueryRecord.of(2, audit, 2, 0)
    record_queries(workspace, {2: records[2]})
    answer_in_workspace(workspace, records, {2: (3,)})
    simulated.answer([(replace(audit, image=name), (3,))], {})

    backend = WorkspaceImages(workspace, tasks, dataset.num_classes)
    final = workspace.labels(task)
    assert np.array_equal(final, simulated.labels(name))
    assert (final[audit_region] == 3).all(), "the audit's answer labels its region"
    assert (final[superpixels == third] == 2).all() and (final[superpixels == first] == 1).all()
    assert workspace.corrections() == [replace(r, image=str(task)) for r in simulated.journal()] == lcm
    assert backend.asked(str(task)) == simulated.asked(name) == {first, second}
    mine, theirs = backend.verified(str(task)), simulated.verified(name)
    np.testing.assert_array_equal(mine.mask, theirs.mask)
    np.testing.assert_array_equal(mine.before[mine.mask], theirs.before[theirs.mask])
    assert (mine.before[audit_region] == labels[audit_region]).all(), "the labels the audit was asked about"
