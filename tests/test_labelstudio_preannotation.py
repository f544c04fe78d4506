"""Pre-annotation in the backend: MobileSAM superpixels (cached) and a plugged-in detector's pseudo-labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backend_harness import eventually, serve_backend
from PIL import Image
from sam_checkpoints import save_random_sam

from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.config import image_label_config
from alc_backend.preannotation.sam_models import load_sam
from alc_backend.preannotation.sam_superpixels import SamGeneratorSettings, SamSuperpixels
from alc_backend.rounds.settings import RoundSettings
from alc_backend.service.settings import BackendSettings, SettingsError

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

CLASSES = ("background", "object")


def test_a_set_checkpoint_prepares_every_task_once_with_sam_superpixels(label_studio: Any, tmp_path: Path) -> None:
    checkpoint = save_random_sam(tmp_path / "mobile_sam.pt", "vit_t")
    env = {
        "MODEL_DIR": str(tmp_path / "workspace"),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "SAM_CHECKPOINT": str(checkpoint),
        "ALC_SAM_POINTS_PER_SIDE": "2",
        "ALC_NUM_SUPERPIXELS": "6",
        "ALC_DEVICE": "cpu",
    }
    settings = BackendSettings.from_env(env)
    assert settings.superpixels == "mobilesam"  # a checkpoint of no stated type is MobileSAM's
    folder = label_studio.document_root / "sam"
    folder.mkdir()
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 255, (40, 56, 3), dtype=np.uint8) for _ in range(2)]
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"image{index}.png")
    client: LabelStudioClient = label_studio.client()
    project = client.create_project("sam superpixels", image_label_config(CLASSES))
    label_studio.add_local_storage(project["id"], folder)
    tasks = client.create_tasks(
        project["id"], [{"image": label_studio.local_file_url(folder / f"image{i}.png")} for i in range(2)]
    )
    expected_maker = SamSuperpixels(
        load_sam(checkpoint, "vit_t"), SamGeneratorSettings(points_per_side=2), num_superpixels=6
    )
    with serve_backend(settings) as running:
        client.add_ml_backend(project["id"], running.url, "alc-backend")
        workspace = running.backend.workspace(project["id"])
        eventually(lambda: workspace.exists(), "Label Studio to call /setup")
        eventually(lambda: set(workspace.tasks()) == set(tasks), "the preparation", 120)
        running.wait()
        for task, image in zip(tasks, images, strict=True):
            np.testing.assert_array_equal(workspace.superpixels(task), expected_maker(image))
        computed = {task: (workspace.root / "superpixels" / f"{task}.png").stat().st_mtime_ns for task in tasks}

        # the derived task list is lost: preparing again finds the cached superpixels
        (workspace.root / "tasks.json").unlink()
        running.backend.submit("prepare", project["id"])
        running.wait()
        assert set(workspace.tasks()) == set(tasks)
        for task in tasks:
            assert (workspace.root / "superpixels" / f"{task}.png").stat().st_mtime_ns == computed[task]


def test_sam_settings_are_checked_when_the_backend_starts(tmp_path: Path) -> None:
    assert BackendSettings.from_env({}).superpixels == "slic"
    checkpoint = tmp_path / "sam_vit_l.pth"
    checkpoint.write_bytes(b"checked when loaded")
    chosen = BackendSettings.from_env({"SAM_CHECKPOINT": str(checkpoint), "SAM_MODEL_TYPE": "vit_l"})
    assert (chosen.superpixels, chosen.superpixel_config().model_type) == ("sam", "vit_l")
    named = {"SAM_CHECKPOINT": str(checkpoint), "ALC_SUPERPIXELS": "felzenszwalb"}
    assert BackendSettings.from_env(named).superpixels == "felzenszwalb"
    with pytest.raises(
        SettingsError, match=r"^ALC_SUPERPIXELS=sam: superpixels from sam need a checkpoint: set SAM_CHECKPOINT$"
    ):
        BackendSettings.from_env({"ALC_SUPERPIXELS": "sam"})
    missing = tmp_path / "gone.pt"
    with pytest.raises(SettingsError, match=rf"^ALC_SUPERPIXELS=mobilesam: SAM checkpoint {missing} does not exist$"):
        BackendSettings.from_env({"ALC_SUPERPIXELS": "mobilesam", "SAM_CHECKPOINT": str(missing)})
    with pytest.raises(SettingsError, match=r"^ALC_SUPERPIXELS=seeds: unknown superpixel source 'seeds'; choose from "):
        BackendSettings.from_env({"ALC_SUPERPIXELS": "seeds"})
    with pytest.raises(SettingsError, match=r"^ALC_SUPERPIXELS=slic: pred_iou_thresh must be in \[0, 1\], got 2.0$"):
        BackendSettings.from_env({"ALC_SAM_PRED_IOU_THRESH": "2"})
    with pytest.raises(SettingsError, match=r"^ALC_SAM_POINTS_PER_SIDE must be an integer, got 'many'$"):
        BackendSettings.from_env({"ALC_SAM_POINTS_PER_SIDE": "many"})


DETECTOR_MODULE = '''
import numpy as np
from alc_backend.preannotation.pseudo_labels import Detection

SEEN_PROMPTS = []


class RectangleDetector:
    """Finds one object, always at rows 10-29 and columns 5-24, with a mask of a fixed 40x56 size."""

    def detect(self, image, prompts, box_threshold):
        SEEN_PROMPTS.append((tuple(prompts), box_threshold))
        mask = np.zeros((40, 56), dtype=bool)
        mask[10:30, 5:25] = True
        return [Detection(mask, 0, 0.9)]


def make_detector(class_names):
    return RectangleDetector()
'''


def test_a_plugged_in_detector_labels_the_tasks_without_pseudo_labels(
    label_studio: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "alc_test_detector.py").write_text(DETECTOR_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import alc_test_detector

    settings = label_studio.backend_settings(
        tmp_path / "workspace",
        num_superpixels=8,
        round=RoundSettings(device="cpu"),
        pseudo_detector="alc_test_detector:make_detector",
        pseudo_box_threshold=0.3,
    )
    folder = label_studio.document_root / "detector"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for name, height in (("fits", 40), ("taller", 44), ("masked", 40)):
        Image.fromarray(rng.integers(0, 255, (height, 56, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    imported = np.ones((40, 56), dtype=np.uint8)
    Image.fromarray(imported).save(folder / "masked_mask.png")
    client: LabelStudioClient = label_studio.client()
    project = client.create_project("detector pseudo-labels", image_label_config(CLASSES))
    label_studio.add_local_storage(project["id"], folder)
    url = label_studio.local_file_url
    fits, taller, masked = client.create_tasks(
        project["id"],
        [
            {"image": url(folder / "fits.png")},
            {"image": url(folder / "taller.png")},
            {"image": url(folder / "masked.png"), "pseudo_mask": url(folder / "masked_mask.png")},
        ],
    )
    with serve_backend(settings) as running:
        client.add_ml_backend(project["id"], running.url, "alc-backend")
        workspace = running.backend.workspace(project["id"])
        eventually(lambda: workspace.exists(), "Label Studio to call /setup")
        eventually(lambda: set(workspace.tasks()) == {fits, taller, masked}, "the preparation", 120)
        running.wait()
        records = workspace.tasks()
        expected = np.zeros((40, 56), dtype=np.uint8)  # background (not prompted) where nothing was found
        expected[10:30, 5:25] = 1  # prompt 0 is "Object", class 1
        np.testing.assert_array_equal(workspace.pseudo(fits), expected)
        assert records[fits].pseudo_source == "detector:alc_test_detector:make_detector"
        assert [p["model_version"] for p in client.list_predictions(fits)] == ["alc-r0"]
        # a task with its own mask keeps it: the detector only fills in
        np.testing.assert_array_equal(workspace.pseudo(masked), imported)
        assert records[masked].pseudo_source == "pseudo_mask"
        # a detection that does not fit the image is that task's error, by name
        assert records[taller].error is not None
        assert records[taller].error.startswith(
            f"task {taller}: detector:alc_test_detector:make_detector on image taller: detection 0 "
        )
        assert "(40, 56)" in records[taller].error and "(44, 56)" in records[taller].error
        # one prompt per class but the background, with the configured threshold (a task that failed
        # is tried again by the next preparation, so the detector may have seen it more than once)
        assert len(alc_test_detector.SEEN_PROMPTS) >= 2
        assert set(alc_test_detector.SEEN_PROMPTS) == {(("Object",), 0.3)}


def test_detector_settings_are_checked() -> None:
    with pytest.raises(
        SettingsError, match=r"^ALC_PSEUDO_DETECTOR must be package.module:factory, got 'grounded-sam'$"
    ):
        BackendSettings.from_env({"ALC_PSEUDO_DETECTOR": "grounded-sam"})
    with pytest.raises(SettingsError, match=r"^ALC_PSEUDO_BOX_THRESHOLD must be in \[0, 1\], got 1.5$"):
        BackendSettings.from_env({"ALC_PSEUDO_BOX_THRESHOLD": "1.5"})
    assert BackendSettings.from_env({"ALC_PSEUDO_DETECTOR": "my_adapters.grounded_sam:make"}).pseudo_detector == (
        "my_adapters.grounded_sam:make"
    )
