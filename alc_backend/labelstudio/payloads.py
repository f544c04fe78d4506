"""Label Studio result JSON <-> arrays: brush predictions and annotations, correction queries and their answers.

A result is one region or classification of a prediction or annotation, a dict such as ``{"from_name": ...,
"to_name": ..., "type": "brushlabels", "original_width": W, "original_height": H, "value": {...}}``.
Label Studio stores results whose names, types or labels do not exist in the labeling config without
complaint and then fails to show them, so ``validate_results`` checks ours before they leave.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from alc_backend import IGNORE_INDEX
from alc_backend.labelstudio.config import (
    POINT_LABEL,
    REGION_LABEL,
    ImageProjectConfig,
    LabelConfigError,
    QueryProjectConfig,
)
from alc_backend.labelstudio.rle import mask_to_rle, rle_to_mask


def brush_results(labels: np.ndarray, config: ImageProjectConfig) -> list[dict[str, Any]]:
    """One ``brushlabels`` result per class present in the ``(H, W)`` integer class map ``labels``.

    Pixels labelled 255 (no class) get no brush. ValueError for any other value outside 0..C-1.
    """
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be an (H, W) integer class map, got shape {labels.shape} and {labels.dtype}")
    present = [int(value) for value in np.unique(labels)]
    outside = [value for value in present if not (0 <= value < len(config.class_names) or value == IGNORE_INDEX)]
    if outside:
        raise ValueError(
            f"labels hold the values {outside}; the project's classes are 0..{len(config.class_names) - 1} "
            f"and {IGNORE_INDEX} marks pixels without a class"
        )
    return [
        _brush(f"class{value}", config.brush_name, config.image_name, labels == value, config.class_names[value])
        for value in present
        if value != IGNORE_INDEX
    ]


def validate_results(results: list[dict[str, Any]], config: ImageProjectConfig | QueryProjectConfig) -> None:
    """LabelConfigError naming the first from_name, to_name, type or label in ``results`` that ``config`` lacks."""
    controls = _controls(config)
    for index, result in enumerate(results):
        from_name = result.get("from_name")
        if from_name not in controls:
            raise LabelConfigError(
                f"result {index} has from_name {from_name!r}; the labeling config's controls are: {', '.join(controls)}"
            )
        if result.get("to_name") != config.image_name:
            raise LabelConfigError(
                f"result {index} has to_name {result.get('to_name')!r}; the labeling config's Image is "
                f"{config.image_name!r}"
            )
        kind, labels = controls[from_name]
        if result.get("type") != kind:
            raise LabelConfigError(f"result {index} has type {result.get('type')!r}; {from_name!r} takes {kind!r}")
        values = result.get("value", {}).get(kind)
        if not isinstance(values, list) or not values:
            raise LabelConfigError(f"result {index} has no labels in value.{kind}")
        for label in values:
            if label not in labels:
                raise LabelConfigError(
                    f"result {index} has the label {label!r}; the labels of {from_name!r} are: {', '.join(labels)}"
                )


def labels_from_brush_results(
    results: list[dict[str, Any]], config: ImageProjectConfig, height: int, width: int
) -> np.ndarray:
    """The ``(height, width)`` uint8 class map painted by the ``brushlabels`` results, 255 where none covers.

    Later results paint over earlier ones; results of other types are ignored. LabelConfigError for a brush
    whose size is not the image's, that has not exactly one label, or whose label is not a class.
    """
    labels = np.full((height, width), IGNORE_INDEX, np.uint8)
    for result in results:
        if result.get("type") != "brushlabels":
            continue
        mask_width, mask_height = result.get("original_width"), result.get("original_height")
        if (mask_width, mask_height) != (width, height):
            raise LabelConfigError(f"brush mask is {mask_width}x{mask_height} but the image is {width}x{height}")
        value = result.get("value", {})
        names = value.get("brushlabels", [])
        if len(names) != 1:
            raise LabelConfigError(f"brush result {result.get('id')!r} has {len(names)} labels; it needs exactly one")
        if "rle" not in value:
            raise LabelConfigError(f"brush result {result.get('id')!r} has no rle")
        class_index = config.class_index(names[0])
        labels[rle_to_mask(value["rle"], height, width)] = class_index
    return labels


def query_results(
    region: np.ndarray, point_yx: tuple[int, int], ticked_class: int | None, config: QueryProjectConfig
) -> list[dict[str, Any]]:
    """The results of one query on an image of the ``(H, W)`` bool mask ``region``'s size.

    The read-only region, drawn as its outline (:func:`region_outline`) so that its pixels stay
    visible, the read-only key point at the centre of pixel ``point_yx`` = (row, column) in percent
    of the image (``x = 100 * (column + 0.5) / W``, ``y = 100 * (row + 0.5) / H``), and the answer with class
    ``ticked_class`` ticked (a correction query or an audit); None ticks nothing (a multi-class query) and
    leaves the answer out.
    """
    if region.ndim != 2 or region.dtype != np.bool_:
        raise ValueError(f"region must be an (H, W) bool mask, got shape {region.shape} and dtype {region.dtype}")
    height, width = region.shape
    row, column = int(point_yx[0]), int(point_yx[1])
    if not (0 <= row < height and 0 <= column < width):
        raise ValueError(f"the query pixel (row {row}, column {column}) is outside the {width}x{height} image")
    if ticked_class is not None and not 0 <= ticked_class < len(config.class_names):
        raise ValueError(f"ticked class {ticked_class} is outside 0..{len(config.class_names) - 1}")
    point = {
        "id": "query-pixel",
        "from_name": config.point_name,
        "to_name": config.image_name,
        "type": "keypointlabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "readonly": True,
        "value": {
            "x": 100 * (column + 0.5) / width,
            "y": 100 * (row + 0.5) / height,
            "width": 1.0,
            "keypointlabels": [POINT_LABEL],
        },
    }
    outline = region_outline(region, outline_width(region.shape))
    region_result = _brush("query-region", config.region_name, config.image_name, outline, REGION_LABEL)
    results = [{**region_result, "readonly": True}, point]
    if ticked_class is not None:
        results.append(
            {
                "id": "query-answer",
                "from_name": config.answer_name,
                "to_name": config.image_name,
                "type": "choices",
                "original_width": width,
                "original_height": height,
                "value": {"choices": [config.class_names[ticked_class]]},
            }
        )
    return results


def answer_classes(results: list[dict[str, Any]], config: QueryProjectConfig) -> tuple[int, ...]:
    """The class indices ticked in an annotation's ``choices`` results for ``config.answer_name``, ascending.

    ``()`` when none is ticked (the query was not answered); one class answers the query; several
    say the region holds each of them. LabelConfigError for a choice that is not a class.
    """
    chosen: list[Any] = []
    for result in results:
        if not isinstance(result, dict):
            raise LabelConfigError(f"a result of the answer is not an object: {result!r}")
        if result.get("type") != "choices" or result.get("from_name") != config.answer_name:
            continue
        value = result.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(choices, list):
            raise LabelConfigError(f"the answer's {config.answer_name!r} result has no list of choices")
        chosen += choices
    if not all(isinstance(name, str) for name in chosen):
        raise LabelConfigError(f"the answer's choices in {config.answer_name!r} are not all text: {chosen!r}")
    return tuple(sorted({config.class_index(name) for name in chosen}))


OUTLINE_FRACTION = 1 / 150
"""An outline's width as a share of the image's longer side (at least 1 px): about 4 screen pixels
wherever Label Studio fits the image to the window."""


def outline_width(shape: tuple[int, int]) -> int:
    """The outline width, px, for an image of ``(H, W)`` ``shape``."""
    return max(1, round(max(shape) * OUTLINE_FRACTION))


def region_outline(region: np.ndarray, width: int) -> np.ndarray:
    """The pixels of ``(H, W)`` bool ``region`` within ``width`` px (4-connected steps) of its edge or the image's.

    A region thinner than twice ``width`` is its own outline.
    """
    if width < 1:
        raise ValueError(f"the outline width must be at least 1 px, got {width}")
    inner = ndimage.binary_erosion(region, iterations=width, border_value=0)
    return region & ~inner


def _brush(result_id: str, from_name: str, to_name: str, mask: np.ndarray, label: str) -> dict[str, Any]:
    """A ``brushlabels`` result painting the ``(H, W)`` bool ``mask`` with ``label``."""
    height, width = mask.shape
    return {
        "id": result_id,
        "from_name": from_name,
        "to_name": to_name,
        "type": "brushlabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask_to_rle(mask), "brushlabels": [label]},
    }


def _controls(config: ImageProjectConfig | QueryProjectConfig) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Result type and labels of every control of ``config``, by control name."""
    if isinstance(config, ImageProjectConfig):
        return {config.brush_name: ("brushlabels", config.class_names)}
    return {
        config.region_name: ("brushlabels", (REGION_LABEL,)),
        config.point_name: ("keypointlabels", (POINT_LABEL,)),
        config.answer_name: ("choices", config.class_names),
    }
