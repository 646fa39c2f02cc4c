"""The fixtures the web-layer and reliability tests share: one index of the sample corpus per session, apps and
servers over it.

A folder's conftest.py takes them with `from tests.fixtures import *`, so that each folder gets its own session
instances: the API tests override `backend` to run on FAISS and on Milvus, and a session-scoped fixture cached for
one folder's backend must never serve another folder's tests.

The index uses the weight-free hashing embedder. Read-only tests share one loaded service; tests that add or
delete documents get a copy of the index (`copy_settings`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.deps import build_service
from api.main import create_app
from qa.config import Settings
from qa.service import QAService
from tests.support import backend_of, live_server, make_settings, new_collection

__all__ = ["backend", "base_index", "client", "copy_settings", "index_copy", "make_client", "serve_app",
           "server_url", "service", "settings"]


@pytest.fixture(scope="session")
def backend() -> dict:
    """Settings overrides selecting the backend under test: none, the embedded FAISS index."""
    return {}


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, backend: dict) -> Settings:
    """Settings of the session index: the sample corpus indexed once; never modified (copy it to change documents)."""
    overrides = {**backend, "milvus_collection": new_collection("base")} if backend else {}
    settings = make_settings(tmp_path_factory.mktemp("base") / "index", **overrides)
    build_service(settings).open(list(settings.corpus))
    return settings


@pytest.fixture(scope="session")
def base_index(settings: Settings) -> Path:
    return settings.index_dir


@pytest.fixture(scope="session")
def service(settings: Settings) -> QAService:
    """A loaded service over the shared index, for read-only use."""
    svc = build_service(settings)
    svc.load()
    return svc


@pytest.fixture(scope="session")
def client(settings: Settings, service: QAService) -> Iterator[TestClient]:
    """A client of an app over the shared service (lifespan run); do not add or delete documents with it."""
    with TestClient(create_app(settings, service=service)) as test_client:
        yield test_client


@pytest.fixture
def copy_settings(settings: Settings, tmp_path: Path) -> Settings:
    """Settings of a private copy of the session index, for a test that changes documents."""
    target = tmp_path / "index"
    shutil.copytree(settings.index_dir, target)
    if settings.backend != "milvus":
        return settings.model_copy(update={"index_dir": target})
    copy = settings.model_copy(update={"index_dir": target, "milvus_collection": new_collection("copy")})
    build_service(copy).open(list(copy.corpus))  # vectors come from the copied embedding cache
    return copy


@pytest.fixture
def index_copy(copy_settings: Settings) -> Path:
    return copy_settings.index_dir


@pytest.fixture
def make_client(copy_settings: Settings) -> Callable[..., object]:
    """`with make_client(**settings_overrides) as client:` a fresh app over this test's index copy."""

    @contextmanager
    def factory(**overrides) -> Iterator[TestClient]:
        chosen = backend_of(copy_settings)
        if "index_dir" in overrides and copy_settings.backend == "milvus":
            chosen["milvus_collection"] = new_collection("other")  # another index folder: another Milvus index
        settings = make_settings(overrides.pop("index_dir", copy_settings.index_dir), **{**chosen, **overrides})
        with TestClient(create_app(settings)) as test_client:
            yield test_client

    return factory


@pytest.fixture(scope="session")
def serve_app() -> Callable[[object], object]:
    """`with serve_app(app) as base_url:` runs an app on a real port for the test's duration."""
    return live_server


@pytest.fixture(scope="session")
def server_url(settings: Settings, service: QAService) -> Iterator[str]:
    """Base URL of a real HTTP server over the shared service (for the openai client and the browser)."""
    with live_server(create_app(settings, service=service)) as url:
        yield url
