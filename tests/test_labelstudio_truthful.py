"""Truthful answers never make the data worse, with the defaults, through a real Label Studio.

Held-out synthetic street scenes (a seed no other test uses) with noisy pseudo-labels go into
an image project served with the backend's defaults: SLIC superpixels, ``abc+lcm``, the query
kind that follows SLIC (multi-class), ``ALC_EPS`` 0; only the model is made small enough for a
test (64 px, a few epochs). The annotator answers every query truthfully, as the query's
question asks: it ticks every class present in the highlighted region, leaving out slivers
along its edge (the multi-class paper's annotator), so a SLIC region that straddles two objects
is answered as mixed. After two
rounds the masks ``alc-backend export`` writes must score at least the pseudo-labels' mIoU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from backend_harness import import_synthetic, serve_backend

from alc_backend.cli import main
from alc_backend.data.dataset import SegmentationDataset, read_label_png
from alc_backend.data.synthetic import make_synthetic
from alc_backend.engine.metrics import confusion_matrix, mean_iou
from alc_backend.engine.multiclass import multiclass_oracle_answer
from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.service.settings import BackendSettings

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

QUERIES_PER_ROUND = 20
ROUNDS = 2


def test_truthful_answers_never_lower_the_exported_miou_below_the_pseudo_labels(
    label_studio: Any, client: LabelStudioClient, tmp_path: Path
) -> None:
    root = tmp_path / "held-out"
    make_synthetic(root, 10, 41, size=64, val_fraction=0.0, progress=False)
    dataset = SegmentationDataset.open(root)
    defaults = BackendSettings().round
    settings = label_studio.backend_settings(
        tmp_path / "workspace",
        round=defaults.replace(queries_per_round=QUERIES_PER_ROUND, image_size=64, epochs=6, device="cpu"),
    )
    assert (settings.superpixels, settings.round.method, settings.round.eps) == ("slic", "multiclass:abc+lcm", 0.0)
    with serve_backend(settings) as running:
        project, names = import_synthetic(client, label_studio, dataset, "held-out", "held-out scenes")
        assert main(["init", "--images-project", str(project), "--backend", running.url]) == 0
        workspace = running.backend.workspace(project)
        query_project = workspace.state().query_project
        assert query_project is not None
        mixed = 0
        for round_index in range(1, ROUNDS + 1):
            running.wait_for_round(project, round_index)
            while (task := client.next_task(query_project)) is not None and task["data"]["round"] == round_index:
                image_task = int(task["data"]["image_task"])
                truth = dataset.mask(names[image_task])
                superpixels = workspace.superpixels(image_task)
                ticked = multiclass_oracle_answer(truth, superpixels, int(task["data"]["superpixel"]))
                mixed += len(ticked) > 1
                result = [
                    {
                        "from_name": "answer",
                        "to_name": "image",
                        "type": "choices",
                        "value": {"choices": [dataset.classes[value] for value in ticked]},
                    }
                ]
                client.create_annotation(task["id"], result)
        running.wait_for_round(project, ROUNDS + 1)
        out = tmp_path / "export"
        command = ["export", "--project", str(project), "--out", str(out)]
        assert main([*command, "--url", label_studio.url, "--api-key", label_studio.token]) == 0
    assert json.loads((out / "sources.json").read_text())["skipped"] == {}
    exported = sum(
        confusion_matrix(read_label_png(out / "masks" / f"{name}.png"), dataset.mask(name), dataset.num_classes)
        for name in dataset.train_names
    )
    pseudo = sum(
        confusion_matrix(dataset.pseudo(name), dataset.mask(name), dataset.num_classes) for name in dataset.train_names
    )
    print(f"{mixed} mixed answers; pseudo-label mIoU {mean_iou(pseudo):.1f}, exported {mean_iou(exported):.1f}")
    assert mixed > 0, "some SLIC regions straddle objects"
    assert mean_iou(exported) >= mean_iou(pseudo)
