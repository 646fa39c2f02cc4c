"""Sentence vectors on the Milvus backend: the same dense ranking as the FAISS index, kept in step with changes.

Runs against a real milvus-lite server on 127.0.0.1:$ZHQA_TEST_MILVUS_PORT (default 19530; started if none answers);
skipped when pymilvus is missing. Every test uses collections of its own and drops them.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")

from embeddings.hashing import HashingEmbedder
from qa.config import SAMPLE_CORPUS
from qa.index.milvus_index import ANALYZERS, MilvusIndex
from qa.index.milvus_store import MilvusStore
from qa.index.segments import IndexConfig, passage_index_text
from qa.index.sentences import passage_sentences
from qa.ingest.document import document_from_text
from qa.ingest.reader import load_documents
from qa.knowledge_bases.manager import KnowledgeBaseManager
from qa.knowledge_bases.registry import milvus_prefix
from qa.milvus_service import MilvusQAService
from qa.search.retriever import RetrievalConfig
from qa.service import QAService
from qa.types import Document
from tests.milvus_fixture import ensure_milvus_server
from tests.support import make_settings, new_collection

SENTENCES = IndexConfig(sentence_vectors=True)
# Questions about the sample corpus, of the kinds the dev set asks (figures, lists, who/what, paraphrases).
QUESTIONS = (
    "古塔区今年引进的国内实际到位资金有多少",
    "会议要落实哪两位省领导莅许调研讲话精神",
    "疫情期间在全市率先禁止药店和诊所卖什么药",
    "农业技术服务要用好哪些新媒体",
    "聚众赌博、集体聚餐被查实后怎么处罚",
    "县城建设要聚焦主城，拓展哪里",
    "全区领导干部会议是哪天召开的",
    "晚上消费和路边摆摊这类经济，讲话怎么安排",
)


@pytest.fixture(scope="module")
def milvus_uri() -> str:
    return ensure_milvus_server(int(os.environ.get("ZHQA_TEST_MILVUS_PORT", "19530")))


@pytest.fixture
def stores(milvus_uri: str) -> Iterator[list[MilvusStore]]:
    """Stores made by `_milvus`, dropped after the test."""
    made: list[MilvusStore] = []
    yield made
    for store in made:
        store.drop()
        store.close()


def _milvus(stores: list[MilvusStore], uri: str, folder: Path, config: IndexConfig,
            retrieval: RetrievalConfig | None = None, collection: str | None = None) -> MilvusQAService:
    """A Milvus service on exact (FLAT) vector search, so any difference from FAISS is in the scoring itself."""
    store = MilvusStore(uri, HashingEmbedder().dim, collection=collection or f"t_{uuid.uuid4().hex[:12]}",
                        analyzer=ANALYZERS["ngram"], dense_index="FLAT")
    stores.append(store)
    return MilvusQAService(store, folder, HashingEmbedder(), retrieval, config)


def _ranking(service: QAService, query: str, top_k: int = 8, mode: str = "dense",
             doc_ids: list[str] | None = None) -> list[tuple[str, float]]:
    return [(h.passage.passage_id, h.score) for h in service.search(query, top_k=top_k, mode=mode, doc_ids=doc_ids)]


def _assert_same(faiss: list[tuple[str, float]], milvus: list[tuple[str, float]]) -> None:
    assert [p for p, _ in milvus] == [p for p, _ in faiss]
    assert [s for _, s in milvus] == pytest.approx([s for _, s in faiss], abs=1e-5)


@pytest.fixture(scope="module")
def sample_docs() -> tuple[Document, ...]:
    return load_documents([SAMPLE_CORPUS]).documents


@pytest.mark.parametrize("candidates", [50, 8])
def test_milvus_ranks_by_sentence_vectors_as_faiss_does(stores, milvus_uri: str, tmp_path: Path, sample_docs,
                                                        candidates: int) -> None:
    # 8 candidates: only 32 sentences are fetched on FAISS, so its grouping by passage is what is compared.
    retrieval = RetrievalConfig(candidates=candidates)
    faiss = QAService(tmp_path / "faiss", HashingEmbedder(), retrieval, SENTENCES)
    faiss.index_documents(list(sample_docs))
    milvus = _milvus(stores, milvus_uri, tmp_path / "milvus", SENTENCES, retrieval)
    milvus.index_documents(list(sample_docs))
    assert milvus.snapshot.data.sentences and milvus.store.has_sentences()
    passages_only = QAService(tmp_path / "plain", HashingEmbedder(), retrieval)
    passages_only.index_documents(list(sample_docs))

    some_doc = sample_docs[2].doc_id
    differs = 0
    for query in QUESTIONS:
        expected = _ranking(faiss, query)
        _assert_same(expected, _ranking(milvus, query))
        _assert_same(_ranking(faiss, query, doc_ids=[some_doc]), _ranking(milvus, query, doc_ids=[some_doc]))
        differs += [p for p, _ in expected] != [p for p, _ in _ranking(passages_only, query)]
        # Hybrid fuses each backend's own BM25 (they score a little differently): the dense part is the same.
        dense_of = {h.passage.passage_id: h.dense_score for h in faiss.search(query, top_k=8)}
        for hit in milvus.search(query, top_k=8):
            if hit.passage.passage_id in dense_of and hit.dense_score is not None:
                assert hit.dense_score == pytest.approx(dense_of[hit.passage.passage_id], abs=1e-5)
    assert differs, "sentence vectors changed no ranking: the comparison would not tell them from passage vectors"


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting the texts it encodes for documents."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded = 0

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        self.encoded += len(texts)
        return super().encode_documents(texts)


def test_sentence_vectors_come_from_the_embedding_cache(stores, milvus_uri: str, tmp_path: Path, tiny_docs) -> None:
    embedder = CountingEmbedder()
    faiss = QAService(tmp_path / "index", embedder, None, SENTENCES)
    faiss.index_documents(list(tiny_docs))
    assert embedder.encoded > 0
    embedder.encoded = 0
    milvus = _milvus(stores, milvus_uri, tmp_path / "index", SENTENCES)
    milvus.embedder = embedder
    milvus.index_documents(list(tiny_docs))  # same passages and sentences: every vector is in the cache
    assert embedder.encoded == 0
    assert _sentence_rows(milvus.store) == _expected_sentence_rows(milvus.snapshot.data)
    _assert_same(_ranking(faiss, "清河镇发展了多少座食用菌大棚"), _ranking(milvus, "清河镇发展了多少座食用菌大棚"))


def _sentence_rows(store: MilvusStore) -> list[int]:
    found = store.client.query(store.sentences_name, filter="", output_fields=["row"], limit=16384,
                               consistency_level="Strong")
    return sorted(e["row"] for e in found)


def _expected_sentence_rows(data: MilvusIndex) -> list[int]:
    """Each passage row once per sentence it has (`passage_sentences` of its index text)."""
    return sorted(row for row, p in data.passages.items()
                  for _ in passage_sentences(p, passage_index_text(p, data.documents.get(p.doc_id))))


def test_adding_and_deleting_documents_keeps_the_sentences_in_step(stores, milvus_uri: str, tmp_path: Path,
                                                                    tiny_docs, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="qa")
    first, second, third = tiny_docs
    milvus = _milvus(stores, milvus_uri, tmp_path / "milvus", SENTENCES)
    faiss = QAService(tmp_path / "faiss", HashingEmbedder(), None, SENTENCES)
    for service in (milvus, faiss):
        service.index_documents([first, second])
        assert service.add_document(third)
        service.delete_document(first.doc_id)

    data = milvus.snapshot.data
    assert set(data.documents) == {second.doc_id, third.doc_id}
    assert _sentence_rows(milvus.store) == _expected_sentence_rows(data)
    assert len(_sentence_rows(milvus.store)) > len(data.passages)  # passages of several sentences have several
    reopened = MilvusQAService(milvus.store, tmp_path / "milvus", HashingEmbedder(), None, SENTENCES)
    reopened.load()
    for query in ("全区森林防火期从哪天开始", "清河镇发展了多少座食用菌大棚", "风力灭火机储备在哪两处物资库"):
        expected = _ranking(faiss, query)
        _assert_same(expected, _ranking(milvus, query))
        _assert_same(expected, _ranking(reopened, query))
        assert all(not p.startswith(first.doc_id) for p, _ in expected)
    assert not [r.getMessage() for r in caplog.records], "a Milvus index with sentence vectors warns of nothing"


def test_turning_sentence_vectors_on_serves_the_old_index_and_qa_index_rebuilds_it(
        stores, milvus_uri: str, tmp_path: Path, tiny_dir: Path, tiny_docs, caplog) -> None:
    collection = f"t_{uuid.uuid4().hex[:12]}"
    plain = _milvus(stores, milvus_uri, tmp_path / "milvus", IndexConfig(), collection=collection)
    plain.index_paths([tiny_dir])
    assert not plain.store.has_sentences()
    faiss_plain = QAService(tmp_path / "faiss_plain", HashingEmbedder())
    faiss_plain.index_paths([tiny_dir])
    faiss = QAService(tmp_path / "faiss", HashingEmbedder(), None, SENTENCES)
    faiss.index_paths([tiny_dir])
    query = "清河镇要加快推进哪两个示范项目"

    # Served as built, passage vectors only, with a warning that names the fix; a change keeps it as it is.
    caplog.set_level(logging.WARNING, logger="qa")
    turned_on = _milvus(stores, milvus_uri, tmp_path / "milvus", SENTENCES, collection=collection)
    turned_on.load()
    assert "built without sentence vectors" in caplog.text and "run `qa index`" in caplog.text
    assert not turned_on.snapshot.data.sentences
    _assert_same(_ranking(faiss_plain, query), _ranking(turned_on, query))
    note = document_from_text("临时通知：仓库钥匙由张三保管，周五前归还。", "note.txt")
    assert turned_on.add_document(note)
    assert not turned_on.store.has_sentences()
    turned_on.delete_document(note.doc_id)

    # `qa index` rebuilds the collections with sentence vectors; then they rank as FAISS with sentence vectors.
    caplog.clear()
    report = turned_on.index_paths([tiny_dir])
    assert not report.unchanged and "rebuilding Milvus collections" in caplog.text
    assert "run `qa index`" not in caplog.text  # `qa index` says what it does, not what to run
    assert turned_on.store.has_sentences() and turned_on.snapshot.data.sentences
    assert _sentence_rows(turned_on.store) == _expected_sentence_rows(turned_on.snapshot.data)
    _assert_same(_ranking(faiss, query), _ranking(turned_on, query))

    # And back: turning them off drops the sentences collection at the next `qa index`.
    turned_off = _milvus(stores, milvus_uri, tmp_path / "milvus", IndexConfig(), collection=collection)
    turned_off.index_paths([tiny_dir])
    assert not turned_off.store.has_sentences()
    _assert_same(_ranking(faiss_plain, query), _ranking(turned_off, query))
    assert len(tiny_docs) == len(turned_off.documents())


def test_deleting_a_knowledge_base_drops_its_sentences_collection(milvus_uri: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "index", backend="milvus", milvus_uri=milvus_uri,
                             milvus_collection=new_collection("kbsent"), sentence_vectors=True)
    manager = KnowledgeBaseManager(settings, serving=False)
    manager.create("notes")
    service = manager.service("notes", allow_empty=True)
    service.add_document(document_from_text("仓库钥匙由张三保管。每周五下午盘点库存。", "keys.txt"))
    prefix = milvus_prefix(settings.milvus_collection, "notes")
    client = service.store.client
    assert client.has_collection(f"{prefix}_sentences") and client.has_collection(f"{prefix}_passages")
    manager.delete("notes")
    for suffix in ("passages", "documents", "sentences"):
        assert not client.has_collection(f"{prefix}_{suffix}")
    manager.close()


@pytest.mark.parametrize("config", [IndexConfig(), SENTENCES], ids=["passages", "sentences"])
def test_rows_another_process_wrote_are_left_out_of_an_older_view(stores, milvus_uri: str, tmp_path: Path,
                                                                   tiny_docs, config) -> None:
    """A server whose view predates another writer's rows searches without them (no KeyError, no missing cite)."""
    first, _, third = tiny_docs
    reader = _milvus(stores, milvus_uri, tmp_path / "reader", config)
    reader.index_documents([first])
    writer = MilvusQAService(reader.store, tmp_path / "writer", HashingEmbedder(), None, config)
    writer.load()
    assert writer.add_document(third)  # rows the reader's view does not hold
    for mode in ("bm25", "dense", "hybrid"):
        hits = reader.search("清河镇发展了多少座食用菌大棚", top_k=5, mode=mode)
        assert all(h.passage.doc_id == first.doc_id for h in hits), mode
