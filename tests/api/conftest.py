"""The web layer's tests run on both backends: the embedded FAISS index, and a real Milvus server on 127.0.0.1
(milvus-lite, started by `tests/milvus_fixture.py` unless one already answers on port 19530).

Every other fixture (the session index, clients, index copies, live servers) comes from `tests/fixtures.py`.
"""

from __future__ import annotations

import os

import pytest

from tests.fixtures import *  # this folder's own instances of the shared fixtures

BACKENDS = ("faiss", "milvus")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict:
    """Settings overrides selecting the backend under test."""
    if request.param == "faiss":
        return {}
    from tests.milvus_fixture import ensure_milvus_server

    port = int(os.environ.get("ZHQA_TEST_MILVUS_PORT", "19530"))
    return {"backend": "milvus", "milvus_uri": ensure_milvus_server(port)}
