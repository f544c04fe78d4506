"""Pseudo-label sources: where the initial noisy class masks that ALC corrects come from.

A :class:`PseudoLabelSource` turns an image (and its superpixels) into ``(H, W)`` uint8 class
indices with 255 = no class, or None when it has no labels for the image:

- :class:`MaskFolderSource`: label PNGs ``FOLDER/KEY.png`` made elsewhere;
- :class:`ModelMajoritySource`: a trained segmentation model's argmax, made constant on each
  superpixel by majority vote;
- :class:`DetectorSource`: a text-prompted detector-segmenter such as Grounded-SAM, one prompt
  per class (the paper's warm-start, Appendix A), plugged in as a :class:`TextPromptedDetector`.

:func:`pseudo_label_source_from_spec` builds a source from a command-line spec and
:func:`write_pseudo_labels` writes a data set's ``pseudo/`` folder with one.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from alc_backend import IGNORE_INDEX
from alc_backend.data.dataset import DatasetError, SegmentationDataset, read_label_png, write_label_png
from alc_backend.engine.pseudo_labels import (
    PseudoLabelError,
    majority_per_superpixel,
    paint_detections,
    validate_pseudo_labels,
)
from alc_backend.preannotation.superpixel_sources import SUPERPIXEL_SOURCES
from alc_backend.training.checkpoint import load_checkpoint
from alc_backend.training.inference import predict_probs

logger = logging.getLogger(__name__)

SOURCE_KINDS = ("masks", "model", "detector")
"""The kinds of :func:`pseudo_label_source_from_spec`'s specs: ``KIND:ARGUMENT``."""

STAGING_FOLDER = ".pseudo.partial"
"""Where :func:`write_pseudo_labels` keeps the maps of a data set whose ``pseudo/`` is not complete yet."""

_LISTED = 5  # how many image names a summary lists


class PseudoLabelSource(Protocol):
    """Makes the pseudo-labels of one image.

    Attributes:
        name: shown in messages and stored as the source of an image's pseudo-labels.
    """

    name: str

    def __call__(self, key: str, image: np.ndarray, superpixels: np.ndarray) -> np.ndarray | None:
        """``(H, W)`` uint8 labels of the ``(H, W, 3)`` uint8 RGB ``image`` named ``key``, or None: none.

        ``superpixels`` are the image's ``(H, W)`` int ids ``0..K-1``; labels are class indices
        ``0..C-1`` or 255 (no class).
        """
        ...


@dataclass(frozen=True)
class Detection:
    """One object a :class:`TextPromptedDetector` found.

    Attributes:
        mask: ``(H, W)`` bool, the object's pixels.
        prompt_index: index of the class prompt the object matched best (in the ``prompts`` given
            to :meth:`TextPromptedDetector.detect`).
        score: the detector's confidence, e.g. Grounding DINO's box score in [0, 1].
    """

    mask: np.ndarray
    prompt_index: int
    score: float


class TextPromptedDetector(Protocol):
    """A detector-segmenter prompted with one text per class, e.g. Grounding DINO + SAM.

    An adapter over Grounding DINO joins the prompts with :func:`text_prompt`, maps the tokens of
    each box's best phrase back to the prompt they belong to (a prompt may span several tokens),
    keeps the boxes whose score reaches ``box_threshold`` and segments each with SAM.
    """

    def detect(self, image: np.ndarray, prompts: Sequence[str], box_threshold: float) -> list[Detection]:
        """The objects in an ``(H, W, 3)`` uint8 RGB image, each with the index of its prompt."""
        ...


def class_prompt(class_name: str) -> str:
    """The default text prompt of a class name, e.g. ``"traffic_light"`` -> ``"Traffic light"``.

    ``"diningtable"`` -> ``"Diningtable"`` (as in the paper's Appendix A). Underscores and hyphens
    become spaces, runs of white space one space, and the first letter is capitalised (the rest is
    kept).
    """
    words = " ".join(re.sub(r"[_-]", " ", class_name).split())
    return words[:1].upper() + words[1:]


