"""Reading a task's image and pseudo-labels from what Label Studio hands over.

Pseudo-label sources, in order of preference: a mask file named in the task data (key
``ALC_PSEUDO_MASK_KEY``, default ``pseudo_mask``: a Label Studio URL, an http(s) URL or a path
on the backend's machine), then brush predictions on the task made by another model (not
``alc-*`` versions). A task with none starts unlabelled; the backend's own model labels it
once trained. A mask an annotator drew on the image task is not a pseudo-label: it is a human
answer (:func:`latest_manual_mask`).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image

from alc_backend import IGNORE_INDEX
from alc_backend.engine.pseudo_labels import PseudoLabelError, validate_pseudo_labels
from alc_backend.labelstudio.config import ImageProjectConfig
from alc_backend.labelstudio.payloads import labels_from_brush_results

OUR_VERSION_PREFIX = "alc-"
"""Model versions of the predictions this backend writes."""


class TaskDataError(ValueError):
    """A task's image or pseudo mask cannot be used; the message names the task and the file."""


def decode_image(data: bytes, shown: str, max_pixels: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from encoded image bytes.

    Raises TaskDataError when the bytes are not an image, or it has more than ``max_pixels``
    pixels (checked from the header, before decoding).
    """
    with _opened(data, shown, "image") as image:
        if image.width * image.height > max_pixels:
            raise TaskDataError(
                f"{shown} is {image.width}x{image.height}, more than the {max_pixels} pixels of ALC_MAX_IMAGE_PIXELS"
            )
        try:
            return np.asarray(image.convert("RGB"))
        except Exception as error:
            raise TaskDataError(f"{shown} is not a readable image ({len(data)} bytes): {error}") from error


def decode_label_map(data: bytes, shown: str, shape: tuple[int, int], num_classes: int) -> np.ndarray:
    """``(H, W)`` uint8 class indices from a single-channel PNG; checked against the image.

    Raises TaskDataError when the file is not a single-channel image, its size differs from
    ``shape`` (H, W) (checked from the header, before decoding), or it holds values other than
    0..C-1 and 255.
    """
    with _opened(data, shown, "mask") as image:
        if image.mode not in ("L", "P"):
            raise TaskDataError(
                f"{shown} has image mode {image.mode}; pseudo masks must be 8-bit greyscale ('L') or "
                "palette ('P') PNGs of class indices"
            )
        if (image.height, image.width) != shape:
            raise TaskDataError(
                f"{shown} is {image.width}x{image.height} but the image is {shape[1]}x{shape[0]} (width x height)"
            )
        try:
            labels = np.array(image, dtype=np.uint8)
        except Exception as error:
            raise TaskDataError(f"{shown} is not a readable mask: {error}") from error
    try:
        return validate_pseudo_labels(labels, shape, num_classes, shown)
    except PseudoLabelError as error:
        raise TaskDataError(str(error)) from error


@contextmanager
def _opened(data: bytes, shown: str, what: str) -> Iterator[Image.Image]:
    """The image in ``data`` with only its header read, for its size to be checked before decoding.

    PIL's warning about large images is silenced, as the callers check the size themselves;
    above PIL's own limit (about 179 M pixels) opening fails with a TaskDataError.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise TaskDataError(f"{shown} is too large to decode: {error}") from error
    except Exception as error:
        raise TaskDataError(f"{shown} is not a readable {what} ({len(data)} bytes): {error}") from error
    with image:
        yield image


def pseudo_labels(
    task: dict[str, Any],
    config: ImageProjectConfig,
    shape: tuple[int, int],
    mask_key: str,
    read: Callable[[str], bytes],
) -> tuple[np.ndarray, str | None]:
    """The initial ``(H, W)`` labels of ``task`` and their source (None: no source, all 255).

    ``read`` returns the bytes behind a file reference (see :mod:`alc_backend.service.downloads`).
    """
    reference = task.get("data", {}).get(mask_key)
    if reference:
        shown = f"task {task['id']}: {mask_key} {reference}"
        try:
            data = read(str(reference))
        except TaskDataError as error:
            raise TaskDataError(f"task {task['id']}: {mask_key} {error}") from error
        return decode_label_map(data, shown, shape, len(config.class_names)), mask_key
    foreign = [
        prediction
        for prediction in task.get("predictions", [])
        if not str(prediction.get("model_version") or "").startswith(OUR_VERSION_PREFIX)
    ]
    for prediction in sorted(foreign, key=lambda p: p.get("id", 0), reverse=True):
        labels = labels_from_brush_results(prediction.get("result", []), config, shape[0], shape[1])
        if (labels != IGNORE_INDEX).any():
            return labels, f"prediction {prediction.get('id')}"
    return np.full(shape, IGNORE_INDEX, dtype=np.uint8), None


def latest_manual_mask(
    annotations: list[dict[str, Any]], config: ImageProjectConfig, shape: tuple[int, int]
) -> np.ndarray | None:
    """The mask of the newest submitted (not skipped) annotation of an image task, or None."""
    live = [a for a in annotations if not a.get("was_cancelled") and a.get("result")]
    if not live:
        return None
    newest = max(live, key=lambda a: (str(a.get("updated_at") or ""), a.get("id", 0)))
    return labels_from_brush_results(newest["result"], config, shape[0], shape[1])


def task_name(task: dict[str, Any], reference: str) -> str:
    """A file-name stem for the task: its ``name`` data field, else the image's base name, else its id."""
    name = str(task.get("data", {}).get("name") or "")
    if not name and reference:
        name = reference.rsplit("/", 1)[-1].rsplit("=", 1)[-1].rsplit(".", 1)[0]
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._")
    return cleaned or f"task-{task['id']}"
