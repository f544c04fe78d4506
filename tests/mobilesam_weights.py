"""The real MobileSAM checkpoint for slow tests: fetched once from the package index into ``.test-cache/``."""

from __future__ import annotations

from pathlib import Path

from alc_backend.preannotation.weights import MOBILESAM_WEIGHTS, fetch_weights

CACHE = Path(__file__).resolve().parents[1] / ".test-cache"


def mobilesam_checkpoint() -> Path:
    """``.test-cache/mobile_sam.pt``, downloaded (and checked) on first use."""
    return fetch_weights(MOBILESAM_WEIGHTS, CACHE / "mobile_sam.pt", progress=False)
