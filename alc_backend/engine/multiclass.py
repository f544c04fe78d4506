"""Multi-class label queries (Hwang et al., "Active Learning for Semantic Segmentation with Multi-class Label Query").

A multi-class query shows the annotator one superpixel and asks for *every* class in it. This
module handles the answers, on plain arrays:

- :func:`multiclass_oracle_answer` simulates the annotator from the ground truth (Appendix B,
  "Label generation"): every labelled class of the region, except classes seen only in a band
  along the region's boundary, where a person looking at the marked region would miss them.
- :func:`prototype_pixels` finds the prototypical pixel of each answered class (eq. 8).
- :func:`localise_region` turns the answer into pixel labels inside the region: each pixel takes
  the class of the most similar prototype (eq. 11), and each class gets its prototype-adaptive
  threshold (eq. 12); :func:`keep_agreeing_labels` then keeps the region's current label
  wherever it is one of the answered classes.
- :func:`expand_region` propagates those labels to pixels of neighbouring unlabelled superpixels
  that are similar enough to a prototype (eq. 13); :func:`neighbouring_superpixels` finds them.

Similarities are cosines of feature vectors; a zero feature vector has cosine 0 to everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from alc_backend import IGNORE_INDEX
from alc_backend.engine.oracle import majority_true_class
from alc_backend.engine.pool import unit_columns

ORACLE_BAND = 5
"""Side of the square structuring element that widens a region's boundary (the paper's 5×5 kernel)."""

_FOUR_NEIGHBOURS = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class LocalisedRegion:
    """A region's multi-class answer turned into pixel labels (eqs. 8, 11, 12).

    Attributes:
        classes: the answered classes, ascending.
        labels: ``(H, W)`` uint8; each pixel of the region holds its class (eq. 11), every other
            pixel ``IGNORE_INDEX``.
        prototype_pixels: ``(row, col)`` of each class's prototypical pixel (eq. 8), in the order
            of ``classes``; ``None`` when the region was localised without probabilities.
        prototypes: ``(K, D)`` float32 feature vector at each prototypical pixel, as given (not
            normalised); ``None`` when localised without features.
        thresholds: ``(K,)`` float64 prototype-adaptive threshold ``alpha_c`` of each class
            (eq. 12): the median cosine to its prototype over the region's pixels labelled ``c``;
            ``+inf`` for a class no pixel took, so that it never expands. ``None`` when
            localised without features.
    """

    classes: tuple[int, ...]
    labels: np.ndarray
    prototype_pixels: tuple[tuple[int, int], ...] | None
    prototypes: np.ndarray | None
    thresholds: np.ndarray | None


def multiclass_oracle_answer(
    ground_truth: np.ndarray, superpixels: np.ndarray, superpixel_id: int, band: int = ORACLE_BAND
) -> tuple[int, ...]:
    """The classes a simulated annotator ticks for one superpixel (Appendix B, "Label generation").

    The region's boundary is its pixels with a 4-neighbour in another superpixel; the image edge
    is *not* a boundary (no other region is drawn there). The boundary band is the region's
    pixels inside the binary dilation of the boundary by a ``band × band`` square, i.e. within
    Chebyshev distance ``band // 2`` of a boundary pixel (``band = 5``: the outer 3 pixels). A
    class is ticked when it labels a pixel of the region outside the band; classes seen only in
    the band are left out.

    When no labelled pixel lies outside the band (a small or thin region, or an unlabelled
    interior), the answer is the region's majority labelled class alone (ties: lowest class).

    Args:
        ground_truth: ``(H, W)`` true classes, ``IGNORE_INDEX`` (255) = unlabelled.
        superpixels: ``(H, W)`` integer ids.
        superpixel_id: the queried superpixel; must cover at least one pixel.
        band: odd side of the square that widens the boundary, in pixels; ``0`` turns the
            exclusion off (every labelled class of the region is ticked).

    Returns:
        the ticked classes, ascending; empty when the region has no labelled pixel.
    """
    if ground_truth.ndim != 2:
        raise ValueError(f"ground_truth must be an (H, W) array, got shape {ground_truth.shape}")
    if ground_truth.shape != superpixels.shape:
        raise ValueError(
            f"ground_truth is {ground_truth.shape[0]}×{ground_truth.shape[1]} (H×W) but superpixels is "
            f"{'×'.join(str(n) for n in superpixels.shape)}"
        )
    if band < 0 or (band > 0 and band % 2 == 0):
        raise ValueError(f"band must be 0 or an odd number of pixels, got {band}")
    member = _member(superpixels, superpixel_id)
    window = _padded_box(member)
    region = member[window]
    truth = ground_truth[window]
    labelled = truth != IGNORE_INDEX
    if not np.any(region & labelled):
        return ()
    kept = region & labelled
    if band > 0:
        # border_value=1: outside the image counts as inside the region, so the image edge is no boundary
        boundary = region & ~ndimage.binary_erosion(region, structure=_FOUR_NEIGHBOURS, border_value=1)
        in_band = ndimage.binary_dilation(boundary, structure=np.ones((band, band), dtype=bool))
        kept &= ~in_band
    if not np.any(kept):
        return (majority_true_class(truth, region),)
    return tuple(int(c) for c in np.unique(truth[kept]))


def prototype_pixels(probs: np.ndarray, member: np.ndarray, classes: Sequence[int]) -> dict[int, tuple[int, int]]:
    """The prototypical pixel of each class in a region (eq. 8).

    ``x*_{s,c} = argmax_{x in s} P(y = c | x)``: the region's pixel most confident in class ``c``.

    Args:
        probs: ``(C, H, W)`` softmax probabilities.
        member: ``(H, W)`` bool, the region ``s``; at least one pixel.
        classes: the classes to find prototypes for, each in ``0..C-1``, no repeats.

    Returns:
        ``{c: (row, col)}`` for each class, inside ``member``; ties: first pixel in raster order.
    """
    _check_member(member)
    _check_scores("probs", probs, "member", member)
    checked = _check_classes(classes, probs.shape[0])
    rows, cols = np.nonzero(member)
    found: dict[int, tuple[int, int]] = {}
    for c in checked:
        best = int(np.argmax(probs[c, rows, cols]))  # first maximum = first in raster order
        found[c] = (int(rows[best]), int(cols[best]))
    return found


def keep_agreeing_labels(localised: np.ndarray, current: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """A mixed region's labels: the current label where it is one of the answered ``classes``, the
    localised one elsewhere in the region.

    An answer rules out the classes it did not tick, so a current label outside ``classes`` is
    wrong and takes the localised class; a current label among them may be right, and is kept.

    Args:
        localised: ``(H, W)`` uint8, the region's localised labels (:func:`localise_region`),
            ``IGNORE_INDEX`` outside the region.
        current: ``(H, W)`` uint8 labels before the answer.
        classes: the answered classes.

    Returns:
        ``(H, W)`` uint8, ``IGNORE_INDEX`` outside the region.
    """
    if localised.shape != current.shape:
        raise ValueError(f"localised labels are {localised.shape} but the current labels are {current.shape}")
    region = localised != IGNORE_INDEX
    keep = region & np.isin(current, np.asarray(classes, dtype=np.int64))
    return np.where(keep, current, localised).astype(np.uint8)


def localise_region(
    features: np.ndarray | None, probs: np.ndarray | None, member: np.ndarray, classes: Sequence[int]
) -> LocalisedRegion:
    """Pixel labels inside a region answered with several classes (eqs. 8, 11, 12).

    The prototype of class ``c`` is the feature vector at its prototypical pixel (eq. 8). Each
    pixel of the region takes the class whose prototype has the largest cosine similarity to the
    pixel's feature vector (eq. 11; ties: lowest class). Each class's threshold is the median
    cosine to its prototype over the pixels that took it (eq. 12; the median of an even count is
    the mean of the two middle values); ``+inf`` when no pixel took it, which can only happen when
    two classes share a prototype direction.

    With a single class every pixel of the region takes it. ``features`` and ``probs`` may then both
    be ``None``: the result has labels but no prototypes, so it cannot be expanded.

    Args:
        features: ``(D, H, W)`` float feature map ``f``; ``None`` only with a single class.
        probs: ``(C, H, W)`` softmax probabilities (for eq. 8); ``None`` only with a single class,
            and exactly when ``features`` is.
        member: ``(H, W)`` bool, the region; at least one pixel.
        classes: the answered classes, no repeats; in ``0..C-1`` (``0..254`` without ``probs``).

    Returns:
        the :class:`LocalisedRegion`, its classes ascending.
    """
    _check_member(member)
    if (features is None) != (probs is None):
        raise ValueError("pass both features and probs, or (for a single class) neither")
    num_classes = IGNORE_INDEX if probs is None else probs.shape[0]
    if probs is not None:
        _check_scores("probs", probs, "member", member)
    if features is not None:
        _check_scores("features", features, "member", member)
    checked = _check_classes(classes, num_classes)
    labels = np.full(member.shape, IGNORE_INDEX, dtype=np.uint8)
    if features is None or probs is None:
        if len(checked) > 1:
            raise ValueError(f"localising {len(checked)} classes needs features and probs")
        labels[member] = checked[0]
        return LocalisedRegion(classes=checked, labels=labels, prototype_pixels=None, prototypes=None, thresholds=None)
    found = prototype_pixels(probs, member, checked)
    pixels = tuple(found[c] for c in checked)
    prototypes = np.stack([features[:, row, col] for row, col in pixels]).astype(np.float32)  # (K, D)
    rows, cols = np.nonzero(member)
    similarity = _cosines(prototypes, features[:, rows, cols])  # (K, n)
    assigned = np.argmax(similarity, axis=0)  # first maximum = lowest class
    labels[rows, cols] = np.asarray(checked, dtype=np.uint8)[assigned]
    thresholds = np.full(len(checked), np.inf)
    for k in range(len(checked)):
        taken = similarity[k, assigned == k]
        if taken.size:
            thresholds[k] = float(np.median(taken))
    return LocalisedRegion(
        classes=checked, labels=labels, prototype_pixels=pixels, prototypes=prototypes, thresholds=thresholds
    )


def expand_region(features: np.ndarray, localised: LocalisedRegion, target: np.ndarray) -> np.ndarray:
    """Labels propagated from a localised region to the pixels of ``target`` (eq. 13).

    A pixel's relevant classes are those whose prototype it is more similar to than the class's
    threshold: ``Y(x) = {c : cos(f(x), prototype_c) > alpha_c}``. A pixel with at least one
    relevant class takes the relevant class of largest cosine (ties: lowest class); other pixels,
    and every pixel outside ``target``, stay ``IGNORE_INDEX``.

    Args:
        features: ``(D, H, W)`` float feature map, the one the region was localised with.
        localised: the region, from :func:`localise_region` with features.
        target: ``(H, W)`` bool, the pixels to label: normally the union of the region's
            unlabelled neighbouring superpixels (:func:`neighbouring_superpixels`).

    Returns:
        ``(H, W)`` uint8 labels, ``IGNORE_INDEX`` where nothing was propagated.
    """
    if localised.prototypes is None or localised.thresholds is None:
        raise ValueError("the region was localised without features; localise it with features and probs to expand it")
    if target.shape != localised.labels.shape or target.dtype != bool:
        raise ValueError(
            f"target must be an (H, W) = {localised.labels.shape} bool array, got {target.dtype} {target.shape}"
        )
    _check_scores("features", features, "target", target)
    if features.shape[0] != localised.prototypes.shape[1]:
        raise ValueError(
            f"features have {features.shape[0]} channels but the prototypes {localised.prototypes.shape[1]}"
        )
    expanded = np.full(target.shape, IGNORE_INDEX, dtype=np.uint8)
    rows, cols = np.nonzero(target)
    if rows.size == 0:
        return expanded
    similarity = _cosines(localised.prototypes, features[:, rows, cols])  # (K, n)
    relevant = similarity > localised.thresholds[:, None]
    best = np.argmax(np.where(relevant, similarity, -np.inf), axis=0)
    has_class = relevant.any(axis=0)
    classes = np.asarray(localised.classes, dtype=np.uint8)
    expanded[rows[has_class], cols[has_class]] = classes[best[has_class]]
    return expanded


def neighbouring_superpixels(superpixels: np.ndarray, superpixel_id: int) -> np.ndarray:
    """Ids of the superpixels 4-adjacent to one superpixel (sharing an edge, not only a corner).

    Args:
        superpixels: ``(H, W)`` integer ids.
        superpixel_id: a superpixel covering at least one pixel.

    Returns:
        ``(M,)`` int64 ids, ascending, without ``superpixel_id`` itself.
    """
    member = _member(superpixels, superpixel_id)
    window = _padded_box(member)
    region = member[window]
    ring = ndimage.binary_dilation(region, structure=_FOUR_NEIGHBOURS) & ~region
    return np.unique(superpixels[window][ring]).astype(np.int64)


def _member(superpixels: np.ndarray, superpixel_id: int) -> np.ndarray:
    """``(H, W)`` bool mask of one superpixel, after checking the map and that the id covers a pixel."""
    if superpixels.ndim != 2:
        raise ValueError(f"superpixels must be an (H, W) array, got shape {superpixels.shape}")
    if not np.issubdtype(superpixels.dtype, np.integer):
        raise ValueError(f"superpixel ids must be integers, got dtype {superpixels.dtype}")
    member = superpixels == superpixel_id
    if not member.any():
        raise ValueError(f"superpixel {superpixel_id} covers no pixel")
    return member


def _padded_box(member: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of a non-empty ``(H, W)`` mask, one pixel wider on each side (clipped to the image).

    Morphology on this window equals morphology on the whole image for the mask's pixels and
    their 4-neighbours, at a fraction of the cost for a small region in a large image.
    """
    rows = np.flatnonzero(member.any(axis=1))
    cols = np.flatnonzero(member.any(axis=0))
    height, width = member.shape
    return (
        slice(max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, height)),
        slice(max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, width)),
    )


