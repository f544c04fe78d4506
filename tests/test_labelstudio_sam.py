"""The backend prepares a Label Studio project with MobileSAM superpixels and keeps them cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backend_harness import brush_config, eventually, serve_backend
from PIL import Image
from sam_checkpoints import save_random_sam

from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.preannotation.sam_models import load_sam
from alc_backend.preannotation.sam_superpixels import SamGeneratorSettings, SamSuperpixels
from alc_backend.service.settings import BackendSettings, SettingsError

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

CLASSES = ("background", "object")


def test_the_configured_sam_source_prepares_every_task_once(label_studio: Any, tmp_path: Path) -> None:
    checkpoint = save_random_sam(tmp_path / "mobile_sam.pt", "vit_t")
    env = {
        "MODEL_DIR": str(tmp_path / "workspace"),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "ALC_SUPERPIXELS": "mobilesam",
        "SAM_CHECKPOINT": str(checkpoint),
        "ALC_SAM_POINTS_PER_SIDE": "2",
        "ALC_NUM_SUPERPIXELS": "6",
        "ALC_DEVICE": "cpu",
    }
    settings = BackendSettings.from_env(env)
    folder = label_studio.document_root / "sam"
    folder.mkdir()
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 255, (40, 56, 3), dtype=np.uint8) for _ in range(2)]
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"image{index}.png")
    client: LabelStudioClient = label_studio.client()
    project = client.create_project("sam superpixels", brush_config(CLASSES))
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
