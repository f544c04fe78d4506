"""Annotator time as a budget: seconds per query, from a published user study or measured.

A query's cost depends on its kind and on the number of classes in the queried region. A
:class:`CostModel` holds, for every kind, seconds per query for regions with 1, 2, ... classes;
its last entry applies to every larger count (the paper's table ends at "3 or more").

Costs can be measured: Label Studio records an annotation's ``lead_time`` (seconds the annotator
spent on it). :func:`measured_cost_model` replaces a prior's entries with medians of those times
once a bucket has enough answers. There the class count is the number of classes the model
PREDICTED in the region, since the true count is unknown while labelling.
"""

from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

import numpy as np
import torch

from alc_backend.engine.arrays import Array, as_tensor, to_host
from alc_backend.engine.segments import Segments

QueryKind = Literal["correction", "multiclass"]
QUERY_KINDS: tuple[QueryKind, ...] = cast("tuple[QueryKind, ...]", get_args(QueryKind))


def _check_kind(kind: str) -> None:
    if kind not in QUERY_KINDS:
        raise ValueError(f"unknown query kind {kind!r}; choose from {', '.join(QUERY_KINDS)}")


def _check_num_classes(num_classes: int) -> int:
    count = operator.index(num_classes)
    if count < 1:
        raise ValueError(f"a queried region holds at least one class; num_classes must be >= 1, got {count}")
    return count


@dataclass(frozen=True)
class CostModel:
    """Seconds an annotator spends per query, by query kind and number of classes in the region.

    Attributes:
        seconds_per_query: for every kind of :data:`QUERY_KINDS`, seconds per query for regions
            with ``1, 2, ..., n`` classes; entry ``n`` (the last) also applies to more than ``n``
            classes. Stored as a read-only mapping of tuples.
    """

    seconds_per_query: Mapping[QueryKind, tuple[float, ...]] = field(hash=False)

    def __post_init__(self) -> None:
        table = dict(self.seconds_per_query)
        for kind in table:
            _check_kind(kind)
        missing = [kind for kind in QUERY_KINDS if kind not in table]
        if missing:
            raise ValueError(f"cost model has no seconds for query kind(s) {', '.join(missing)}")
        normalized: dict[QueryKind, tuple[float, ...]] = {}
        for kind in QUERY_KINDS:
            entries = tuple(float(value) for value in table[kind])
            if not entries:
                raise ValueError(f"cost model for {kind!r} needs at least one entry (seconds for 1 class)")
            for index, value in enumerate(entries):
                if not (math.isfinite(value) and value > 0.0):
                    raise ValueError(
                        f"cost model seconds must be positive and finite; {kind!r} entry {index} is {value}"
                    )
            normalized[kind] = entries
        object.__setattr__(self, "seconds_per_query", MappingProxyType(normalized))

    @classmethod
    def paper(cls) -> CostModel:
        """Seconds per query measured in the user study of Hwang et al., "Active Learning for
        Semantic Segmentation with Multi-class Label Query" (NeurIPS 2023), appendix A, Table 3.

        Each participant answered 20 regions per form; seconds per query are the table's total
        time divided by 20, for regions with 1, 2 and 3 classes:

        - dominant-class labeling (also used for our ``"correction"`` query, which likewise
          asks for one class): 127.6 / 20, 160.5 / 20, 172.1 / 20 = 6.38, 8.025, 8.605 s;
        - multi-class labeling (``"multiclass"``): 145.5 / 20, 191.6 / 20, 295.8 / 20 =
          7.275, 9.58, 14.79 s.

        The study had no region with more than 3 classes; the 3-class entry is used for those.
        """
        return cls(
            {
                "correction": (127.6 / 20, 160.5 / 20, 172.1 / 20),
                "multiclass": (145.5 / 20, 191.6 / 20, 295.8 / 20),
            }
        )

    def num_buckets(self, kind: QueryKind) -> int:
        """Number of class-count entries for ``kind`` (3 for the paper's table)."""
        _check_kind(kind)
        return len(self.seconds_per_query[kind])

    def bucket_index(self, kind: QueryKind, num_classes: int) -> int:
        """0-based entry used for a region with ``num_classes`` (>= 1) classes."""
        count = _check_num_classes(num_classes)
        return min(count, self.num_buckets(kind)) - 1

    def bucket_labels(self, kind: QueryKind) -> tuple[str, ...]:
        """Names of ``kind``'s entries: ``("1", "2", "3+")`` for three entries."""
        size = self.num_buckets(kind)
        return (*(str(count) for count in range(1, size)), f"{size}+")

    def seconds(self, kind: QueryKind, num_classes: int) -> float:
        """Seconds for one ``kind`` query on a region with ``num_classes`` (>= 1) classes."""
        index = self.bucket_index(kind, num_classes)
        return self.seconds_per_query[kind][index]


