"""What an answer writes into its region: one class, or, for a region ticked with several, pixel labels.

An answer with one class labels its whole region with it. A multi-class answer that ticked
several classes is localised (stage 2 of the multi-class paper, eqs. 8 and 11): with the model
that chose the query, each ticked class gets the region's pixel most confident in it as its
prototype, and every pixel of the region whose current label is not a ticked class takes the
class whose prototype's decoder features are most similar to its own; a pixel whose current
label is a ticked class keeps it (the answer changes only what it rules out). The simulation
calls :func:`localise_mixed_answers` after each round's answers, the backend when a mixed answer
arrives (:func:`alc_backend.service.rounds.localise_answers`).
A correction query or an audit ticked with several classes is a mixed answer too: the annotator
flagged its region as holding several classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from alc_backend import IGNORE_INDEX
from alc_backend.engine.multiclass import keep_agreeing_labels, localise_region
from alc_backend.rounds.images import Answer, Query, RoundImages
from alc_backend.rounds.settings import RoundSettings
from alc_backend.rounds.training import probabilities_and_features

Given = tuple[Query, tuple[int, ...]]
"""A query and the classes the annotator gave it: ``()`` no answer, one class, or several (a mixed region)."""


def answer_of(query: Query, classes: tuple[int, ...], round_index: int) -> Answer:
    """The :class:`Answer` of ``classes`` (at least one, ascending) given to ``query`` in round ``round_index``.

    Its ``answer`` is the one class, or 255 when several were ticked; its ``classes`` hold what a
    multi-class query or a mixed answer ticked (empty for a correction query or an audit with one).
    """
    answer = classes[0] if len(classes) == 1 else IGNORE_INDEX
    ticked = query.kind == "multiclass" or len(classes) > 1
    return Answer(query, answer, round_index, classes if ticked else ())


def localise_mixed_answers(
    images: RoundImages, model: torch.nn.Module, settings: RoundSettings, given: Sequence[Given]
) -> dict[int, np.ndarray]:
    """Pixel labels of every answer in ``given`` that ticked several classes.

    Args:
        images: the round's images.
        model: the model that chose the queries (its probabilities find the prototypes, its
            decoder features compare the pixels).
        settings: the inference settings.
        given: the round's queries with their answers.

    Returns:
        ``{index in given: (H, W) uint8 labels}``, each class of the answer inside the query's
        region and 255 outside it; answers with fewer than two classes are not in it.
    """
    mixed: dict[str, list[int]] = {}
    for index, (query, classes) in enumerate(given):
        if len(classes) > 1:
            mixed.setdefault(query.image, []).append(index)
    localised: dict[int, np.ndarray] = {}
    for key, probs, features in probabilities_and_features(images, model, list(mixed), settings, True):
        assert features is not None
        current = images.labels(key)
        for index in mixed[key]:
            query, classes = given[index]
            region = query.region_mask(probs.shape[1:])
            labels = localise_region(features, probs, region, classes).labels
            localised[index] = keep_agreeing_labels(labels, current, classes)
    return localised
