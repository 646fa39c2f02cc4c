"""Fixtures for the web layer: one index of the sample corpus per session (hashing embedder), clients over it.

Every API test runs on both backends: the embedded FAISS index, and a real Milvus server on 127.0.0.1 (milvus-lite,
started by `tests/milvus_fixture.py` unless one already answers on port 19530).
Read-only tests share one loaded service; tests that add or delete documents get a copy of the index folder (and,
on Milvus, their own collections filled with the sample corpus).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import build_service
from api.main import create_app
from qa.config import Settings
from qa.service import QAService

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "data" / "corpus"
BACKENDS = ("faiss", "milvus")
_collections = itertools.count()


def make_settings(index_dir: Path, **overrides) -> Settings:
    """Test settings: hashing embedder, the sample corpus, no .env file, no API key unless given."""
    values = {"index_dir": index_dir, "embedder": "hashing", "corpus": [CORPUS], "api_key": None,
              "read_only": False, "llm_base_url": None, **overrides}
    return Settings(_env_file=None, **values)


def _collection(label: str) -> str:
    return f"t{os.getpid()}_{label}_{next(_collections)}"


def backend_of(settings: Settings) -> dict:
    """The settings that choose the backend, to carry over into settings made for the same index."""
    return {"backend": settings.backend, "milvus_uri": settings.milvus_uri,
            "milvus_collection": settings.milvus_collection}


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict:
    """Settings overrides selecting the backend under test."""
    if request.param == "faiss":
        return {}
    from tests.milvus_fixture import ensure_milvus_server

    port = int(os.environ.get("ZHQA_TEST_MILVUS_PORT", "19530"))
    return {"backend": "milvus", "milvus_uri": ensure_milvus_server(port)}


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, backend: dict) -> Settings:
    """Settings of the session index: the sample corpus indexed once; never modified (copy it to change documents)."""
    overrides = {**backend, "milvus_collection": _collection("base")} if backend else {}
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
    copy = settings.model_copy(update={"index_dir": target, "milvus_collection": _collection("copy")})
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
            chosen["milvus_collection"] = _collection("other")  # another index folder: another Milvus index
        settings = make_settings(overrides.pop("index_dir", copy_settings.index_dir), **{**chosen, **overrides})
        with TestClient(create_app(settings)) as test_client:
            yield test_client

    return factory


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port in a background thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def serve_app() -> Callable[[FastAPI], object]:
    """`with serve_app(app) as base_url:` runs an app on a real port for the test's duration."""
    return live_server


@pytest.fixture(scope="session")
def server_url(settings: Settings, service: QAService) -> Iterator[str]:
    """Base URL of a real HTTP server over the shared service (for the openai client and the browser)."""
    with live_server(create_app(settings, service=service)) as url:
        yield url
