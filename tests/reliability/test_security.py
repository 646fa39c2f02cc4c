"""Security switches: the API key on every route but /health and the chat page, read-only mode, size and length
limits (settings with safe defaults, enforced before a body is read whole), no secrets or document text in logs,
CORS closed by default."""

from __future__ import annotations

import inspect
import logging
import select
import socket
import time

import pytest
from fastapi.testclient import TestClient

from api import deps
from api.main import create_app
from qa.config import Settings
from tests.support import live_server, make_settings

API_KEY = "s3cret-键-0123456789"
AUTH = {"Authorization": ("Bearer " + API_KEY).encode("utf-8")}  # header bytes: the key's UTF-8
QUESTION = "古塔区固定资产投资完成多少"
# Routes anyone may load: liveness and the chat page (which asks for the key itself and sends it to /v1/*).
PUBLIC = {"/health", "/", "/static/app.js", "/static/style.css"}


@pytest.fixture(scope="module")
def keyed(settings, service):
    with TestClient(create_app(settings.model_copy(update={"api_key": API_KEY}), service=service)) as client:
        yield client


def _operations(client: TestClient) -> list[tuple[str, str]]:
    """Every operation of the schema (path parameters filled in), plus the routes kept out of the schema."""
    schema = client.get("/openapi.json", headers=AUTH).json()
    ops = [(method.upper(), path.replace("{doc_id}", "x").replace("{model_id}", "zhqa-retrieval"))
           for path, item in schema["paths"].items() for method in item]
    return ops + [("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc")]


def test_every_route_but_health_and_the_chat_page_needs_the_key(keyed):
    operations = _operations(keyed)
    assert ("GET", "/metrics") in operations and ("POST", "/v1/search") in operations
    for method, path in operations:
        if path in PUBLIC:
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + API_KEY[:4]},
                        {"Authorization": AUTH["Authorization"] + b"x"}):
            response = keyed.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert "API key" in response.json()["detail"]
            assert response.headers["www-authenticate"] == "Bearer"
            assert API_KEY not in response.text
    for path in PUBLIC:
        assert keyed.get(path).status_code == 200, path
    # With the key, the keyed routes answer.
    assert keyed.post("/v1/search", json={"query": QUESTION}, headers=AUTH).status_code == 200
    assert keyed.get("/docs", headers=AUTH).status_code == 200
    assert keyed.get("/metrics", headers=AUTH).status_code == 200
    assert keyed.get("/openapi.json", headers=AUTH).json()["components"]["securitySchemes"]


def test_without_a_key_everything_is_open_and_the_schema_says_so(client):
    assert client.get("/docs").status_code == 200
    assert client.get("/metrics").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "securitySchemes" not in schema.get("components", {})
    assert not any("security" in op for item in schema["paths"].values() for op in item.values())


def test_key_comparison_is_constant_time():
    source = inspect.getsource(deps.caller_access)  # require_api_key and /health both ask it
    assert "hmac.compare_digest" in source and "==" not in source.split("compare_digest", 1)[1].split("\n")[0]


def test_read_only_refuses_changes_and_keeps_serving(make_client):
    with make_client(read_only=True) as client:
        doc_id = client.get("/v1/documents").json()["documents"][0]["id"]
        attempts = [client.post("/v1/documents", json={"text": "只读模式下不能添加文档。"}),
                    client.post("/v1/documents", files={"file": ("a.txt", "只读。".encode())}),
                    client.delete(f"/v1/documents/{doc_id}")]
        for response in attempts:
            assert response.status_code == 403 and "read-only" in response.json()["detail"]
        assert client.get("/v1/documents").json()["total"] == 5
        assert client.post("/v1/search", json={"query": QUESTION}).status_code == 200
        assert client.get("/health").json()["read_only"] is True


