"""Export an image project from Label Studio as a data set in the VOC layout.

``OUT/images/NAME.ext`` (the images as Label Studio serves them), ``OUT/masks/NAME.png``
(8-bit class indices, 255 = no class), ``OUT/classes.txt`` and ``OUT/sources.json`` (where each
mask came from). A task's mask is its newest submitted annotation where one exists, else
the backend's latest prediction (the project's model version first, then the newest
``alc-*`` one), else any other prediction; tasks with none are listed as skipped.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from alc_backend.atomic import write_atomically, write_text_atomically
from alc_backend.data.dataset import write_label_png
from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.config import parse_image_config
from alc_backend.labelstudio.payloads import labels_from_brush_results
from alc_backend.service.downloads import SourceRules, TaskFiles
from alc_backend.service.sources import OUR_VERSION_PREFIX, decode_image, latest_manual_mask, task_name

_KEPT_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class ExportSummary:
    """What :func:`export_project` wrote: image name -> mask source, and the tasks it skipped (id -> why)."""

    sources: dict[str, str] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)


def export_project(
    client: LabelStudioClient,
    project: int,
    out: Path,
    rules: SourceRules,
    max_image_pixels: int,
    progress: bool = True,
) -> ExportSummary:
    """Write project ``project``'s images and best masks to ``out``; returns the summary.

    The images are read under ``rules`` and decoded up to ``max_image_pixels`` pixels, as for
    preparation (:mod:`alc_backend.service.downloads`).
    """
    files = TaskFiles(client, rules)
    details = client.get_project(project)
    config = parse_image_config(details["label_config"])
    tasks = client.list_tasks(project)
    summary = ExportSummary()
    used: set[str] = set()
    for task in tqdm(tasks, desc=f"export project {project}", unit="image", disable=not progress):
        task_id = int(task["id"])
        reference = str(task.get("data", {}).get(config.image_key) or "")
        try:
            data = files.read(reference)
            image = decode_image(data, f"task {task_id}: image {reference}", max_image_pixels)
        except Exception as error:
            summary.skipped[task_id] = f"image unavailable: {error}"
            continue
        shape = (image.shape[0], image.shape[1])
        labels, source = _best_mask(task, details.get("model_version"), config, shape)
        if labels is None:
            summary.skipped[task_id] = "no annotation and no prediction"
            continue
        name = _unique_name(task, reference, used)
        _save_image(out / "images", name, reference, data)
        write_label_png(out / "masks" / f"{name}.png", labels)
        summary.sources[name] = source
    write_text_atomically(out / "classes.txt", "".join(f"{name}\n" for name in config.class_names))
    record = {
        "project": project,
        "sources": summary.sources,
        "skipped": {str(k): v for k, v in summary.skipped.items()},
    }
    write_text_atomically(out / "sources.json", json.dumps(record, indent=1) + "\n")
    return summary


def _best_mask(
    task: dict[str, Any], project_version: str | None, config: Any, shape: tuple[int, int]
) -> tuple[np.ndarray | None, str]:
    annotations = task.get("annotations") or []
    manual = latest_manual_mask(annotations, config, shape)
    if manual is not None:
        return manual, "annotation"
    predictions = task.get("predictions") or []

    def preference(prediction: dict[str, Any]) -> tuple[int, int, int]:
        version = str(prediction.get("model_version") or "")
        return (version == project_version, version.startswith(OUR_VERSION_PREFIX), int(prediction.get("id", 0)))

    for prediction in sorted(predictions, key=preference, reverse=True):
        if prediction.get("result"):
            labels = labels_from_brush_results(prediction["result"], config, shape[0], shape[1])
            return labels, f"prediction {prediction.get('model_version')}"
    return None, ""


def _save_image(folder: Path, name: str, reference: str, data: bytes) -> None:
    """Keep PNG and JPEG bytes as they are; re-encode anything else as PNG."""
    suffix = Path(reference.split("=")[-1].split("?")[0]).suffix.lower()
    if suffix in _KEPT_SUFFIXES:
        write_atomically(folder / f"{name}{suffix}", lambda tmp: Path(tmp).write_bytes(data))
    else:
        write_atomically(folder / f"{name}.png", lambda tmp: Image.open(io.BytesIO(data)).save(tmp, "PNG"))


def _unique_name(task: dict[str, Any], reference: str, used: set[str]) -> str:
    name = task_name(task, reference)
    if name in used:
        name = f"{name}-task{task['id']}"
    used.add(name)
    return name
