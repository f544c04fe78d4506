"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.local_server import LabelStudioServer


@pytest.fixture(scope="session")
def label_studio() -> Iterator[LabelStudioServer]:
    """One real Label Studio server for the whole test session, started on first use and removed at the end."""
    server = LabelStudioServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def client(label_studio: LabelStudioServer) -> LabelStudioClient:
    """A client of the session's Label Studio, as its admin user."""
    return label_studio.client()