def test_limits_are_settings_with_safe_defaults(make_client):
    defaults = Settings(_env_file=None)
    assert defaults.max_body_bytes == 8_000_000 and defaults.max_upload_bytes == 5_000_000
    assert defaults.max_query_chars == 2000 and defaults.max_top_k == 100
    assert defaults.api_key is None and defaults.cors_origins == [] and defaults.read_only is False
    assert defaults.host == "127.0.0.1"
    with make_client(max_body_bytes=2000, max_upload_bytes=500, max_query_chars=10) as client:
        assert client.post("/v1/search", json={"query": "古" * 11}).status_code == 422
        assert client.post("/v1/search", json={"query": "古" * 10}).status_code == 200
        assert client.post("/v1/search", json={"query": "a" * 3000}).status_code == 413
        assert client.post("/v1/documents", files={"file": ("a.txt", "古".encode() * 200)}).status_code == 413


def _read_status(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while b"\r\n" not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def test_oversized_bodies_are_refused_before_they_are_read(settings, service):
    app = create_app(settings, service=service)
    with live_server(app) as url:
        host, port = url.removeprefix("http://").split(":")
        # Declared length of 50 MB, 1 kB actually sent: the 413 comes back at once, without waiting for the rest.
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 50000000\r\n\r\n" + b"a" * 1024)
            started = time.monotonic()
            reply = _read_status(sock, started + 5)
            assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
            assert time.monotonic() - started < 5
        # Chunked, no length: the server stops at the 8 MB limit; the client is told 413 long before 50 MB.
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            block = b"a" * 65536
            chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n"
            sent, reply, deadline = 0, b"", time.monotonic() + 20
            pending = memoryview(b"")
            sock.setblocking(False)
            while sent < 50_000_000 and time.monotonic() < deadline:
                readable, writable, _ = select.select([sock], [sock], [], 0.5)
                if readable:
                    reply = _read_status(sock, time.monotonic() + 5)
                    break
                if writable:
                    if not pending:
                        pending = memoryview(chunk)
                    try:
                        n = sock.send(pending)
                    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                        break
                    pending, sent = pending[n:], sent + n
            if not reply:
                reply = _read_status(sock, time.monotonic() + 5)
            assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
            # 8 MB read by the server, plus what the kernel buffers on both ends of the loopback connection.
            assert sent < 20_000_000, sent


def test_no_key_or_document_text_in_logs(index_copy, caplog):
    secret_sentence = "机密正文：青山镇二〇二五年度专项资金共计七千三百万元整，须严格保密。"
    settings = make_settings(index_copy, api_key=API_KEY)
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings)) as client:
        added = client.post("/v1/documents", headers=AUTH,
                            files={"file": ("secret.txt", (secret_sentence * 20).encode())})
        assert added.status_code == 201
        assert client.post("/v1/search", json={"query": "青山镇专项资金共计多少"}, headers=AUTH).status_code == 200
        assert client.post("/v1/chat/completions", headers=AUTH, json={
            "messages": [{"role": "user", "content": "青山镇专项资金共计多少"}], "stream": True}).status_code == 200
        assert client.post("/v1/search", json={"query": "x"}, headers={"Authorization": ("Bearer " + API_KEY[:-1]).encode()}
                           ).status_code == 401
        assert client.delete(f"/v1/documents/{added.json()['document']['id']}", headers=AUTH).status_code == 200
    text = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records, "the requests were logged"
    assert API_KEY not in text and API_KEY[:-1] not in text and API_KEY.encode().decode("latin-1") not in text
    assert "七千三百万元" not in text and "青山镇专项资金" not in text
    access = [r for r in caplog.records if r.name == "api.access"]
    assert len(access) >= 5 and all(getattr(r, "request_id", None) for r in access)


def test_cors_is_closed_unless_configured(settings, service, client):
    origin = {"Origin": "http://intranet.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    closed = [client.options("/v1/search", headers=preflight), client.get("/health", headers=origin),
              client.post("/v1/search", json={"query": QUESTION}, headers=origin)]
    for response in closed:
        assert "access-control-allow-origin" not in response.headers
    allowed = settings.model_copy(update={"cors_origins": ["http://intranet.example"]})
    with TestClient(create_app(allowed, service=service)) as cors:
        response = cors.options("/v1/search", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "http://intranet.example"
        simple = cors.post("/v1/search", json={"query": QUESTION}, headers=origin)
        assert simple.headers["access-control-allow-origin"] == "http://intranet.example"
        assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
        other = cors.post("/v1/search", json={"query": QUESTION}, headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
