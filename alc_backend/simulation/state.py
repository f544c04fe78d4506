"""On-disk state of a simulated run: labels, answered pixels, superpixels, one PNG per image.

Keeping label maps on disk rather than in memory lets a run over a PASCAL-sized data set hold
only per-superpixel statistics in memory. :class:`SimulationImages` is the simulation's
implementation of the round core's :class:`~alc_backend.rounds.images.RoundImages`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from alc_backend import IGNORE_INDEX
from alc_backend.atomic import write_text_atomically
from alc_backend.data.dataset import (
    SegmentationDataset,
    read_label_png,
    read_superpixel_png,
    write_label_png,
    write_superpixel_png,
)
from alc_backend.engine.corrections import AutoCorrection, apply_corrections
from alc_backend.engine.superpixels import SuperpixelAlgorithm, compute_superpixels
from alc_backend.rounds.answers import Given
from alc_backend.rounds.images import Query, VerifiedPixels
from alc_backend.training.trainer import MixedRegions


class LabelStore:
    """Current labels of one run: ``FOLDER/NAME.png``, ``(H, W)`` uint8, 255 = ignore."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.png"

    def read(self, name: str) -> np.ndarray:
        return read_label_png(self.path(name))

    def write(self, name: str, labels: np.ndarray) -> None:
        write_label_png(self.path(name), labels)

    @classmethod
    def from_pseudo_labels(cls, folder: Path, dataset: SegmentationDataset, names: Sequence[str]) -> LabelStore:
        """A store holding the data set's pseudo-labels (checked while copied) for ``names``."""
        store = cls(folder)
        for name in names:
            store.write(name, dataset.pseudo(name))
        return store


class SuperpixelSource:
    """Superpixels of a data set's images: its own ``superpixels/`` files (unless ``compute``), else computed
    with ``algorithm`` once and cached."""

    def __init__(
        self,
        dataset: SegmentationDataset,
        cache_folder: Path,
        algorithm: SuperpixelAlgorithm = "slic",
        num_segments: int = 40,
        compute: bool = False,
    ) -> None:
        self.dataset = dataset
        self.cache_folder = cache_folder
        self.algorithm = algorithm
        self.num_segments = num_segments
        self.compute = compute

    def __call__(self, name: str) -> np.ndarray:
        """``(H, W)`` int32 ids ``0..K-1`` of image ``name``."""
        if self.dataset.has_superpixels and not self.compute:
            ids = self.dataset.superpixels(name)
            assert ids is not None
            return ids
        cached = self.cache_folder / f"{name}.png"
        if cached.exists():
            return read_superpixel_png(cached)
        ids = compute_superpixels(self.dataset.image(name), self.algorithm, num_segments=self.num_segments)
        write_superpixel_png(cached, ids)
        return ids


class SimulationImages:
    """The images of one simulated run, as the round core reads and writes them.

    Under ``folder``: ``labels/NAME.png`` (current labels), ``verified/NAME.png`` (1 where an
    answer labelled the pixel), ``before/NAME.png`` (those pixels' labels before the answer)
    and ``auto_corrections.jsonl`` (the journal). The superpixels asked about and the regions
    answered with several classes (as flat pixel runs) are kept in memory, per image.
    """

    def __init__(
        self, dataset: SegmentationDataset, superpixels: SuperpixelSource, names: Sequence[str], folder: Path
    ) -> None:
        self.dataset = dataset
        self.superpixel_source = superpixels
        self.names = tuple(names)
        self.folder = folder
        self.store = LabelStore(folder / "labels")
        self._asked: dict[str, set[int]] = {name: set() for name in self.names}
        self._mixed: dict[str, list[tuple[Query, tuple[int, ...]]]] = {}
        self._journal: list[AutoCorrection] = []

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def keys(self) -> Sequence[str]:
        return self.names

    def image(self, key: str) -> np.ndarray:
        return self.dataset.image(key)

    def superpixels(self, key: str) -> np.ndarray:
        return self.superpixel_source(key)

    def labels(self, key: str) -> np.ndarray:
        return self.store.read(key)

    def asked(self, key: str) -> set[int]:
        return set(self._asked[key])

    def verified(self, key: str) -> VerifiedPixels:
        path = self.folder / "verified" / f"{key}.png"
        if not path.exists():
            return VerifiedPixels.none(self.superpixels(key).shape)
        return VerifiedPixels(read_label_png(path) > 0, read_label_png(self.folder / "before" / f"{key}.png"))

    def mixed(self, key: str) -> MixedRegions | None:
        regions = self._mixed.get(key)
        if not regions:
            return None
        ids = np.full(self.superpixels(key).shape, -1, dtype=np.int32)
        for index, (query, _) in enumerate(regions):
            ids[query.region_mask(ids.shape)] = index
        return MixedRegions(ids, tuple(classes for _, classes in regions))

    def journal(self) -> list[AutoCorrection]:
        """Every automatic correction of the run, in the order written."""
        return list(self._journal)

    def apply_corrections(self, records: Sequence[AutoCorrection]) -> None:
        for key, image_records in _by_image(records).items():
            self.store.write(key, apply_corrections(self.store.read(key), image_records))
        self._journal += records
        self._write_journal()

    def answer(self, given: Sequence[Given], localised: Mapping[int, np.ndarray]) -> None:
        """Record the answers ``given`` (one image at a time): each claims its superpixel, and its
        classes label its region, whose labels from before are kept. One class labels the whole
        region; an answer with several takes its pixel labels from ``localised`` (by index in
        ``given``, see :func:`alc_backend.rounds.answers.localise_mixed_answers`). No class leaves
        the labels as they are."""
        by_image: dict[str, list[int]] = {}
        for index, (query, _) in enumerate(given):
            by_image.setdefault(query.image, []).append(index)
        for key, indices in by_image.items():
            labels = self.store.read(key)
            verified = self.verified(key)
            mask, before = verified.mask.copy(), verified.before.copy()
            for index in indices:
                query, classes = given[index]
                self._asked[key].add(query.superpixel)
                if not classes:
                    continue
                region = query.region_mask(labels.shape)
                before[region] = labels[region]
                mask |= region
                labels[region] = classes[0] if len(classes) == 1 else localised[index][region]
                if len(classes) > 1:
                    self._mixed.setdefault(key, []).append((query, classes))
            self.store.write(key, labels)
            if mask.any():
                write_label_png(self.folder / "verified" / f"{key}.png", mask.astype(np.uint8))
                write_label_png(self.folder / "before" / f"{key}.png", np.where(mask, before, IGNORE_INDEX))

    def _write_journal(self) -> None:
        text = "".join(json.dumps(record.to_json()) + "\n" for record in self._journal)
        write_text_atomically(self.folder / "auto_corrections.jsonl", text)


def _by_image(records: Sequence[AutoCorrection]) -> dict[str, list[AutoCorrection]]:
    grouped: dict[str, list[AutoCorrection]] = {}
    for record in records:
        grouped.setdefault(record.image, []).append(record)
    return grouped