def text_prompt(prompts: Sequence[str]) -> str:
    """The detector's caption: ``["Aeroplane", "Bicycle", "Tvmonitor"]`` -> ``"Aeroplane. Bicycle. Tvmonitor."``."""
    return " ".join(f"{prompt}." for prompt in prompts)


class MaskFolderSource:
    """Label PNGs made elsewhere: ``folder/KEY.png``, 8-bit greyscale ('L') or palette ('P') class indices.

    Args:
        folder: the folder of the PNGs.
        num_classes: C; the files may hold ``0..C-1`` and 255.
    """

    def __init__(self, folder: Path, num_classes: int) -> None:
        self.folder = Path(folder)
        self.num_classes = num_classes
        self.name = f"masks:{self.folder}"

    def __call__(self, key: str, image: np.ndarray, superpixels: np.ndarray) -> np.ndarray | None:
        """The labels in ``folder/KEY.png`` (checked against the image and classes), None without that file."""
        path = self.folder / f"{key}.png"
        if not path.is_file():
            return None
        return validate_pseudo_labels(read_label_png(path), image.shape[:2], self.num_classes, str(path))


class ModelMajoritySource:
    """A trained segmentation model's argmax per pixel, then the majority class per superpixel.

    Args:
        model: a model as built by :func:`alc_backend.training.model.build_model`; moved to ``device``.
        image_size: the longer side of the network input, px
            (see :func:`~alc_backend.training.inference.predict_probs`).
        device: where the model runs.
        name: the source's name.
    """

    def __init__(
        self, model: torch.nn.Module, image_size: int, device: torch.device, *, name: str = "model majority"
    ) -> None:
        self.model = model.to(device)
        self.image_size = image_size
        self.device = device
        self.name = name

    def __call__(self, key: str, image: np.ndarray, superpixels: np.ndarray) -> np.ndarray:
        """``(H, W)`` uint8 labels: on each superpixel, the class the model predicts for most of its pixels."""
        probs = predict_probs(self.model, image, self.image_size, self.device)
        labels = majority_per_superpixel(probs.argmax(axis=0).astype(np.uint8), superpixels)
        return validate_pseudo_labels(labels, image.shape[:2], probs.shape[0], f"{self.name} on image {key}")


