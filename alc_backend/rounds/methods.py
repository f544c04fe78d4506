"""Method names: the kind of query, an acquisition function and optional automatic correctors.

A method is written ``[QUERY:]ACQUISITION[+CORRECTOR...]``, e.g. ``sim``, ``abc+lcm``,
``multiclass:pixbal`` or ``auto:abc+lcm``. The query kind is how the annotator answers:
``correction`` (the default; the region's class is shown and changed only if wrong),
``multiclass`` (every class present in the region is ticked), or ``auto``: each region gets
whichever of the two is expected to be worth more per second
(:func:`alc_backend.engine.query_cost.prefer_multiclass`). The acquisition chooses which
superpixels the annotator is asked about; auto-correctors then relabel superpixels nobody asked
about, after each round's answers. Auto-correctors register themselves in
:data:`AUTO_CORRECTORS` by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

from alc_backend.engine.acquisition import ACQUISITION_METHODS

QueryMode = Literal["correction", "multiclass", "auto"]
QUERY_MODES: tuple[QueryMode, ...] = cast("tuple[QueryMode, ...]", get_args(QueryMode))
DEFAULT_QUERY_MODE: QueryMode = "correction"

AUTO_CORRECTORS: dict[str, str] = {
    "lcm": "Label Correction Module (A2LC): a classifier of the answers relabels similar superpixels",
    "plar": "pseudo-label auto-refinement: doubted pixels take the verified class nearest in feature space",
    "expand": "label expansion (eq. 13 of the multi-class paper): a mixed region's unanswered neighbours take "
    "the ticked class whose prototype they resemble past its threshold",
}
"""Auto-corrector name -> one-line description; applied in the order the method names them."""


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method name; ``name`` is its canonical spelling (the default query kind left out)."""

    name: str
    query: QueryMode
    acquisition: str
    correctors: tuple[str, ...]


def parse_method(name: str) -> MethodSpec:
    """Split ``[QUERY:]ACQUISITION[+CORRECTOR...]`` and check every part is known.

    Raises:
        ValueError: naming the unknown part and the known choices.
    """
    query, _, rest = name.strip().rpartition(":")
    query = query.strip() or DEFAULT_QUERY_MODE
    if query not in QUERY_MODES:
        raise ValueError(f"method {name!r}: unknown query kind {query!r}; choose from {', '.join(QUERY_MODES)}")
    acquisition, *correctors = [part.strip() for part in rest.strip().split("+")]
    if acquisition not in ACQUISITION_METHODS:
        raise ValueError(
            f"method {name!r}: unknown acquisition {acquisition!r}; choose from {', '.join(ACQUISITION_METHODS)}"
        )
    for corrector in correctors:
        if corrector not in AUTO_CORRECTORS:
            known = ", ".join(AUTO_CORRECTORS) or "none are available yet"
            raise ValueError(f"method {name!r}: unknown auto-corrector {corrector!r} ({known})")
    if len(set(correctors)) != len(correctors):
        raise ValueError(f"method {name!r} names an auto-corrector twice")
    body = "+".join([acquisition, *correctors])
    return MethodSpec(
        name=body if query == DEFAULT_QUERY_MODE else f"{query}:{body}",
        query=cast(QueryMode, query),
        acquisition=acquisition,
        correctors=tuple(correctors),
    )


def with_query(name: str, query: str) -> str:
    """The method ``name`` asking queries of kind ``query``: its canonical name with that prefix.

    Raises:
        ValueError: for an unknown kind, or when ``name`` already names another kind.
    """
    if query not in QUERY_MODES:
        raise ValueError(f"unknown query kind {query!r}; choose from {', '.join(QUERY_MODES)}")
    method = parse_method(name)
    if ":" in name and method.query != query:
        raise ValueError(f"the method {name!r} asks {method.query} queries, not {query}")
    body = "+".join([method.acquisition, *method.correctors])
    return parse_method(f"{query}:{body}").name