def _check_member(member: np.ndarray) -> None:
    if member.ndim != 2 or member.dtype != bool:
        raise ValueError(f"member must be an (H, W) bool array, got {member.dtype} {member.shape}")
    if not member.any():
        raise ValueError("member holds no pixel")


def _check_scores(name: str, values: np.ndarray, mask_name: str, mask: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``values`` is ``(N, H, W)`` with ``(H, W)`` = ``mask.shape``."""
    if values.ndim != 3:
        raise ValueError(f"{name} must be an (N, H, W) array, got shape {values.shape}")
    if values.shape[1:] != mask.shape:
        raise ValueError(
            f"{name} is {values.shape[1]}×{values.shape[2]} (H×W) but {mask_name} is {mask.shape[0]}×{mask.shape[1]}"
        )


def _check_classes(classes: Sequence[int], num_classes: int) -> tuple[int, ...]:
    """The classes as ascending ints, after checking they are non-empty, distinct and in ``0..num_classes-1``."""
    checked = [int(c) for c in classes]
    if not checked:
        raise ValueError("classes is empty")
    for c in checked:
        if not 0 <= c < num_classes:
            raise ValueError(f"class {c} is out of range for {num_classes} classes")
        if c >= IGNORE_INDEX:
            raise ValueError(f"class {c} does not fit a uint8 label map below IGNORE_INDEX ({IGNORE_INDEX})")
    repeated = sorted({c for c in checked if checked.count(c) > 1})
    if repeated:
        raise ValueError(f"classes repeat: {repeated}")
    return tuple(sorted(checked))


def _cosines(prototypes: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``(K, n)`` float32 cosine of each of ``(K, D)`` prototypes to each of ``(D, n)`` vectors (0 for zero vectors)."""
    return np.einsum("dk,dn->kn", unit_columns(prototypes.T), unit_columns(vectors))