class DetectorSource:
    """Pseudo-labels from a text-prompted detector: one prompt per class, each object its best class.

    Masks are painted largest first, so smaller objects stay on top (see
    :func:`~alc_backend.engine.pseudo_labels.paint_detections`).

    Args:
        detector: the plug-in that finds and segments the objects.
        class_names: the C classes, in class-index order.
        prompts: one text per prompted class (every class but the background class), in class
            order; None: :func:`class_prompt` of each class name.
        background: the class of the pixels no object covers, not prompted; when no class has this
            name they stay 255 (no class).
        box_threshold: the detector keeps objects scoring at least this (the paper: 0.2 on PASCAL
            and Cityscapes, 0.05 on Kvasir-SEG).
        name: the source's name.
    """

    def __init__(
        self,
        detector: TextPromptedDetector,
        class_names: Sequence[str],
        prompts: Sequence[str] | None = None,
        background: str | None = "background",
        box_threshold: float = 0.2,
        *,
        name: str = "detector",
    ) -> None:
        self.detector = detector
        self.class_names = tuple(class_names)
        self.background = self.class_names.index(background) if background in self.class_names else IGNORE_INDEX
        self.prompted_classes = [index for index in range(len(self.class_names)) if index != self.background]
        if prompts is None:
            prompts = [class_prompt(self.class_names[index]) for index in self.prompted_classes]
        self.prompts = tuple(prompts)
        if len(self.prompts) != len(self.prompted_classes):
            raise ValueError(
                f"{name}: {len(self.prompts)} prompts for {len(self.prompted_classes)} prompted classes "
                f"({', '.join(self.class_names[index] for index in self.prompted_classes)})"
            )
        for prompt in self.prompts:
            if not prompt.strip() or "." in prompt:
                raise ValueError(f"{name}: prompt {prompt!r} must be non-empty text without '.' (it separates prompts)")
        if not 0.0 <= box_threshold <= 1.0:
            raise ValueError(f"{name}: the box threshold must be in [0, 1], got {box_threshold}")
        self.box_threshold = box_threshold
        self.name = name

    def __call__(self, key: str, image: np.ndarray, superpixels: np.ndarray) -> np.ndarray | None:
        """``(H, W)`` uint8 labels painted from the detections.

        None when the detector finds nothing and no class is the background (the map would be all 255).
        """
        shown = f"{self.name} on image {key}"
        detections = self.detector.detect(image, self.prompts, self.box_threshold)
        if not isinstance(detections, Sequence):
            raise PseudoLabelError(f"{shown}: detect() returned a {type(detections).__name__}, not a list of Detection")
        if not detections and self.background == IGNORE_INDEX:
            return None
        height, width = image.shape[:2]
        painted: list[tuple[np.ndarray, int, float]] = []
        for index, detection in enumerate(detections):
            if not isinstance(detection, Detection):
                raise PseudoLabelError(f"{shown}: detection {index} is a {type(detection).__name__}, not a Detection")
            mask = np.asarray(detection.mask)
            if mask.shape != (height, width) or mask.dtype != np.bool_:
                raise PseudoLabelError(
                    f"{shown}: detection {index} has a {mask.dtype} mask of shape {mask.shape}; "
                    f"the image needs a bool mask of shape ({height}, {width})"
                )
            if not 0 <= detection.prompt_index < len(self.prompts):
                raise PseudoLabelError(
                    f"{shown}: detection {index} matched prompt {detection.prompt_index}, "
                    f"but there are {len(self.prompts)} prompts (0..{len(self.prompts) - 1})"
                )
            if not math.isfinite(detection.score):
                raise PseudoLabelError(f"{shown}: detection {index} has score {detection.score}")
            painted.append((mask, self.prompted_classes[detection.prompt_index], detection.score))
        labels = paint_detections((height, width), painted, self.background)
        return validate_pseudo_labels(labels, (height, width), len(self.class_names), shown)