PAPER_COST_MODEL = CostModel.paper()


@dataclass(frozen=True)
class TimedAnswer:
    """One answered query and the time it took.

    Attributes:
        kind: the query's kind.
        num_classes: classes the model predicted in the queried region (>= 1).
        seconds: Label Studio's ``lead_time`` of the annotation, in seconds; pass ``math.nan``
            when it is missing. Unusable times are dropped by :func:`measured_cost_model`,
            not rejected here.
    """

    kind: QueryKind
    num_classes: int
    seconds: float

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        object.__setattr__(self, "num_classes", _check_num_classes(self.num_classes))


def _usable_seconds(
    answers: Iterable[TimedAnswer], prior: CostModel, max_seconds: float
) -> dict[QueryKind, list[list[float]]]:
    """Usable lead times grouped per kind and per entry of ``prior`` (0-based bucket)."""
    if not (math.isfinite(max_seconds) and max_seconds > 0.0):
        raise ValueError(f"max_seconds must be positive and finite, got {max_seconds}")
    groups: dict[QueryKind, list[list[float]]] = {
        kind: [[] for _ in range(prior.num_buckets(kind))] for kind in QUERY_KINDS
    }
    for answer in answers:
        seconds = float(answer.seconds)
        if not (math.isfinite(seconds) and 0.0 < seconds <= max_seconds):
            continue
        groups[answer.kind][prior.bucket_index(answer.kind, answer.num_classes)].append(seconds)
    return groups


def _check_min_answers(min_answers: int) -> int:
    count = operator.index(min_answers)
    if count < 1:
        raise ValueError(f"min_answers must be >= 1, got {count}")
    return count


def _measured(groups: Mapping[QueryKind, list[list[float]]], prior: CostModel, min_answers: int) -> CostModel:
    table = {
        kind: tuple(
            float(statistics.median(times)) if len(times) >= min_answers else prior_seconds
            for times, prior_seconds in zip(groups[kind], prior.seconds_per_query[kind], strict=True)
        )
        for kind in QUERY_KINDS
    }
    return CostModel(table)


def measured_cost_model(
    answers: Iterable[TimedAnswer], prior: CostModel, min_answers: int = 20, max_seconds: float = 600.0
) -> CostModel:
    """``prior`` with entries replaced by the median measured seconds where there are enough answers.

    Answers are bucketed like ``prior``'s entries for their kind (1, 2, 3+ classes for the
    paper's table). Lead times that are not finite, not positive, or above ``max_seconds`` (an
    annotator who left the tab open) are dropped before counting.

    Args:
        answers: timed answers; ``num_classes`` is the number of PREDICTED classes in the region.
        prior: the model whose entries are kept where measurements are too few.
        min_answers: usable answers a bucket needs before its median replaces the prior (>= 1).
        max_seconds: longest lead time kept, in seconds.

    Returns:
        a new :class:`CostModel` with the same number of entries per kind as ``prior``.
    """
    count = _check_min_answers(min_answers)
    return _measured(_usable_seconds(answers, prior, max_seconds), prior, count)


def cost_summary(
    answers: Iterable[TimedAnswer], prior: CostModel, min_answers: int = 20, max_seconds: float = 600.0
) -> dict[str, dict[str, dict[str, Any]]]:
    """JSON-friendly view of :func:`measured_cost_model` for a status page.

    Returns:
        ``{kind: {bucket: entry}}`` with buckets named like ``"1"``, ``"2"``, ``"3+"`` and
        ``entry = {"answers": usable answers, "median_s": their median in seconds or None when
        there are none, "seconds": seconds per query in use, "source": "measured" | "model"}``.
        ``"measured"`` means the bucket reached ``min_answers`` and its median is in use.
    """
    count = _check_min_answers(min_answers)
    groups = _usable_seconds(answers, prior, max_seconds)
    used = _measured(groups, prior, count)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in QUERY_KINDS:
        summary[kind] = {}
        for label, times, seconds in zip(
            prior.bucket_labels(kind), groups[kind], used.seconds_per_query[kind], strict=True
        ):
            summary[kind][label] = {
                "answers": len(times),
                "median_s": float(statistics.median(times)) if times else None,
                "seconds": seconds,
                "source": "measured" if len(times) >= count else "model",
            }
    return summary


