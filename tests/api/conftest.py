"""Fixtures for the web layer: one index of the sample corpus per session (hashing embedder), clients over it.

Read-only tests share one loaded service; tests that add or delete documents get a copy of the index folder.
"""

from __future__ import annotations

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


def make_settings(index_dir: Path, **overrides) -> Settings:
    """Test settings: hashing embedder, the sample corpus, no .env file, no API key unless given."""
    values = {"index_dir": index_dir, "embedder": "hashing", "corpus": [CORPUS], "api_key": None,
              "read_only": False, "llm_base_url": None, **overrides}
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def base_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus indexed once per session; never modified (copy it to change documents)."""
    index_dir = tmp_path_factory.mktemp("base") / "index"
    settings = make_settings(index_dir)
    build_service(settings).open(list(settings.corpus))
    return index_dir


@pytest.fixture(scope="session")
def settings(base_index: Path) -> Settings:
    return make_settings(base_index)


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
def index_copy(base_index: Path, tmp_path: Path) -> Path:
    """A private copy of the session index for a test that changes documents."""
    target = tmp_path / "index"
    shutil.copytree(base_index, target)
    return target


@pytest.fixture
def make_client(index_copy: Path) -> Callable[..., object]:
    """`with make_client(**settings_overrides) as client:` a fresh app over this test's index copy."""

    @contextmanager
    def factory(**overrides) -> Iterator[TestClient]:
        settings = make_settings(overrides.pop("index_dir", index_copy), **overrides)
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
