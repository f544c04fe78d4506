"""Method names: an acquisition function plus optional automatic correctors.

A method is written ``ACQUISITION[+CORRECTOR...]``, e.g. ``sim``, ``abc+lcm`` or ``sim+plar``.
The acquisition chooses which superpixels the annotator is asked about; auto-correctors then
relabel superpixels nobody asked about, after each round's answers. Auto-correctors register
themselves in :data:`AUTO_CORRECTORS` by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from alc_backend.engine.acquisition import ACQUISITION_METHODS

AUTO_CORRECTORS: dict[str, str] = {
    "lcm": "Label Correction Module (A2LC): a classifier of the answers relabels similar superpixels",
    "plar": "pseudo-label auto-refinement: doubted pixels take the verified class nearest in feature space",
}
"""Auto-corrector name -> one-line description; applied in the order the method names them."""


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method name."""

    name: str
    acquisition: str
    correctors: tuple[str, ...]


def parse_method(name: str) -> MethodSpec:
    """Split ``ACQUISITION[+CORRECTOR...]`` and check every part is known.

    Raises:
        ValueError: naming the unknown part and the known choices.
    """
    acquisition, *correctors = [part.strip() for part in name.strip().split("+")]
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
    return MethodSpec(name="+".join([acquisition, *correctors]), acquisition=acquisition, correctors=tuple(correctors))
