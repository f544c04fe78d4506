"""Pseudo-label sources: mask folders, a model's majority per superpixel, text-prompted detectors; pseudo/ writing."""

from __future__ import annotations

import logging
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from alc_backend.data.dataset import DatasetError, SegmentationDataset, write_label_png
from alc_backend.data.synthetic import make_synthetic
from alc_backend.engine.pseudo_labels import PseudoLabelError
from alc_backend.engine.superpixels import compute_superpixels
from alc_backend.preannotation.pseudo_labels import (
    STAGING_FOLDER,
    DetectorSource,
    MaskFolderSource,
    ModelMajoritySource,
    class_prompt,
    load_detector,
    pseudo_label_source_from_spec,
    text_prompt,
    write_pseudo_labels,
)
from alc_backend.training.checkpoint import save_checkpoint
from alc_backend.training.inference import predict_probs
from alc_backend.training.model import ModelConfig, build_model

N = 255
CPU = torch.device("cpu")
CLASSES = ("background", "dining_table", "traffic-light", "tvmonitor")

DETECTORS = '''
import numpy as np

from alc_backend.preannotation.pseudo_labels import Detection

CALLS = []


class HalvesDetector:
    """The left half matches prompt 1, the top-left quarter prompt 0; remembers what it was asked."""

    def __init__(self, class_names):
        self.class_names = class_names

    def detect(self, image, prompts, box_threshold):
        CALLS.append((self.class_names, tuple(prompts), box_threshold))
        height, width = image.shape[:2]
        left = np.zeros((height, width), dtype=bool)
        left[:, : width // 2] = True
        corner = np.zeros((height, width), dtype=bool)
        corner[: height // 2, : width // 2] = True
        return [Detection(corner, 0, 0.3), Detection(left, 1, 0.8)]


class NothingDetector:
    def detect(self, image, prompts, box_threshold):
        return []


class WrongShapeDetector:
    def detect(self, image, prompts, box_threshold):
        return [Detection(np.ones((3, 5), dtype=bool), 0, 0.5)]


class NoneDetector:
    def detect(self, image, prompts, box_threshold):
        return None


class UnknownPromptDetector:
    def detect(self, image, prompts, box_threshold):
        return [Detection(np.ones(image.shape[:2], dtype=bool), len(prompts), 0.5)]


def halves(class_names):
    return HalvesDetector(class_names)


def nothing(class_names):
    return NothingDetector()


def wrong_shape(class_names):
    return WrongShapeDetector()


def returns_none(class_names):
    return NoneDetector()


def unknown_prompt(class_names):
    return UnknownPromptDetector()


def no_detect(class_names):
    return object()


not_callable = 3
'''


