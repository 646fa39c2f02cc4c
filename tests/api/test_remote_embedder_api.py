"""A failing remote embedding server (QA_EMBEDDER=openai) gives 503 naming its URL; the index stays as it was."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from tests.embedding_servers import FakeEmbeddingServer, json_reply
from tests.support import free_port, make_settings

TINY = Path(__file__).resolve().parent.parent / "data" / "tiny"


def remote_settings(index_dir: Path, url: str):
    return make_settings(index_dir, corpus=[TINY], embedder="openai", embed_url=url, embed_model="fake-model",
                         embed_retries=1, embed_timeout_s=5.0)


def test_failing_embedding_server_gives_503_naming_it(tmp_path):
    with FakeEmbeddingServer() as server, TestClient(create_app(remote_settings(tmp_path / "index", server.url))) \
            as client:
        assert client.get("/health").status_code == 200
        total = client.get("/v1/documents").json()["total"]
        assert client.post("/v1/search", json={"query": "森林防火期", "mode": "dense"}).status_code == 200

        server.fail_always = json_reply({"error": {"message": "model is loading"}}, status=503)
        # A question asked before is answered from the question-vector cache, server or not.
        assert client.post("/v1/search", json={"query": "森林防火期", "mode": "dense"}).status_code == 200
        for mode in ("dense", "hybrid"):
            refused = client.post("/v1/search", json={"query": f"森林防火期从哪天开始（{mode}）", "mode": mode})
            assert refused.status_code == 503, refused.text
            body = refused.json()
            assert body["type"] == "embedder_unavailable"
            assert f"embedding server {server.url}/v1/embeddings" in body["detail"]
            assert "HTTP 503: model is loading" in body["detail"]
        added = client.post("/v1/documents", json={"text": "嵌入服务失败时上传的文档。" * 20})
        assert added.status_code == 503 and added.json()["type"] == "embedder_unavailable"
        assert client.get("/v1/documents").json()["total"] == total
        assert client.post("/v1/search", json={"query": "森林防火期", "mode": "bm25"}).status_code == 200

        server.fail_always = None
        assert client.post("/v1/search", json={"query": "森林防火期从哪天开始（dense）", "mode": "dense"}).status_code == 200
        assert client.post("/v1/documents", json={"text": "嵌入服务失败时上传的文档。" * 20}).status_code == 201


def test_embedding_server_down_at_startup(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with TestClient(create_app(remote_settings(tmp_path / "index", url))) as client:
        health = client.get("/health")
        assert health.status_code == 503 and f"embedding server {url}/v1/embeddings" in health.json()["error"]
        refused = client.post("/v1/search", json={"query": "森林防火期"})
        assert refused.status_code == 503 and refused.json()["type"] == "embedder_unavailable"
        assert url in refused.json()["detail"]