def load_detector(spec: str, class_names: Sequence[str]) -> TextPromptedDetector:
    """Import ``package.module:factory`` and return ``factory(class_names)``, a :class:`TextPromptedDetector`.

    Raises ValueError naming the spec for a malformed spec, a module that cannot be imported, a
    missing or uncallable factory, and a factory result without a ``detect`` method.
    """
    module_name, colon, factory_name = spec.partition(":")
    if not colon or not all(part.isidentifier() for part in module_name.split(".")) or not factory_name.isidentifier():
        raise ValueError(f"detector spec {spec!r} must be package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"detector spec {spec!r}: cannot import {module_name}: {error}") from error
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ValueError(f"detector spec {spec!r}: module {module_name} has no callable {factory_name}")
    detector = factory(tuple(class_names))
    if not callable(getattr(detector, "detect", None)):
        raise ValueError(
            f"detector spec {spec!r}: {factory_name}() returned a {type(detector).__name__}, "
            "which has no detect(image, prompts, box_threshold) method"
        )
    return detector


def pseudo_label_source_from_spec(
    spec: str, class_names: Sequence[str], *, device: torch.device, image_size: int
) -> PseudoLabelSource:
    """The source a command-line spec names; its name is the spec.

    Specs: ``masks:FOLDER`` (:class:`MaskFolderSource`), ``model:CHECKPOINT`` (an alc-backend
    checkpoint, :class:`ModelMajoritySource` run on ``device`` at ``image_size`` px) and
    ``detector:package.module:factory`` (:class:`DetectorSource` with :func:`load_detector`'s
    detector and the default prompts). Raises ValueError for an unknown kind, a missing folder, a
    checkpoint that cannot be loaded (``CheckpointError``) or predicts another number of classes.
    """
    kind, colon, argument = spec.partition(":")
    if not colon or kind not in SOURCE_KINDS:
        raise ValueError(
            f"unknown pseudo-label source {spec!r}; "
            "use masks:FOLDER, model:CHECKPOINT or detector:package.module:factory"
        )
    if not argument:
        raise ValueError(f"pseudo-label source {spec!r} names no {kind} after '{kind}:'")
    if kind == "masks":
        if not Path(argument).is_dir():
            raise ValueError(f"pseudo-label source {spec!r}: {argument} is not a folder")
        return MaskFolderSource(Path(argument), len(class_names))
    if kind == "model":
        model, config, _ = load_checkpoint(argument, device)
        if config.num_classes != len(class_names):
            raise ValueError(
                f"pseudo-label source {spec!r}: the checkpoint predicts {config.num_classes} classes "
                f"but the data set has {len(class_names)} ({', '.join(class_names)})"
            )
        return ModelMajoritySource(model, image_size, device, name=spec)
    return DetectorSource(load_detector(argument, class_names), class_names, name=spec)


def write_pseudo_labels(
    dataset_root: Path,
    source: PseudoLabelSource,
    names: Sequence[str] | None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> int:
    """Write ``pseudo/NAME.png`` of a data set in our layout with ``source``.

    The data set needs ``superpixels/`` (``alc-backend prepare DATA --superpixels SOURCE``).
    Each map is checked against its image and ``classes.txt`` and written atomically. While
    ``pseudo/`` does not exist, maps go to the staging folder ``.pseudo.partial/``, which becomes
    ``pseudo/`` once every image has a map: a data set never holds an incomplete ``pseudo/``, an
    interrupted run resumes, and the images one source has no labels for can be filled by a run
    with another source.

    Args:
        dataset_root: the data set folder.
        source: makes each image's labels; images it returns None for are skipped and listed in
            a warning.
        names: the images to label (None: all).
        overwrite: replace maps that exist (else they are kept and not asked for).
        progress: show a progress bar (images).

    Returns:
        the number of maps written.
    """
    root = Path(dataset_root)
    dataset = SegmentationDataset.open(root)
    if not dataset.has_superpixels:
        raise DatasetError(
            f"data set {root} has no superpixels/; compute them first: alc-backend prepare {root} "
            f"--superpixels SOURCE (SOURCE: {', '.join(SUPERPIXEL_SOURCES)})"
        )
    every = [*dataset.train_names, *dataset.val_names]
    target = root / "pseudo" if dataset.has_pseudo else root / STAGING_FOLDER
    todo = [name for name in (every if names is None else names) if overwrite or not (target / f"{name}.png").is_file()]
    written = 0
    unlabelled: list[str] = []
    for name in tqdm(todo, desc=f"pseudo-labels from {source.name}", unit="image", disable=not progress):
        image = dataset.image(name)
        superpixels = dataset.superpixels(name)
        assert superpixels is not None  # the data set has superpixels/
        labels = source(name, image, superpixels)
        if labels is None:
            unlabelled.append(name)
            continue
        checked = validate_pseudo_labels(labels, image.shape[:2], dataset.num_classes, f"{source.name} on image {name}")
        write_label_png(target / f"{name}.png", checked)
        written += 1
    if unlabelled:
        logger.warning(
            "%s has no labels for %d image(s): %s",
            source.name,
            len(unlabelled),
            ", ".join(unlabelled[:_LISTED]) + (", …" if len(unlabelled) > _LISTED else ""),
        )
    if target.name == STAGING_FOLDER and target.is_dir():
        missing = [name for name in every if not (target / f"{name}.png").is_file()]
        if missing:
            logger.warning(
                "%d of %d images have pseudo-labels, kept in %s; pseudo/ is written once every image has them",
                len(every) - len(missing),
                len(every),
                target,
            )
        else:
            os.replace(target, root / "pseudo")
    return written
