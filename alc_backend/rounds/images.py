"""The images of a round, as the round core sees them, and the queries and answers it exchanges.

:class:`RoundImages` is the small interface the core reads and writes through; the backend's
workspace and the simulation's store each implement it. Images are named by string keys
(the backend uses its task ids). A :class:`Query` asks about one region of one image; an
:class:`Answer` is the class a human gave it, or the classes they ticked in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from alc_backend import IGNORE_INDEX
from alc_backend.engine.corrections import AutoCorrection
from alc_backend.training.trainer import MixedRegions, Sample

QueryKind = Literal["correction", "multiclass", "audit"]


@dataclass(frozen=True)
class Query:
    """One question to an annotator about one region of one image.

    Attributes:
        image: the image's key.
        superpixel: the superpixel the region lies in (a correction query's whole region, or
            the superpixel of an audited change).
        row, col: the pixel shown as a point; the simulated annotator answers its true class.
        proposed: the class shown pre-selected: the current label at the pixel for a correction
            query, the corrector's class for an audit; a multi-class query shows none, and
            records the current label at the pixel here.
        label_before: the region's majority label when the query was made (255 = none).
        region: ``(flat start, length)`` runs of the pixels the answer labels, raster order.
        score: the acquisition score (audits: 0).
        kind: ``"correction"``, ``"multiclass"`` (tick every class in the region) or ``"audit"``.
        corrector: for an audit, the corrector whose proposal it checks.
        audited_round: for an audit, the round of the proposal it checks.
        predicted_classes: how many classes the querying model predicted in the region (what
            the query's seconds are estimated by, and its measured seconds are grouped by).
    """

    image: str
    superpixel: int
    row: int
    col: int
    proposed: int
    label_before: int
    region: tuple[tuple[int, int], ...]
    score: float = 0.0
    kind: QueryKind = "correction"
    corrector: str | None = None
    audited_round: int | None = None
    predicted_classes: int = 1

    def region_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """``shape`` bool mask of the region."""
        mask = np.zeros(shape, dtype=bool)
        flat = mask.reshape(-1)
        for start, length in self.region:
            flat[start : start + length] = True
        return mask

    def to_json(self) -> dict[str, Any]:
        record = {
            "image": self.image,
            "superpixel": self.superpixel,
            "row": self.row,
            "col": self.col,
            "proposed": self.proposed,
            "label_before": self.label_before,
            "region": [list(run) for run in self.region],
            "score": self.score,
            "kind": self.kind,
            "predicted_classes": self.predicted_classes,
        }
        if self.kind == "audit":
            record.update(corrector=self.corrector, audited_round=self.audited_round)
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Query:
        """Inverse of :meth:`to_json`."""
        return cls(
            image=str(record["image"]),
            superpixel=int(record["superpixel"]),
            row=int(record["row"]),
            col=int(record["col"]),
            proposed=int(record["proposed"]),
            label_before=int(record["label_before"]),
            region=tuple((int(start), int(length)) for start, length in record["region"]),
            score=float(record.get("score", 0.0)),
            kind=record.get("kind", "correction"),
            corrector=record.get("corrector"),
            audited_round=record.get("audited_round"),
            predicted_classes=int(record.get("predicted_classes", 1)),
        )


@dataclass(frozen=True)
class Answer:
    """A human's answer to a query of round ``round``.

    ``answer`` is the class the region takes: the class chosen for a correction query or an
    audit, or the one class ticked for a multi-class query; ``IGNORE_INDEX`` (255) when several
    were ticked. ``classes`` holds every class ticked for a multi-class query (ascending), and
    is empty for the other kinds.
    """

    query: Query
    answer: int
    round: int
    classes: tuple[int, ...] = ()

    @property
    def mixed(self) -> bool:
        """Whether the annotator ticked several classes: the region is not one class."""
        return len(self.classes) > 1


@dataclass(frozen=True)
class VerifiedPixels:
    """The pixels of one image that human answers labelled, and what they held before.

    ``mask``: ``(H, W)`` bool, labelled by an answer; ``before``: ``(H, W)`` uint8, the label
    each of those pixels had when its query was made (255 = none, or not verified).
    """

    mask: np.ndarray
    before: np.ndarray = field(repr=False)

    @classmethod
    def none(cls, shape: tuple[int, int]) -> VerifiedPixels:
        return cls(np.zeros(shape, dtype=bool), np.full(shape, IGNORE_INDEX, dtype=np.uint8))


class RoundImages(Protocol):
    """What the round core reads and writes; the backend's workspace and the simulation's store implement it."""

    @property
    def num_classes(self) -> int: ...

    def keys(self) -> Sequence[str]:
        """The images of the round, in a fixed order."""
        ...

    def image(self, key: str) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB."""
        ...

    def superpixels(self, key: str) -> np.ndarray:
        """``(H, W)`` int ids ``0..K-1``."""
        ...

    def labels(self, key: str) -> np.ndarray:
        """``(H, W)`` uint8 current labels, 255 = none."""
        ...

    def asked(self, key: str) -> set[int]:
        """Superpixels a correction query or an audit of a whole superpixel was made about."""
        ...

    def verified(self, key: str) -> VerifiedPixels:
        """The pixels answers labelled, with their labels from before."""
        ...

    def apply_corrections(self, records: Sequence[AutoCorrection]) -> None:
        """Write ``records`` (decided on the current labels) to the labels and the journal."""
        ...

    def mixed(self, key: str) -> MixedRegions | None:
        """The regions whose answers ticked several classes, or None when there are none."""
        ...


class TrainingImages:
    """The images of a round with their current labels, as training reads them.

    A sample is ``(image, labels)``, or ``(image, labels, mixed regions)`` when ``with_mixed``
    and the image has regions whose answers ticked several classes.
    """

    def __init__(self, images: RoundImages, keys: Sequence[str], with_mixed: bool = False) -> None:
        self.images = images
        self.keys = tuple(keys)
        self.with_mixed = with_mixed

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> Sample:
        key = self.keys[index]
        mixed = self.images.mixed(key) if self.with_mixed else None
        if mixed is None:
            return self.images.image(key), self.images.labels(key)
        return self.images.image(key), self.images.labels(key), mixed


def flat_runs(mask: np.ndarray) -> tuple[tuple[int, int], ...]:
    """``(flat start, length)`` runs of the True pixels of a bool mask, raster order."""
    index = np.flatnonzero(mask)
    if index.size == 0:
        return ()
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [index.size]])
    return tuple((int(index[s]), int(e - s)) for s, e in zip(starts, ends, strict=True))


class VerifiedTrainingImages:
    """The images of a round as Teacher-Student-Friend training reads them: ``(image, labels, verified)``.

    ``verified`` is the ``(H, W)`` bool mask of the pixels human answers labelled
    (:meth:`RoundImages.verified`); the other labelled pixels are pseudo-labels.
    """

    def __init__(self, images: RoundImages, keys: Sequence[str]) -> None:
        self.images = images
        self.keys = tuple(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = self.keys[index]
        return self.images.image(key), self.images.labels(key), self.images.verified(key).mask