def cumulative_seconds(queries: Iterable[tuple[QueryKind, int]], model: CostModel) -> float:
    """Total seconds for ``(kind, num_classes)`` queries, e.g. one round's; add rounds for a running total."""
    return math.fsum(model.seconds(kind, num_classes) for kind, num_classes in queries)


def queries_within(seconds: np.ndarray, budget: float) -> int:
    """How many queries, taken in order, fit a budget: the longest prefix of ``seconds`` summing to ``budget`` or less.

    Args:
        seconds: ``(N,)`` estimated seconds of each query, in the order they would be asked.
        budget: seconds available, ``>= 0``.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0 seconds, got {budget}")
    spent = np.cumsum(np.asarray(seconds, dtype=np.float64))
    return int(np.searchsorted(spent, budget + 1e-9, side="right"))


def predicted_class_shares(
    predicted: Array, superpixels: Array, num_classes: int, segments: Segments | None = None
) -> np.ndarray:
    """``(K, C)`` share of each superpixel's pixels the model predicts as each class (rows sum to 1).

    Counted on ``predicted``'s device (numpy: the CPU); only the ``(K, C)`` shares come back.

    Args:
        predicted: ``(H, W)`` int, the model's class per pixel, in ``0..num_classes-1``.
        superpixels: ``(H, W)`` int ids ``0..K-1``, each covering at least one pixel.
        num_classes: ``C``.
        segments: ``Segments.from_map(superpixels)`` on ``predicted``'s device, when the caller has it.
    """
    if tuple(predicted.shape) != tuple(superpixels.shape):
        raise ValueError(f"predicted is {tuple(predicted.shape)} but superpixels is {tuple(superpixels.shape)}")
    classes = as_tensor(predicted).reshape(-1)
    if segments is None:
        segments = Segments.from_map(superpixels, classes.device)
    counts = segments.class_counts(classes, num_classes).to(torch.float64)
    return to_host(counts / counts.sum(dim=1, keepdim=True))


def prefer_multiclass(
    shares: np.ndarray, agreement: np.ndarray, model: CostModel, localisation_accuracy: float
) -> np.ndarray:
    """Whether a multi-class query is worth more per second than a correction query, region by region.

    The model's prediction stands in for the truth. A region whose pixels the model splits
    among ``m`` classes, with shares ``q`` and its current labels agreeing with the prediction
    on a share ``r`` of its pixels, expects:

    - from a correction query, the whole region relabelled with its dominant class: the right
      share goes from ``r`` to ``max(q)``, in ``T_correction(m)`` seconds;
    - from a multi-class query, every class ticked and the region localised: the right share
      goes from ``r`` to ``localisation_accuracy``, in ``T_multiclass(m)`` seconds.

    A region asks the multi-class query when ``m >= 2`` and its gain per second is larger
    (with one class both answers label the region the same and the correction is quicker).

    Args:
        shares: ``(K, C)`` predicted class shares per region (:func:`predicted_class_shares`).
        agreement: ``(K,)`` share of each region's pixels whose label equals the prediction.
        model: seconds per query.
        localisation_accuracy: expected share of a mixed region's pixels that localisation gets
            right, in ``[0, 1]``.

    Returns:
        ``(K,)`` bool, True where the multi-class query is preferred.
    """
    if not 0.0 <= localisation_accuracy <= 1.0:
        raise ValueError(f"localisation_accuracy must lie in [0, 1], got {localisation_accuracy}")
    present = (shares > 0).sum(axis=1)
    classes = np.maximum(present, 1)
    correction_seconds = np.array([model.seconds("correction", int(m)) for m in classes])
    multiclass_seconds = np.array([model.seconds("multiclass", int(m)) for m in classes])
    correction_gain = (shares.max(axis=1) - agreement) / correction_seconds
    multiclass_gain = (localisation_accuracy - agreement) / multiclass_seconds
    return (present >= 2) & (multiclass_gain > correction_gain)
