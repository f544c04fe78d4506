"""The real MobileSAM weights (fetched from the package index) on real images, and in the simulation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imgviz
import numpy as np
import pytest
from mobilesam_weights import mobilesam_checkpoint

from alc_backend.cli import main
from alc_backend.data.dataset import SegmentationDataset
from alc_backend.data.synthetic import make_synthetic
from alc_backend.engine.metrics import achievable_segmentation_accuracy
from alc_backend.engine.superpixels import slic_with_count
from alc_backend.preannotation.sam_models import load_sam
from alc_backend.preannotation.sam_superpixels import SamSuperpixels

pytestmark = pytest.mark.slow


def test_mobilesam_superpixels_of_a_voc_image_cover_it_and_beat_slic() -> None:
    voc = imgviz.data.voc()
    image, truth = voc["rgb"], voc["class_label"].astype(np.uint8)
    generator = SamSuperpixels(load_sam(mobilesam_checkpoint(), "vit_t"), num_superpixels=40)  # default settings
    masks = generator.masks(image)
    assert 0.3 < masks.any(axis=0).mean() < 1.0  # the raw masks leave part of the image uncovered
    superpixels = generator.from_masks(masks, image)  # what generator(image) returns, without a second run
    assert superpixels.shape == image.shape[:2]
    assert set(np.unique(superpixels)) == set(range(superpixels.max() + 1))  # every pixel is in one
    count = int(superpixels.max()) + 1
    slic = slic_with_count(image, count)
    assert count <= int(slic.max()) + 1 <= count * 5 // 4  # SLIC gets as many, or a few more
    sam_asa = achievable_segmentation_accuracy(superpixels, truth)
    slic_asa = achievable_segmentation_accuracy(slic, truth)
    assert sam_asa > slic_asa, f"SAM ASA {sam_asa:.3f} with {count} superpixels, SLIC {slic_asa:.3f}"


def test_the_simulation_runs_with_mobilesam_superpixels(tmp_path: Path) -> None:
    data = make_synthetic(tmp_path / "data", 6, 2, size=64, val_fraction=0.34, progress=False).root
    shutil.rmtree(data / "superpixels")
    arguments = ["prepare", str(data), "--superpixels", "mobilesam", "--sam-checkpoint", str(mobilesam_checkpoint())]
    assert main([*arguments, "--points-per-side", "6", "--num-superpixels", "12", "--quiet"]) == 0
    dataset = SegmentationDataset.open(data)
    for name in dataset.train_names:
        superpixels = dataset.superpixels(name)
        assert superpixels is not None and achievable_segmentation_accuracy(superpixels, dataset.mask(name)) > 0.5
    out = tmp_path / "run"
    arguments = ["simulate", str(data), "--method", "sim", "--rounds", "1", "--budget", "5", "--epochs", "1"]
    arguments += ["--image-size", "64", "--encoder", "resnet18", "--encoder-weights", "none", "--quiet"]
    assert main([*arguments, "--out", str(out)]) == 0
    rounds = json.loads((out / "results.json").read_text())["runs"][0]["rounds"]
    assert rounds[1]["clicks"] == 5
    assert not (out / "work" / "superpixels").exists()  # the data set's own (MobileSAM) superpixels were used
