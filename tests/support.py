"""Helpers shared by the web-layer and reliability tests: settings for a test index, live servers, `qa serve`
as a subprocess.

Plain functions, importable from any test; the fixtures built on them live in `tests/fixtures.py`.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from qa.config import SAMPLE_CORPUS, Settings

ROOT = Path(__file__).resolve().parent.parent
CORPUS = SAMPLE_CORPUS
QA_BIN = Path(sys.executable).with_name("qa")
_collections = itertools.count()


def make_settings(index_dir: Path, **overrides) -> Settings:
    """Test settings: hashing embedder, the sample corpus, no .env file, no API key unless given.

    Uploads are embedded before they return (`embed_in_background` off), so a test can search them at once by any
    mode; the tests of background embedding turn it on.
    """
    # Knowledge bases beside the index folder, never in the working directory.
    values = {"index_dir": index_dir, "data_dir": Path(index_dir).with_name(Path(index_dir).name + ".kbs"),
              "embedder": "hashing", "corpus": [CORPUS], "api_key": None,
              "read_only": False, "llm_base_url": None, "cors_origins": [], "embed_in_background": False,
              **overrides}
    return Settings(_env_file=None, **values)


def new_collection(label: str) -> str:
    """A Milvus collection prefix no other test (or test process) uses."""
    return f"t{os.getpid()}_{label}_{next(_collections)}"


def backend_of(settings: Settings) -> dict:
    """The settings that choose the backend, to carry over into settings made for the same index."""
    return {"backend": settings.backend, "milvus_uri": settings.milvus_uri,
            "milvus_collection": settings.milvus_collection}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port in a background thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                          log_config=None))
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


def subprocess_env(index_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a `qa` subprocess: hashing embedder, this index folder, no API key, no .env surprises."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    # QA_CORPUS as a JSON list: qa.config reads list settings from the environment as JSON before its
    # comma-splitting validator runs (see the report), so a plain path is refused there.
    env.update({"QA_EMBEDDER": "hashing", "QA_INDEX_DIR": str(index_dir), "QA_CORPUS": json.dumps([str(CORPUS)]),
                "PYTHONUNBUFFERED": "1", **extra})
    return env


class ServeProcess:
    """`qa serve` as a subprocess on 127.0.0.1 (started by `start_serve`)."""

    def __init__(self, proc: subprocess.Popen, url: str, log_path: Path):
        self.proc = proc
        self.url = url
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_serve(index_dir: Path, log_path: Path, *, timeout: float = 60.0, preexec_fn=None, args: tuple[str, ...] = (),
                **env: str) -> ServeProcess:
    """Start `qa serve` (plus `args`) on a free 127.0.0.1 port and wait (bounded) until it answers /health."""
    port = free_port()
    log = log_path.open("ab")
    proc = subprocess.Popen([str(QA_BIN), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
                            env=subprocess_env(index_dir, **env), stdout=log, stderr=subprocess.STDOUT,
                            cwd=str(log_path.parent), preexec_fn=preexec_fn)  # noqa: PLW1509 - sets rlimits only
    log.close()
    url = f"http://127.0.0.1:{port}"
    served = ServeProcess(proc, url, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"qa serve exited with {proc.returncode}:\n{served.log()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code in (200, 503):
                return served
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    served.kill()
    raise RuntimeError(f"qa serve did not answer within {timeout}s:\n{served.log()[-3000:]}")
