"""``alc-backend prepare``: superpixels/ for a data set in our layout, from every source."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from sam_checkpoints import save_random_sam

from alc_backend.cli import main
from alc_backend.data.dataset import SegmentationDataset, read_label_png
from alc_backend.data.synthetic import make_synthetic
from alc_backend.engine.superpixels import compute_superpixels


@pytest.fixture
def synthetic(tmp_path: Path) -> SegmentationDataset:
    """Five 48 px images without superpixels (make_synthetic's own are removed)."""
    dataset = make_synthetic(tmp_path / "data", 5, 3, size=48, val_fraction=0.2, progress=False)
    shutil.rmtree(dataset.root / "superpixels")
    return SegmentationDataset.open(dataset.root)


def test_slic_superpixels_are_written_for_every_image_with_their_settings(
    synthetic: SegmentationDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    root = synthetic.root
    assert main(["prepare", str(root), "--superpixels", "slic", "--num-superpixels", "12", "--quiet"]) == 0
    assert capsys.readouterr().out == f"wrote {root / 'superpixels'} (5 maps computed with slic)\n"
    dataset = SegmentationDataset.open(root)
    assert dataset.has_superpixels
    for name in [*dataset.train_names, *dataset.val_names]:
        expected = compute_superpixels(dataset.image(name), "slic", num_segments=12)
        np.testing.assert_array_equal(dataset.superpixels(name), expected)
    assert json.loads((root / "superpixels" / "source.json").read_text()) == {"source": "slic", "num_superpixels": 12}
    assert not (root / ".superpixels.partial").exists()


def test_existing_superpixels_are_kept_unless_overwrite(
    synthetic: SegmentationDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    root = synthetic.root
    assert main(["prepare", str(root), "--superpixels", "slic", "--quiet"]) == 0
    before = {path.name: path.read_bytes() for path in (root / "superpixels").iterdir()}
    capsys.readouterr()
    assert main(["prepare", str(root), "--superpixels", "felzenszwalb", "--quiet"]) == 2
    message = f"alc-backend: error: {root / 'superpixels'} already exists; pass --overwrite to replace it\n"
    assert capsys.readouterr().err == message
    assert {path.name: path.read_bytes() for path in (root / "superpixels").iterdir()} == before
    assert main(["prepare", str(root), "--superpixels", "felzenszwalb", "--overwrite", "--quiet"]) == 0
    after = {path.name: path.read_bytes() for path in (root / "superpixels").iterdir()}
    assert set(after) == set(before) and after != before
    assert json.loads(after["source.json"])["source"] == "felzenszwalb"
    assert sorted(path.name for path in root.iterdir() if path.name.startswith(".")) == []


def test_an_interrupted_run_resumes_with_the_maps_it_had(
    synthetic: SegmentationDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    root = synthetic.root
    assert main(["prepare", str(root), "--superpixels", "slic", "--quiet"]) == 0
    # what an interrupted run leaves: the staging folder with some maps
    os.replace(root / "superpixels", root / ".superpixels.partial")
    name = synthetic.train_names[0]
    (root / ".superpixels.partial" / f"{name}.png").unlink()
    kept = (root / ".superpixels.partial" / f"{synthetic.train_names[1]}.png").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["prepare", str(root), "--superpixels", "slic", "--quiet"]) == 0
    assert capsys.readouterr().out == f"wrote {root / 'superpixels'} (1 maps computed with slic)\n"
    assert (root / "superpixels" / f"{synthetic.train_names[1]}.png").stat().st_mtime_ns == kept
    # other settings than the staged maps' start afresh
    os.replace(root / "superpixels", root / ".superpixels.partial")
    assert main(["prepare", str(root), "--superpixels", "slic", "--num-superpixels", "9", "--quiet"]) == 0
    assert capsys.readouterr().out == f"wrote {root / 'superpixels'} (5 maps computed with slic)\n"


@pytest.mark.slow
def test_mobilesam_superpixels_from_a_checkpoint_cover_every_pixel(
    synthetic: SegmentationDataset, tmp_path: Path
) -> None:
    checkpoint = save_random_sam(tmp_path / "mobile_sam.pt", "vit_t")
    arguments = ["prepare", str(synthetic.root), "--superpixels", "mobilesam", "--sam-checkpoint", str(checkpoint)]
    assert main([*arguments, "--points-per-side", "2", "--num-superpixels", "10", "--quiet"]) == 0
    dataset = SegmentationDataset.open(synthetic.root)
    for name in [*dataset.train_names, *dataset.val_names]:
        superpixels = dataset.superpixels(name)
        assert superpixels is not None and superpixels.shape == (48, 48)
        assert np.bincount(superpixels.ravel()).min() >= 48 * 48 // 80  # the default smallest superpixel
    source = json.loads((synthetic.root / "superpixels" / "source.json").read_text())
    assert source["model_type"] == "vit_t" and source["sam"]["points_per_side"] == 2
    assert source["checkpoint"] == str(checkpoint.resolve())


def test_bad_requests_are_named(
    synthetic: SegmentationDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAM_CHECKPOINT", raising=False)
    root = str(synthetic.root)
    assert main(["prepare", root]) == 2
    assert capsys.readouterr().err == (
        "alc-backend: error: name what to prepare: --superpixels SOURCE, --pseudo SPEC, or both\n"
    )
    assert main(["prepare", root, "--superpixels", "sam"]) == 2
    assert capsys.readouterr().err == (
        "alc-backend: error: superpixels from sam need a checkpoint: set SAM_CHECKPOINT\n"
    )
    missing = tmp_path / "nowhere.pth"
    monkeypatch.setenv("SAM_CHECKPOINT", str(missing))
    assert main(["prepare", root, "--superpixels", "sam"]) == 2
    assert capsys.readouterr().err == f"alc-backend: error: SAM checkpoint {missing} does not exist\n"
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    assert main(["prepare", root, "--superpixels", "mobilesam", "--sam-checkpoint", str(garbage), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(
        f"alc-backend: error: SAM checkpoint {garbage} is not a readable PyTorch state dict: "
    )
    assert not (synthetic.root / "superpixels").exists()
    assert main(["prepare", str(tmp_path / "no-data"), "--superpixels", "slic"]) == 2
    assert capsys.readouterr().err == (
        f"alc-backend: error: data set root {tmp_path / 'no-data'} does not exist or is not a folder\n"
    )


def test_pseudo_labels_from_a_mask_folder_through_the_command(
    synthetic: SegmentationDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = synthetic.root
    imported = tmp_path / "noisy-masks"
    shutil.copytree(root / "pseudo", imported)
    shutil.rmtree(root / "pseudo")
    arguments = ["prepare", str(root), "--superpixels", "slic", "--pseudo", f"masks:{imported}", "--quiet"]
    assert main(arguments) == 0
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == f"wrote 5 pseudo-label maps to {root / 'pseudo'} from masks:{imported}"
    )
    dataset = SegmentationDataset.open(root)
    for name in [*dataset.train_names, *dataset.val_names]:
        np.testing.assert_array_equal(dataset.pseudo(name), read_label_png(imported / f"{name}.png"))
    assert main(["prepare", str(root), "--pseudo", "crowd:workers"]) == 2
    assert capsys.readouterr().err.startswith("alc-backend: error: unknown pseudo-label source 'crowd:workers'; ")
