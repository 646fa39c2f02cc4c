"""GET /health, the API key check, the read-only switch, and startup with an index that cannot be opened."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from embeddings import create_embedder
from qa.service import QAService
from tests.support import make_settings


def test_health_reports_the_index(client, service):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["index_loaded"] is True
    assert body["documents"] == 5 == len(service.documents())
    assert body["passages"] == service.passage_count() > 0
    assert body["model"] == service.embedder.name


def test_chat_page_is_served_as_utf8_html(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<meta charset="utf-8">' in response.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_lifespan_builds_the_index_when_there_is_none(tmp_path, make_client):
    with make_client(index_dir=tmp_path / "fresh") as client:
        body = client.get("/health").json()
        assert body["index_loaded"] is True and body["documents"] == 5
    assert any((tmp_path / "fresh").iterdir())


def test_api_key_is_required_when_set(settings, service):
    keyed = settings.model_copy(update={"api_key": "s3cret-键"})
    with TestClient(create_app(keyed, service=service)) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/").status_code == 200
        for method, path, kwargs in [("post", "/v1/search", {"json": {"query": "古塔区"}}),
                                     ("get", "/v1/documents", {}), ("get", "/v1/models", {}),
                                     ("post", "/v1/chat/completions",
                                      {"json": {"messages": [{"role": "user", "content": "古塔区"}]}})]:
            missing = getattr(client, method)(path, **kwargs)
            assert missing.status_code == 401, path
            assert "API key" in missing.json()["detail"]
            assert missing.headers["www-authenticate"] == "Bearer"
            wrong = getattr(client, method)(path, headers={"Authorization": "Bearer nope"}, **kwargs)
            assert wrong.status_code == 401, path
            right = getattr(client, method)(path, headers={"Authorization": "Bearer s3cret-键".encode()}, **kwargs)
            assert right.status_code == 200, path


def test_no_key_configured_means_open(client):
    assert client.post("/v1/search", json={"query": "古塔区"}, headers={"Authorization": "Bearer x"}).status_code == 200


def test_read_only_refuses_changes(make_client):
    with make_client(read_only=True) as client:
        added = client.post("/v1/documents", json={"text": "只读模式下不能添加文档。"})
        assert added.status_code == 403 and "read-only" in added.json()["detail"]
        doc_id = client.get("/v1/documents").json()["documents"][0]["id"]
        assert client.delete(f"/v1/documents/{doc_id}").status_code == 403
        assert client.get("/health").json()["read_only"] is True
        assert client.post("/v1/search", json={"query": "古塔区"}).status_code == 200


def test_index_of_another_model_gives_503_with_the_reason(settings, index_copy):
    # The saved index was built with 256-dimensional hashing vectors; a 64-dimensional embedder cannot use it.
    if settings.backend == "milvus":
        pytest.skip("checks the FAISS index manifest; a Milvus collection of another dimension is refused by Milvus")
    mismatched = QAService(index_copy, create_embedder("hashing", dim=64))
    with TestClient(create_app(settings, service=mismatched)) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["index_loaded"] is False and health.json()["error"]
        search = client.post("/v1/search", json={"query": "古塔区"})
        assert search.status_code == 503
        assert search.json()["type"] == "index_unavailable" and search.json()["detail"] == health.json()["error"]


def test_cors_only_when_configured(settings, service, client):
    preflight = {"Origin": "http://intranet.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    assert "access-control-allow-origin" not in client.options("/v1/search", headers=preflight).headers
    allowed = settings.model_copy(update={"cors_origins": ["http://intranet.example"]})
    with TestClient(create_app(allowed, service=service)) as cors_client:
        response = cors_client.options("/v1/search", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "http://intranet.example"


def test_unreachable_milvus_gives_503_naming_the_server(tmp_path):
    pytest.importorskip("pymilvus")
    settings = make_settings(tmp_path / "index", backend="milvus", milvus_uri="http://127.0.0.1:9")
    with TestClient(create_app(settings)) as client:
        health = client.get("/health")
        assert health.status_code == 503 and "Milvus at http://127.0.0.1:9" in health.json()["error"]
        search = client.post("/v1/search", json={"query": "古塔区"})
        assert search.status_code == 503 and search.json()["type"] == "backend_unavailable"
