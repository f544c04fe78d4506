"""Choosing a round's queries: score every open superpixel, take the best, and mix in the audits.

A superpixel is *open* while no query has been made about it. The round's model scores every
open superpixel with the method's acquisition from its representative pixel (the diversified
pool); the top ``queries_per_round`` minus the audits become correction queries, each
labelling its expansion region (eq. 12) when answered. With a budget in seconds, queries are
taken in rank order while their estimated seconds fit what the audits leave of it. The audits
chosen at the end of the last round (:mod:`alc_backend.rounds.audits`) are spread evenly
through the round's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from alc_backend import IGNORE_INDEX
from alc_backend.engine.acquisition import abc_class_weights, label_confidence, label_pixel_counts, score_superpixels
from alc_backend.engine.arrays import as_tensor, to_host
from alc_backend.engine.audit import interleaved_ranks
from alc_backend.engine.expansion import expansion_region
from alc_backend.engine.pool import class_argmax, dominant_classes, region_representative, representative_pixels
from alc_backend.engine.query_cost import (
    PAPER_COST_MODEL,
    CostModel,
    predicted_class_shares,
    prefer_multiclass,
    queries_within,
)
from alc_backend.engine.segments import Segments
from alc_backend.rounds.audits import Proposal
from alc_backend.rounds.images import Query, QueryKind, RoundImages, flat_runs
from alc_backend.rounds.settings import RoundSettings
from alc_backend.rounds.training import device_probabilities


@dataclass(frozen=True)
class ScoredPool:
    """The scored diversified pool of one round: one entry per open superpixel.

    ``image`` ``(N,)`` index into the round's keys, ``superpixel`` ``(N,)`` id, ``score``
    ``(N,)`` acquisition score, ``predicted_classes`` ``(N,)`` how many classes the model
    predicts in the superpixel, ``multiclass`` ``(N,)`` whether it would be asked a multi-class
    query; ``representatives`` maps each key to its ``(K, 2)`` representative pixels (every
    superpixel's, open or not).
    """

    image: np.ndarray
    superpixel: np.ndarray
    score: np.ndarray
    predicted_classes: np.ndarray
    multiclass: np.ndarray
    representatives: dict[str, np.ndarray]

    def kind(self, entry: int) -> QueryKind:
        """The kind of query entry ``entry`` would be asked."""
        return "multiclass" if self.multiclass[entry] else "correction"

    def top(self, count: int) -> np.ndarray:
        """Indices of the ``count`` highest scores; ties go to the earlier entry."""
        return np.argsort(-self.score, kind="stable")[: max(count, 0)]


@dataclass(frozen=True)
class QueryChoice:
    """A round's queries in the order they should be answered, the pool they came from, and image scores.

    ``image_scores`` is each image's mean model probability of its current labels (labelled
    pixels only), in [0, 1]: the lower, the more the image needs a look.
    """

    queries: list[Query]
    pool: ScoredPool
    image_scores: dict[str, float]


def choose_queries(
    images: RoundImages,
    model: torch.nn.Module,
    settings: RoundSettings,
    round_index: int,
    audits: Sequence[Proposal] = (),
    cost_model: CostModel = PAPER_COST_MODEL,
) -> QueryChoice:
    """Score the open superpixels with ``model`` and choose round ``round_index``'s queries.

    Args:
        images: the round's images.
        model: the model trained after the previous round.
        settings: the method, budget and acquisition parameters.
        round_index: the round, ``>= 1`` (seeds the ``random`` acquisition).
        audits: the proposals to audit in this round; their superpixels are not asked about twice.
        cost_model: seconds per query, for a budget in seconds (the backend's measured medians
            once it has enough answers; the user study's table otherwise).

    Returns:
        The :class:`QueryChoice`; ``queries`` holds at most ``settings.queries_per_round``
        queries, or (a budget in seconds) queries whose estimated seconds sum to at most that.
    """
    keys = list(images.keys())
    acquisition = settings.acquisition
    rng = np.random.default_rng([settings.seed, round_index])
    audit_rng = np.random.default_rng([settings.seed, round_index, 2])
    asked = {key: images.asked(key) for key in keys}
    claimed = {(target.record.image, target.record.superpixel) for target in audits}
    class_weights = _abc_weights(images, keys, asked, settings) if acquisition == "abc" else None
    needs_statistics = acquisition in ("pixbal", "classbal")
    prior, counts = _class_statistics(images, model, keys, settings) if needs_statistics else (None, None)
    targets: dict[str, list[int]] = {}
    for index, target in enumerate(audits):
        targets.setdefault(target.record.image, []).append(index)
    audit_queries: dict[int, Query] = {}
    audit_seconds: dict[int, float] = {}
    parts: list[tuple[np.ndarray, ...]] = []
    representatives: dict[str, np.ndarray] = {}
    image_scores: dict[str, float] = {}
    for image_index, (key, probs) in enumerate(device_probabilities(images, model, keys, settings)):
        superpixels = images.superpixels(key)
        labels = images.labels(key)
        superpixel_map, label_map = as_tensor(superpixels, probs.device), as_tensor(labels, probs.device)
        segments = Segments.from_map(superpixel_map)
        predicted = class_argmax(probs.reshape(probs.shape[0], -1)).reshape(label_map.shape)
        representatives[key] = to_host(
            representative_pixels(probs, superpixel_map, segments=segments, predicted=predicted)
        )
        scores = score_superpixels(
            acquisition,
            probs,
            label_map,
            superpixel_map,
            eps=settings.eps,
            rng=rng,
            representatives=representatives[key],
            class_counts=counts,
            class_weights=class_weights,
            class_prior=prior,
            nu=settings.pixbal_nu,
            segments=segments,
            predicted=predicted,
        )
        scores = to_host(scores)
        labelled = label_map != IGNORE_INDEX
        confidence = label_confidence(probs, label_map)
        image_scores[key] = float(confidence[labelled].mean()) if bool(labelled.any()) else 0.0
        is_open = np.ones(scores.size, dtype=bool)
        closed = asked[key] | {s for image, s in claimed if image == key}
        is_open[[s for s in sorted(closed) if s < scores.size]] = False  # ids of older superpixels may be gone
        ids = np.flatnonzero(is_open)
        shares = predicted_class_shares(predicted, superpixel_map, probs.shape[0], segments)
        predicted_counts = (shares > 0).sum(axis=1)
        multiclass = _asks_multiclass(settings, cost_model, shares, predicted, label_map, segments)
        parts.append((np.full(ids.size, image_index), ids, scores[ids], predicted_counts[ids], multiclass[ids]))
        for index in targets.get(key, []):
            audit_queries[index] = _audit_query(audits[index], probs, predicted, labels, superpixels, audit_rng)
            audit_seconds[index] = cost_model.seconds("correction", audit_queries[index].predicted_classes)
    pool = _pool(parts, representatives)
    chosen_audits = [audit_queries[index] for index in sorted(audit_queries)]
    if settings.budget_unit == "seconds":
        order = pool.top(pool.score.size)
        seconds = [cost_model.seconds(pool.kind(e), int(pool.predicted_classes[e])) for e in order]
        left = max(settings.queries_per_round - sum(audit_seconds.values()), 0.0)
        chosen = order[: queries_within(np.asarray(seconds), left)]
    else:
        chosen = pool.top(settings.queries_per_round - len(chosen_audits))
    regions = _region_queries(images, model, settings, keys, pool, chosen)
    return QueryChoice(_interleave(regions, chosen_audits), pool, image_scores)


def _asks_multiclass(
    settings: RoundSettings,
    cost_model: CostModel,
    shares: np.ndarray,
    predicted: torch.Tensor,
    labels: torch.Tensor,
    segments: Segments,
) -> np.ndarray:
    """``(K,)`` bool: which superpixels of one image the method would ask a multi-class query.

    ``shares`` is ``(K, C)``, each superpixel's predicted class shares; ``predicted`` and
    ``labels`` the image's ``(H, W)`` maps and ``segments`` its superpixels, on the model's device.
    """
    count = shares.shape[0]
    if settings.query != "auto":
        return np.full(count, settings.query == "multiclass")
    agreement = to_host(segments.mean((labels.to(torch.int64) == predicted).reshape(-1)))
    return prefer_multiclass(shares, agreement, cost_model, settings.multiclass_accuracy)


def _pool(parts: list[tuple[np.ndarray, ...]], representatives: dict[str, np.ndarray]) -> ScoredPool:
    """The pool from per-image ``(image index, superpixel ids, scores, predicted class counts, multi-class)`` parts."""
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return ScoredPool(empty, empty, np.zeros(0), empty, np.zeros(0, dtype=bool), representatives)
    image, superpixel, score, predicted, multiclass = (np.concatenate(column) for column in zip(*parts, strict=True))
    return ScoredPool(
        image.astype(np.int64),
        superpixel.astype(np.int64),
        score,
        predicted.astype(np.int64),
        multiclass.astype(bool),
        representatives,
    )


def _region_queries(
    images: RoundImages,
    model: torch.nn.Module,
    settings: RoundSettings,
    keys: list[str],
    pool: ScoredPool,
    chosen: np.ndarray,
) -> list[Query]:
    """Correction or multi-class queries (as the pool says) for the pool entries ``chosen``, in that order.

    A correction query's region is the expansion region of its representative pixel; with
    ``eps > 0`` that needs the model's probabilities again: they are recomputed for the images
    that hold a chosen superpixel (one at a time). A multi-class query asks about the whole
    superpixel.
    """
    by_image: dict[str, list[int]] = {}
    for entry in chosen:
        by_image.setdefault(keys[int(pool.image[entry])], []).append(int(entry))
    made: dict[int, Query] = {}
    with_probs = settings.eps > 0 and not pool.multiclass[chosen].all()
    ordered = [key for key in keys if key in by_image]
    no_probs = ((key, None) for key in ordered)
    for key, probs in device_probabilities(images, model, ordered, settings) if with_probs else no_probs:
        superpixels = images.superpixels(key)
        labels = images.labels(key)
        for entry in by_image[key]:
            superpixel = int(pool.superpixel[entry])
            row, col = (int(value) for value in pool.representatives[key][superpixel])
            kind = pool.kind(entry)
            eps = settings.eps if kind == "correction" else 0.0
            region = expansion_region(probs, superpixels, superpixel, (row, col), eps)
            made[entry] = Query(
                image=key,
                superpixel=superpixel,
                row=row,
                col=col,
                proposed=int(labels[row, col]),
                label_before=_majority(labels[region]),
                region=flat_runs(region),
                score=float(pool.score[entry]),
                kind=kind,
                predicted_classes=int(pool.predicted_classes[entry]),
            )
    return [made[int(entry)] for entry in chosen]


def _audit_query(
    target: Proposal,
    probs: torch.Tensor,
    predicted: torch.Tensor,
    labels: np.ndarray,
    superpixels: np.ndarray,
    rng: np.random.Generator,
) -> Query:
    """The audit of ``target``'s change, its class proposed.

    A change of a whole superpixel is asked about as its superpixel, at its representative
    pixel, like a correction query. A change of scattered pixels is asked about at one of them
    drawn at random: the pixels such a change touches are not alike (boundaries, small
    objects), and its most typical pixel is the one most likely right, so only a random one
    makes the audited share an unbiased estimate of the share of changed pixels that are right.
    ``probs`` ``(C, H, W)`` and ``predicted`` ``(H, W)`` are the model's, on its device.
    """
    record = target.record
    region = np.zeros(labels.shape, dtype=bool)
    flat = region.reshape(-1)
    for start, length, _ in record.runs:
        flat[start : start + length] = True
    if target.whole_superpixel:
        region |= superpixels == record.superpixel
        row, col = region_representative(probs, region)
    else:
        row, col = (int(v) for v in np.divmod(int(rng.choice(np.flatnonzero(flat))), labels.shape[1]))
    return Query(
        image=record.image,
        superpixel=record.superpixel,
        row=row,
        col=col,
        proposed=record.new_class,
        label_before=_majority(labels[region]),
        region=flat_runs(region),
        kind="audit",
        corrector=record.corrector,
        audited_round=record.round,
        predicted_classes=int(torch.unique(predicted[as_tensor(region, predicted.device)]).numel()),
    )


def _interleave(corrections: list[Query], audits: list[Query]) -> list[Query]:
    """One list in rank order: the audits at evenly spread ranks, the correction queries in between."""
    total = len(corrections) + len(audits)
    audit_ranks = set(interleaved_ranks(total, len(audits)).tolist())
    pending_audits, pending_corrections = iter(audits), iter(corrections)
    return [next(pending_audits) if rank in audit_ranks else next(pending_corrections) for rank in range(total)]


def _majority(values: np.ndarray) -> int:
    """The most common of uint8 ``values`` (255 counts as a value; ties to the lower one)."""
    return int(np.bincount(values.ravel(), minlength=IGNORE_INDEX + 1).argmax())


def _abc_weights(
    images: RoundImages, keys: list[str], asked: dict[str, set[int]], settings: RoundSettings
) -> np.ndarray:
    """``(C,)`` ABC weights from the label counts of the superpixels nobody has been asked about."""
    counts = np.zeros(images.num_classes, dtype=np.int64)
    for key in keys:
        superpixels = images.superpixels(key)
        is_open = ~np.isin(superpixels, sorted(asked[key]))
        counts += label_pixel_counts(images.labels(key), images.num_classes, is_open)
    return abc_class_weights(counts, settings.abc_uniform)


def _class_statistics(
    images: RoundImages, model: torch.nn.Module, keys: list[str], settings: RoundSettings
) -> tuple[np.ndarray, np.ndarray]:
    """``(C,)`` mean softmax over every pixel (PixBal's prior) and ``(C,)`` superpixels per dominant class.

    Each image's map is reduced on the model's device; only ``C`` values per image reach the host.
    """
    num_classes = images.num_classes
    total = np.zeros(num_classes)
    counts = np.zeros(num_classes, dtype=np.int64)
    pixels = 0
    for key, probs in device_probabilities(images, model, keys, settings):
        total += to_host(probs.reshape(num_classes, -1).to(torch.float64).sum(dim=1))
        pixels += probs.shape[1] * probs.shape[2]
        counts += np.bincount(to_host(dominant_classes(probs, images.superpixels(key))), minlength=num_classes)
    return total / max(pixels, 1), counts
