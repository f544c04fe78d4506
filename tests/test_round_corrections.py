"""The end of a round when the correctors cannot decide: they abstain, say why, and the round goes on."""

from __future__ import annotations

from pathlib import Path

import torch

from alc_backend.data.synthetic import make_synthetic
from alc_backend.rounds.corrections import correct_round
from alc_backend.rounds.images import Answer, Query, flat_runs
from alc_backend.rounds.settings import RoundSettings
from alc_backend.simulation.state import LabelStore, SimulationImages, SuperpixelSource


def test_correctors_without_enough_answers_abstain_and_say_why(tmp_path: Path) -> None:
    dataset = make_synthetic(tmp_path / "data", 3, 1, size=32, val_fraction=0.0, progress=False)
    LabelStore.from_pseudo_labels(tmp_path / "run" / "labels", dataset, dataset.train_names)
    images = SimulationImages(
        dataset, SuperpixelSource(dataset, tmp_path / "cache"), dataset.train_names, tmp_path / "run"
    )
    settings = RoundSettings(method="abc+lcm+plar")
    unused = torch.nn.Identity()  # neither corrector gets as far as running a model

    outcome = correct_round(images, unused, [], settings, 1, class_names=dataset.classes)
    assert outcome.notes["lcm"]["abstained"] == "fewer than two classes answered"
    assert outcome.notes["plar"]["abstained"] == "no answered pixels yet"
    assert (outcome.written, outcome.proposals, outcome.audits) == ([], [], [])

    # one answer of one class: LCM still has nothing to tell apart (PLAR now would run the model)
    name = dataset.train_names[0]
    superpixels = images.superpixels(name)
    region = superpixels == 0
    row, col = (int(v[0]) for v in region.nonzero())
    query = Query(name, 0, row, col, 1, 1, flat_runs(region))
    images.answer([(query, (2,))], {})
    lcm_only = settings.replace(method="abc+lcm")
    outcome = correct_round(images, unused, [Answer(query, 2, 1)], lcm_only, 1, class_names=dataset.classes)
    assert outcome.notes["lcm"] == {
        "answers": 1,
        "abstained": "fewer than two classes answered",
        "written": 0,
        "written_pixels": 0,
        "held_back": 0,
        "audited": 0,
        "confirmed": 0,
        "audited_precision": None,
        "trusted_classes": [],
        "refuted_classes": [],
    }
    assert images.labels(name)[region].tolist() == [2] * int(region.sum()), "the answer stands"
