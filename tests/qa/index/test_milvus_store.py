"""MilvusStore against a real milvus-lite server on 127.0.0.1 (started once per module if none answers).

Needs the `milvus` extra (pymilvus + milvus-lite); skipped when pymilvus is missing. Every test works in
collections of its own, so the tests may share a server with others.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

pytest.importorskip("pymilvus")

import numpy as np

from embeddings.hashing import HashingEmbedder
from qa.errors import QAError
from qa.index.milvus_store import MilvusStore, MilvusStoreError
from qa.index.sentences import SENTENCE_BITS, group_max, sentence_ids
from tests.milvus_fixture import ensure_milvus_server

DIM = 64
# Three short documents; the ids hold characters a hand-built filter string would trip over.
CORPUS: dict[str, list[str]] = {
    "统计公报.txt": [
        "2023年古塔区固定资产投资完成128亿元，比上年增长6.5%。",
        "全年地区生产总值达到356亿元，按可比价格计算增长5.2%。",
        "全区一般公共预算收入完成21亿元。",
        "城镇居民人均可支配收入41230元，增长4.8%。",
        "社会消费品零售总额实现152亿元。",
    ],
    'doc "quoted" \\ back\nslash': [
        "春季学期开学时间为二月二十六日。",
        "学生须在开学前完成网上注册手续。",
        "图书馆开放时间为每天八点至二十二点。",
        "奖学金申请截止日期为三月十五日。",
    ],
    "通知 ' or 1==1 😀": [
        "本周六上午九点进行消防演练，请全体员工参加。",
        "演练期间电梯暂停使用。",
        "如有疑问请联系行政部王老师。",
        "会议室预订请提前一天提交申请。",
        "食堂午餐供应时间调整为十一点半。",
    ],
}


@pytest.fixture(scope="module")
def milvus_uri() -> str:
    """A server on 127.0.0.1:$ZHQA_TEST_MILVUS_PORT (default 19530), reused if one answers, else milvus-lite."""
    return ensure_milvus_server(int(os.environ.get("ZHQA_TEST_MILVUS_PORT", "19530")))


@pytest.fixture
def store(milvus_uri: str) -> Iterator[MilvusStore]:
    """An empty store whose collections are unique to the test and dropped after it."""
    milvus = MilvusStore(milvus_uri, dim=DIM, collection=f"t_{uuid.uuid4().hex[:12]}", dense_index="FLAT")
    milvus.reset()
    yield milvus
    milvus.drop()
    milvus.close()


@pytest.fixture
def corpus() -> dict:
    """The corpus as add() wants it: documents, rows, doc_ids, passage dicts, texts and hashing vectors."""
    documents, rows, doc_ids, passages, texts = [], [], [], [], []
    for doc_id, sentences in CORPUS.items():
        documents.append({"doc_id": doc_id, "title": doc_id, "text": "".join(sentences)})
        for i, sentence in enumerate(sentences):
            rows.append(len(rows))
            doc_ids.append(doc_id)
            passages.append({"passage_id": f"{doc_id}:{i}", "doc_id": doc_id, "text": sentence})
            texts.append(sentence)
    vectors = HashingEmbedder(DIM).encode_documents(texts)
    return {"documents": documents, "rows": rows, "doc_ids": doc_ids, "passages": passages, "texts": texts,
            "vectors": vectors}


@pytest.fixture
def filled(store: MilvusStore, corpus: dict) -> MilvusStore:
    store.add(**corpus)
    return store


def _halves(text: str) -> list[str]:
    """Two "sentences" of a passage: its text cut at its first comma (or in the middle)."""
    cut = text.find("，") + 1 or len(text) // 2
    return [text[:cut], text[cut:]]


@pytest.fixture
def sentenced(store: MilvusStore, corpus: dict) -> tuple[MilvusStore, np.ndarray, np.ndarray]:
    """The corpus in a store with sentence vectors: two sentences per passage. Returns (store, ids, vectors)."""
    store.reset(sentences=True)
    texts = [half for t in corpus["texts"] for half in _halves(t)]
    ids = sentence_ids(corpus["rows"], [2] * len(corpus["rows"]))
    vectors = HashingEmbedder(DIM).encode_documents(texts)
    store.add(**corpus, sentence_ids=ids, sentence_vectors=vectors)
    return store, ids, vectors


def test_sentence_search_returns_each_passage_once_scored_by_its_best_sentence(sentenced, corpus: dict) -> None:
    store, ids, vectors = sentenced
    query = HashingEmbedder(DIM).encode_queries(["开学前完成网上注册"])[0]
    expected = group_max(zip(ids.tolist(), (vectors @ query).tolist()), lambda sid: sid >> SENTENCE_BITS)
    ranked = sorted(expected.items(), key=lambda kv: -kv[1])
    # 5 passages, not 5 sentences: the grouping spans more than 5 sentence hits when a passage has two near the top.
    hits = store.sentence_search(query, 5)
    assert list(hits) == [row for row, _ in ranked[:5]]
    assert list(hits.values()) == pytest.approx([score for _, score in ranked[:5]], abs=1e-5)
    assert set(store.sentence_search(query, 100)) == set(corpus["rows"])
    odd_id = 'doc "quoted" \\ back\nslash'
    allowed = {row for row, d in zip(corpus["rows"], corpus["doc_ids"]) if d == odd_id}
    assert set(store.sentence_search(query, 100, doc_ids=[odd_id])) == allowed
    assert store.sentence_search(query, 5, doc_ids=[]) == {}
    # The passage vectors of chosen rows, scored exactly; a row not stored is left out.
    scores = store.passage_scores(query, [3, 0, 999])
    assert set(scores) == {0, 3}
    assert scores[3] == pytest.approx(float(corpus["vectors"][3] @ query), abs=1e-5)


def test_passage_scores_read_the_rows_an_approximate_search_left_out(filled: MilvusStore, corpus: dict,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run = filled._run

    def one_hit_only(what, sparse, search):  # as an HNSW/IVF index may return fewer rows than the filter allows
        hits = run(what, sparse, search)
        return [hits[0][:1]] if what == "passage scores" else hits

    monkeypatch.setattr(filled, "_run", one_hit_only)
    query = HashingEmbedder(DIM).encode_queries(["消防演练"])[0]
    scores = filled.passage_scores(query, [7, 0, 13])
    assert sorted(scores) == [0, 7, 13]
    for row, score in scores.items():
        assert score == pytest.approx(float(corpus["vectors"][row] @ query), abs=1e-5)


def test_deleting_a_document_deletes_its_sentences(sentenced, corpus: dict) -> None:
    store, _, _ = sentenced
    gone = "统计公报.txt"
    store.delete_document(gone)
    rows = {e["row"] for e in store.client.query(store.sentences_name, filter="", output_fields=["row"],
                                                 consistency_level="Strong", limit=1000)}
    assert rows == {r for r, d in zip(corpus["rows"], corpus["doc_ids"]) if d != gone}
    query = HashingEmbedder(DIM).encode_queries(["固定资产投资"])[0]
    assert set(store.sentence_search(query, 100)) == rows


def test_sentences_are_checked_and_dropped_with_the_index(store: MilvusStore, corpus: dict) -> None:
    ids = sentence_ids(corpus["rows"], [1] * len(corpus["rows"]))
    assert not store.has_sentences()
    with pytest.raises(ValueError, match="sentences=True"):
        store.add(**corpus, sentence_ids=ids, sentence_vectors=corpus["vectors"])
    store.reset(sentences=True)
    with pytest.raises(ValueError, match="not inserting"):
        store.add(**corpus, sentence_ids=ids + (100 << SENTENCE_BITS), sentence_vectors=corpus["vectors"])
    with pytest.raises(ValueError, match="shape"):
        store.add(**corpus, sentence_ids=ids, sentence_vectors=corpus["vectors"][:, :10])
    assert store.has_sentences() and store.exists()
    store.drop()  # what deleting a knowledge base does
    assert not store.exists() and not store.has_sentences()
    store.reset()
    assert store.exists() and not store.has_sentences()


def test_reset_creates_empty_collections(store: MilvusStore) -> None:
    assert store.exists()
    assert store.max_row() == -1
    assert store.load_documents() == [] and store.load_passages() == []
    # BM25 on a never-written collection fails inside milvus-lite (NaN average length): the store answers empty.
    assert store.keyword_search("固定资产投资", 5) == {}
    assert store.hybrid_search("固定资产投资", HashingEmbedder(DIM).encode_queries(["x"])[0], 5) == []


def test_add_round_trips_documents_and_passages(filled: MilvusStore, corpus: dict) -> None:
    assert filled.load_documents() == corpus["documents"]
    assert filled.load_passages() == list(zip(corpus["rows"], corpus["passages"]))
    assert filled.max_row() == len(corpus["rows"]) - 1


def test_keyword_search_ranks_the_phrase_first(filled: MilvusStore, corpus: dict) -> None:
    hits = filled.keyword_search("固定资产投资", 5)
    target = corpus["texts"].index("2023年古塔区固定资产投资完成128亿元，比上年增长6.5%。")
    assert next(iter(hits)) == target and hits[target] > 0
    assert next(iter(filled.keyword_search("消防演练", 3))) == corpus["texts"].index(CORPUS["通知 ' or 1==1 😀"][0])
    assert filled.keyword_search("   ", 5) == {}


def test_dense_search_finds_a_passage_by_its_own_vector(filled: MilvusStore, corpus: dict) -> None:
    for row in (0, 7, 13):
        hits = filled.dense_search(corpus["vectors"][row], 3)
        best, score = next(iter(hits.items()))
        assert best == row and score == pytest.approx(1.0, abs=1e-4)
        assert list(hits.values()) == sorted(hits.values(), reverse=True)


def test_doc_id_filter_restricts_every_search(filled: MilvusStore, corpus: dict) -> None:
    odd_id = 'doc "quoted" \\ back\nslash'
    allowed = {row for row, d in zip(corpus["rows"], corpus["doc_ids"]) if d == odd_id}
    vector = corpus["vectors"][0]  # the 统计公报 passage: unfiltered it would win
    assert set(filled.dense_search(vector, 20, doc_ids=[odd_id])) == allowed
    assert set(filled.keyword_search("开学时间", 20, doc_ids=[odd_id])) <= allowed
    assert filled.keyword_search("固定资产投资", 20, doc_ids=[odd_id]) == {}
    assert {row for row, _ in filled.hybrid_search("开学", vector, 20, doc_ids=[odd_id])} <= allowed
    assert filled.dense_search(vector, 5, doc_ids=[]) == {}
    assert filled.dense_search(vector, 5, doc_ids=["no such document"]) == {}


def test_hybrid_search_returns_fused_rows(filled: MilvusStore, corpus: dict) -> None:
    query = "古塔区固定资产投资完成多少"
    vector = HashingEmbedder(DIM).encode_queries([query])[0]
    target = corpus["texts"].index(CORPUS["统计公报.txt"][0])
    for ranker in ("rrf", "weighted"):
        hits = filled.hybrid_search(query, vector, 5, ranker=ranker, weights=(0.7, 0.3))
        assert 0 < len(hits) <= 5 and hits[0][0] == target
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    keyword_only = filled.hybrid_search(query, vector, 5, ranker="weighted", weights=(1.0, 0.0))
    assert [row for row, _ in keyword_only][:2] == list(filled.keyword_search(query, 5))[:2]
    assert filled.hybrid_search("  ", vector, 3) == list(filled.dense_search(vector, 3).items())
    with pytest.raises(ValueError, match="ranker"):
        filled.hybrid_search(query, vector, 5, ranker="max")


def test_delete_document_removes_its_passages_and_document(filled: MilvusStore, corpus: dict) -> None:
    gone = 'doc "quoted" \\ back\nslash'
    filled.delete_document(gone)
    assert [d["doc_id"] for d in filled.load_documents()] == ["统计公报.txt", "通知 ' or 1==1 😀"]
    assert {p["doc_id"] for _, p in filled.load_passages()} == {"统计公报.txt", "通知 ' or 1==1 😀"}
    assert "开学" not in "".join(corpus["texts"][r] for r in filled.keyword_search("开学时间", 20))
    filled.delete_document("never added")  # no error


def test_documents_larger_than_a_varchar_round_trip(store: MilvusStore) -> None:
    # 3 bytes per character: 100,000 characters are ~300 KB, five VARCHAR chunks, split inside no character.
    big = {"doc_id": "big", "text": "汉字与English混排𠀀" * 6250, "meta": {"pages": list(range(50))}}
    assert len(big["text"]) > 65535
    vectors = HashingEmbedder(DIM).encode_documents(["汉字"])
    store.add([big, {"doc_id": "small", "text": "短"}], [5], ["big"], [{"doc_id": "big"}], ["汉字"], vectors)
    assert store.load_documents() == [big, {"doc_id": "small", "text": "短"}]
    assert store.max_row() == 5


def test_reset_empties_a_filled_store(filled: MilvusStore) -> None:
    filled.reset()
    assert filled.exists()
    assert filled.load_documents() == [] and filled.load_passages() == [] and filled.max_row() == -1
    assert filled.keyword_search("固定资产投资", 5) == {}


def test_add_checks_lengths_and_dimension(store: MilvusStore, corpus: dict) -> None:
    with pytest.raises(ValueError, match="lengths must match"):
        store.add(**{**corpus, "rows": corpus["rows"][:-1]})
    with pytest.raises(ValueError, match="expected"):
        store.add(**{**corpus, "vectors": corpus["vectors"][:, :10]})


def test_missing_collections_raise_a_clear_error(milvus_uri: str) -> None:
    store = MilvusStore(milvus_uri, dim=DIM, collection=f"t_{uuid.uuid4().hex[:12]}")
    assert not store.exists()
    with pytest.raises(MilvusStoreError, match=milvus_uri):
        store.keyword_search("固定资产", 3)
    store.close()
    with pytest.raises(MilvusStoreError, match="closed"):
        store.exists()


def test_unreachable_server_raises_with_the_uri() -> None:
    uri = "http://127.0.0.1:9"  # discard port: nothing listens there
    with pytest.raises(MilvusStoreError, match=uri) as info:
        MilvusStore(uri, dim=DIM)
    assert isinstance(info.value, QAError)