@pytest.fixture
def detectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of an importable module of test detectors (written to tmp_path, on sys.path)."""
    name = f"alc_test_detectors_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(DETECTORS), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def image_of(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# --- masks:FOLDER ----------------------------------------------------------------------------


def test_mask_folder_round_trip_and_missing_file(tmp_path: Path) -> None:
    labels = np.array([[0, 1, 2], [3, N, 0]], dtype=np.uint8)
    write_label_png(tmp_path / "a.png", labels)
    source = MaskFolderSource(tmp_path, num_classes=4)
    assert source.name == f"masks:{tmp_path}"
    image = image_of(2, 3)
    superpixels = np.zeros((2, 3), dtype=np.int32)
    result = source("a", image, superpixels)
    assert result is not None and result.dtype == np.uint8
    np.testing.assert_array_equal(result, labels)
    assert source("b", image, superpixels) is None


def test_mask_folder_rejects_a_wrong_size_and_unknown_classes(tmp_path: Path) -> None:
    write_label_png(tmp_path / "a.png", np.zeros((2, 3), dtype=np.uint8))
    write_label_png(tmp_path / "b.png", np.array([[0, 5, 4]], dtype=np.uint8))
    source = MaskFolderSource(tmp_path, num_classes=4)
    with pytest.raises(PseudoLabelError) as caught:
        source("a", image_of(4, 5), np.zeros((4, 5), dtype=np.int32))
    assert str(caught.value) == f"{tmp_path / 'a.png'} is 3x2 but the image is 5x4 (width x height)"
    with pytest.raises(PseudoLabelError) as caught:
        source("b", image_of(1, 3), np.zeros((1, 3), dtype=np.int32))
    assert str(caught.value) == (
        f"{tmp_path / 'b.png'} holds class indices [4, 5] but there are 4 classes (0..3, 255 = none)"
    )


# --- model:CHECKPOINT ------------------------------------------------------------------------


def test_model_majority_is_the_majority_of_the_argmax_per_superpixel() -> None:
    torch.manual_seed(1)  # a random model whose argmax is not one class everywhere
    model = build_model(ModelConfig(num_classes=3))
    image = image_of(32, 32, seed=1)
    image[:16, :16] = (250, 10, 10)
    image[16:, 16:] = (10, 10, 250)
    superpixels = (np.arange(32)[:, None] // 8) * 4 + np.arange(32)[None, :] // 8  # 4 x 4 squares of 8 px
    source = ModelMajoritySource(model, 32, CPU)
    labels = source("x", image, superpixels)
    argmax = predict_probs(model, image, 32, CPU).argmax(axis=0)
    expected = np.empty((32, 32), dtype=np.uint8)
    for superpixel in range(16):
        inside = superpixels == superpixel
        expected[inside] = np.bincount(argmax[inside], minlength=3).argmax()
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, expected)
    assert len(np.unique(labels)) >= 2 and (labels != argmax).any()  # the test is not trivial
    assert source.name == "model majority"


def test_model_spec_loads_the_checkpoint_and_checks_its_classes(tmp_path: Path) -> None:
    config = ModelConfig(num_classes=4)
    torch.manual_seed(0)
    model = build_model(config)
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model, config)
    source = pseudo_label_source_from_spec(f"model:{path}", CLASSES, device=CPU, image_size=32)
    assert isinstance(source, ModelMajoritySource) and source.name == f"model:{path}"
    image = image_of(32, 32, seed=2)
    superpixels = compute_superpixels(image, "slic", num_segments=6)
    expected = ModelMajoritySource(model, 32, CPU)("x", image, superpixels)
    np.testing.assert_array_equal(source("x", image, superpixels), expected)
    with pytest.raises(ValueError) as caught:
        pseudo_label_source_from_spec(f"model:{path}", CLASSES[:3], device=CPU, image_size=32)
    assert str(caught.value) == (
        f"pseudo-label source 'model:{path}': the checkpoint predicts 4 classes "
        "but the data set has 3 (background, dining_table, traffic-light)"
    )
    with pytest.raises(ValueError, match=f"^checkpoint not found: {tmp_path / 'none.safetensors'}$"):
        pseudo_label_source_from_spec(f"model:{tmp_path / 'none.safetensors'}", CLASSES, device=CPU, image_size=32)


# --- detector:package.module:factory ---------------------------------------------------------


def test_default_prompts_follow_the_paper() -> None:
    assert class_prompt("diningtable") == "Diningtable"
    assert class_prompt("traffic_light") == "Traffic light"
    assert class_prompt("potted-plant ") == "Potted plant"
    assert class_prompt("tvMonitor") == "TvMonitor"
    assert text_prompt(["Aeroplane", "Bicycle", "Tvmonitor"]) == "Aeroplane. Bicycle. Tvmonitor."


def test_detector_source_prompts_every_class_but_the_background(detectors: str) -> None:
    source = pseudo_label_source_from_spec(f"detector:{detectors}:halves", CLASSES, device=CPU, image_size=32)
    assert source.name == f"detector:{detectors}:halves"
    labels = source("x", image_of(4, 6), np.zeros((4, 6), dtype=np.int32))
    calls = sys.modules[detectors].CALLS
    assert calls == [(CLASSES, ("Dining table", "Traffic light", "Tvmonitor"), 0.2)]
    # prompt 1 ("Traffic light", class 2) on the left half, prompt 0 (class 1) on the smaller top-left quarter
    expected = np.array(
        [
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [2, 2, 2, 0, 0, 0],
            [2, 2, 2, 0, 0, 0],
        ],
        dtype=np.uint8,
    )
    assert labels is not None
    np.testing.assert_array_equal(labels, expected)


def test_without_a_background_class_uncovered_pixels_have_no_class(detectors: str) -> None:
    names = ("car", "road")
    source = DetectorSource(
        load_detector(f"{detectors}:halves", names), names, prompts=["Car", "Road"], box_threshold=0.3
    )
    labels = source("x", image_of(2, 2), np.zeros((2, 2), dtype=np.int32))
    assert sys.modules[detectors].CALLS == [(names, ("Car", "Road"), 0.3)]
    assert labels is not None
    np.testing.assert_array_equal(labels, np.array([[0, N], [1, N]], dtype=np.uint8))
    nothing = DetectorSource(load_detector(f"{detectors}:nothing", names), names)
    assert nothing("x", image_of(2, 2), np.zeros((2, 2), dtype=np.int32)) is None
    background = DetectorSource(load_detector(f"{detectors}:nothing", CLASSES), CLASSES)
    labels = background("x", image_of(2, 2), np.zeros((2, 2), dtype=np.int32))
    assert labels is not None
    np.testing.assert_array_equal(labels, np.zeros((2, 2), dtype=np.uint8))


def test_detector_junk_is_a_pseudo_label_error(detectors: str) -> None:
    source = DetectorSource(load_detector(f"{detectors}:wrong_shape", CLASSES), CLASSES, name="gsam")
    with pytest.raises(PseudoLabelError) as caught:
        source("img7", image_of(4, 6), np.zeros((4, 6), dtype=np.int32))
    assert str(caught.value) == (
        "gsam on image img7: detection 0 has a bool mask of shape (3, 5); the image needs a bool mask of shape (4, 6)"
    )
    source = DetectorSource(load_detector(f"{detectors}:unknown_prompt", CLASSES), CLASSES, name="gsam")
    with pytest.raises(PseudoLabelError) as caught:
        source("img7", image_of(4, 6), np.zeros((4, 6), dtype=np.int32))
    assert str(caught.value) == "gsam on image img7: detection 0 matched prompt 3, but there are 3 prompts (0..2)"
    source = DetectorSource(load_detector(f"{detectors}:returns_none", CLASSES), CLASSES, name="gsam")
    with pytest.raises(PseudoLabelError) as caught:
        source("img7", image_of(4, 6), np.zeros((4, 6), dtype=np.int32))
    assert str(caught.value) == "gsam on image img7: detect() returned a NoneType, not a list of Detection"


def test_detector_settings_are_checked(detectors: str) -> None:
    detector = load_detector(f"{detectors}:nothing", CLASSES)
    with pytest.raises(ValueError) as caught:
        DetectorSource(detector, CLASSES, prompts=["Table", "Light"])
    assert str(caught.value) == ("detector: 2 prompts for 3 prompted classes (dining_table, traffic-light, tvmonitor)")
    with pytest.raises(ValueError) as caught:
        DetectorSource(detector, CLASSES, prompts=["Table", "Traffic. Light", "Tv"])
    assert str(caught.value) == (
        "detector: prompt 'Traffic. Light' must be non-empty text without '.' (it separates prompts)"
    )
    with pytest.raises(ValueError) as caught:
        DetectorSource(detector, CLASSES, box_threshold=1.5)
    assert str(caught.value) == "detector: the box threshold must be in [0, 1], got 1.5"


def test_detector_spec_errors_are_named(detectors: str) -> None:
    def message(spec: str) -> str:
        with pytest.raises(ValueError) as caught:
            load_detector(spec, CLASSES)
        return str(caught.value)

    assert message("nocolon") == "detector spec 'nocolon' must be package.module:factory"
    assert message("a.b:") == "detector spec 'a.b:' must be package.module:factory"
    assert message("a..b:f") == "detector spec 'a..b:f' must be package.module:factory"
    assert message("alc_no_such_module:f") == (
        "detector spec 'alc_no_such_module:f': cannot import alc_no_such_module: No module named 'alc_no_such_module'"
    )
    assert (
        message(f"{detectors}:missing")
        == f"detector spec '{detectors}:missing': module {detectors} has no callable missing"
    )
    assert message(f"{detectors}:not_callable") == (
        f"detector spec '{detectors}:not_callable': module {detectors} has no callable not_callable"
    )
    assert message(f"{detectors}:no_detect") == (
        f"detector spec '{detectors}:no_detect': no_detect() returned a object, "
        "which has no detect(image, prompts, box_threshold) method"
    )


def test_source_spec_errors_are_named(tmp_path: Path) -> None:
    def message(spec: str) -> str:
        with pytest.raises(ValueError) as caught:
            pseudo_label_source_from_spec(spec, CLASSES, device=CPU, image_size=32)
        return str(caught.value)

    kinds = "use masks:FOLDER, model:CHECKPOINT or detector:package.module:factory"
    assert message("sam:x") == f"unknown pseudo-label source 'sam:x'; {kinds}"
    assert message(str(tmp_path)) == f"unknown pseudo-label source {str(tmp_path)!r}; {kinds}"
    assert message("masks:") == "pseudo-label source 'masks:' names no masks after 'masks:'"
    assert message(f"masks:{tmp_path / 'none'}") == (
        f"pseudo-label source 'masks:{tmp_path / 'none'}': {tmp_path / 'none'} is not a folder"
    )
    assert message("detector:nocolon") == "detector spec 'nocolon' must be package.module:factory"
    source = pseudo_label_source_from_spec(f"masks:{tmp_path}", CLASSES, device=CPU, image_size=32)
    assert isinstance(source, MaskFolderSource) and source.name == f"masks:{tmp_path}"


# --- write_pseudo_labels ---------------------------------------------------------------------


class ConstantSource:
    """Every pixel gets ``value``."""

    def __init__(self, value: int, name: str = "constant") -> None:
        self.value = value
        self.name = name

    def __call__(self, key: str, image: np.ndarray, superpixels: np.ndarray) -> np.ndarray:
        return np.full(image.shape[:2], self.value, dtype=np.uint8)


@pytest.fixture
def dataset(tmp_path: Path) -> SegmentationDataset:
    """Four 32 px synthetic images with their superpixels and no pseudo/."""
    made = make_synthetic(tmp_path / "data", 4, 0, size=32, val_fraction=0.25, progress=False)
    shutil.rmtree(made.root / "pseudo")
    return SegmentationDataset.open(made.root)


def names_of(dataset: SegmentationDataset) -> list[str]:
    return [*dataset.train_names, *dataset.val_names]


def test_written_maps_load_back_equal(dataset: SegmentationDataset) -> None:
    source = MaskFolderSource(dataset.root / "masks", dataset.num_classes)
    assert write_pseudo_labels(dataset.root, source, None, progress=False) == 4
    reopened = SegmentationDataset.open(dataset.root)
    assert reopened.has_pseudo
    for name in names_of(dataset):
        np.testing.assert_array_equal(reopened.pseudo(name), dataset.mask(name))
    assert not (dataset.root / STAGING_FOLDER).exists()


def test_existing_maps_are_kept_unless_overwrite(dataset: SegmentationDataset) -> None:
    root = dataset.root
    assert write_pseudo_labels(root, ConstantSource(1), names_of(dataset), progress=False) == 4
    assert write_pseudo_labels(root, ConstantSource(2), names_of(dataset), progress=False) == 0
    assert all((SegmentationDataset.open(root).pseudo(name) == 1).all() for name in names_of(dataset))
    first = names_of(dataset)[0]
    assert write_pseudo_labels(root, ConstantSource(2), [first], overwrite=True, progress=False) == 1
    reopened = SegmentationDataset.open(root)
    assert [int(reopened.pseudo(name)[0, 0]) for name in names_of(dataset)] == [2, 1, 1, 1]
    assert write_pseudo_labels(root, ConstantSource(3), None, overwrite=True, progress=False) == 4
    assert all((SegmentationDataset.open(root).pseudo(name) == 3).all() for name in names_of(dataset))


def test_images_without_labels_wait_in_staging_for_another_source(
    dataset: SegmentationDataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = dataset.root
    names = names_of(dataset)
    some = tmp_path / "some"
    for name in names[:2]:
        write_label_png(some / f"{name}.png", dataset.mask(name))
    caplog.set_level(logging.WARNING, logger="alc_backend.preannotation.pseudo_labels")
    assert write_pseudo_labels(root, MaskFolderSource(some, dataset.num_classes), None, progress=False) == 2
    assert [record.getMessage() for record in caplog.records] == [
        f"masks:{some} has no labels for 2 image(s): {names[2]}, {names[3]}",
        f"2 of 4 images have pseudo-labels, kept in {root / STAGING_FOLDER}; "
        "pseudo/ is written once every image has them",
    ]
    assert not SegmentationDataset.open(root).has_pseudo  # the data set still opens
    assert write_pseudo_labels(root, ConstantSource(5), None, progress=False) == 2
    reopened = SegmentationDataset.open(root)
    for name in names[:2]:
        np.testing.assert_array_equal(reopened.pseudo(name), dataset.mask(name))
    for name in names[2:]:
        assert (reopened.pseudo(name) == 5).all()
    assert not (root / STAGING_FOLDER).exists()


def test_writing_needs_superpixels(dataset: SegmentationDataset) -> None:
    shutil.rmtree(dataset.root / "superpixels")
    with pytest.raises(DatasetError) as caught:
        write_pseudo_labels(dataset.root, ConstantSource(0), None, progress=False)
    assert str(caught.value) == (
        f"data set {dataset.root} has no superpixels/; compute them first: alc-backend prepare {dataset.root} "
        "--superpixels SOURCE (SOURCE: slic, felzenszwalb, sam, mobilesam)"
    )


def test_junk_from_a_source_is_not_written(dataset: SegmentationDataset) -> None:
    with pytest.raises(PseudoLabelError) as caught:
        write_pseudo_labels(dataset.root, ConstantSource(8, name="eight"), None, progress=False)
    assert str(caught.value) == (
        f"eight on image {names_of(dataset)[0]} holds class indices [8] but there are 8 classes (0..7, 255 = none)"
    )
    assert not (dataset.root / "pseudo").exists()
    assert not list((dataset.root / STAGING_FOLDER).glob("*.png"))
