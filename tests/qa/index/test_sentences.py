"""Sentence vectors: the pure scoring pieces, and an index that keeps them through add, delete, save and load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embeddings.hashing import HashingEmbedder
from qa.errors import IndexCorruptError
from qa.index.build import add_documents, build_index, encode_rows, remove_documents
from qa.index.segments import IndexConfig, passage_keyword_text
from qa.index.sentences import (
    SENTENCE_BITS,
    group_max,
    mix,
    passage_sentences,
    rows_of_sentences,
    sentence_ids,
)
from qa.index.versions import load_index, read_manifest, save_index
from qa.ingest.document import document_from_text
from qa.search.retriever import HybridRetriever, RetrievalConfig
from qa.service import QAService
from qa.types import Passage

SENTENCES = IndexConfig(sentence_vectors=True)


def test_group_max_scores_each_passage_by_its_best_sentence():
    hits = [(1 << SENTENCE_BITS | 2, 0.4), (1 << SENTENCE_BITS, 0.9), (3 << SENTENCE_BITS | 1, 0.5), (0, 0.1)]
    assert group_max(hits, lambda sid: sid >> SENTENCE_BITS) == {1: 0.9, 3: 0.5, 0: 0.1}
    assert group_max([], lambda sid: sid) == {}


def test_mix_weighs_the_best_sentence_against_the_passage_vector():
    mixed = mix({1: 0.9, 2: 0.5}, {1: 0.5, 2: 0.7}, 0.5)
    assert mixed == pytest.approx({1: 0.7, 2: 0.6})
    assert mix({1: 0.9}, {}, 0.3) == {1: 0.9}  # no passage score: the sentence score stands alone
    assert mix({1: 0.9}, {1: 0.1}, 1.0) == {1: 0.9}
    with pytest.raises(ValueError, match="weight"):
        mix({1: 0.9}, {1: 0.1}, 1.5)


def test_sentence_ids_round_trip_to_their_rows():
    ids = sentence_ids([4, 7], [2, 3])
    assert rows_of_sentences(ids).tolist() == [4, 4, 7, 7, 7]
    assert (ids & ((1 << SENTENCE_BITS) - 1)).tolist() == [0, 1, 0, 1, 2]
    assert len(set(ids.tolist())) == 5
    with pytest.raises(ValueError, match="sentences"):
        sentence_ids([1], [0])


def test_passage_sentences_follow_sentence_ends_and_lines():
    passage = Passage("d:0-30", "d", "t", (), 0, 0, 30, "## 一、总体要求\n全区GDP增长5%。投资完成10亿元！")
    assert passage_sentences(passage, "index text") == ["## 一、总体要求", "全区gdp增长5%。", "投资完成10亿元!"]
    single = Passage("d:0-5", "d", "t", (), 0, 0, 5, "只有一句")
    assert passage_sentences(single, "标题 只有一句") == ["标题 只有一句"]  # the index text, labels and all


def test_keyword_text_gives_every_passage_but_the_title_block_its_document_title(tiny_index):
    for row in tiny_index.live_rows():
        passage = tiny_index.passages[row]
        doc = tiny_index.documents[passage.doc_id]
        text = passage_keyword_text(passage, doc, tiny_index.index_text(row))
        if row in tiny_index.header_rows:
            assert text == tiny_index.index_text(row)
        else:
            assert text.startswith(doc.title.replace(" ", "")[:4]) and text.endswith(tiny_index.index_text(row))


def _sentence_count(data) -> int:
    return sum(len(data.sentence_texts(r)) for r in data.live_rows())


def test_an_index_with_sentence_vectors_keeps_them_through_add_delete_and_reload(tmp_path: Path, tiny_docs,
                                                                                 embedder):
    first, *rest = tiny_docs
    data = build_index([first], embedder, SENTENCES)
    assert len(data.sentences) == _sentence_count(data) > len(data.vectors)
    data = add_documents(data, rest, embedder)
    assert len(data.sentences) == _sentence_count(data)
    data = remove_documents(data, [rest[0].doc_id])
    assert len(data.sentences) == _sentence_count(data)
    assert set(rows_of_sentences(data.sentences.ids()).tolist()) == set(data.live_rows())
    save_index(data, tmp_path / "index")
    assert read_manifest(tmp_path / "index")["sentence_vectors"] is True
    loaded = load_index(tmp_path / "index", embedder.name, embedder.dim)
    assert loaded.config.sentence_vectors and loaded.config == data.config
    assert sorted(loaded.sentences.ids().tolist()) == sorted(data.sentences.ids().tolist())
    question = "城关区上半年地区生产总值完成多少"
    vector = embedder.encode_queries([question])[0]
    assert loaded.dense_search(vector, 5) == pytest.approx(data.dense_search(vector, 5))


def test_dense_search_is_the_mix_of_the_best_sentence_and_the_passage_vector(tiny_docs, embedder):
    data = build_index(tiny_docs, embedder, SENTENCES)
    vector = embedder.encode_queries(["全区森林防火期从哪天开始"])[0]
    got = data.dense_search(vector, 3, sentence_weight=0.5)
    assert len(got) == 3
    for row, score in got.items():
        sentences = embedder.encode_documents(data.sentence_texts(row))
        passage = embedder.encode_documents([data.index_text(row)])[0]
        expected = 0.5 * float((sentences @ vector).max()) + 0.5 * float(passage @ vector)
        assert score == pytest.approx(expected, abs=1e-5)
    best_rows = data.dense_search(vector, 3, sentence_weight=1.0)
    for row, score in best_rows.items():
        assert score == pytest.approx(float((embedder.encode_documents(data.sentence_texts(row)) @ vector).max()),
                                      abs=1e-5)


def test_dense_search_within_documents_only_returns_their_rows(tiny_docs, embedder):
    data = build_index(tiny_docs, embedder, SENTENCES)
    doc_id = tiny_docs[1].doc_id
    vector = embedder.encode_queries(["全区森林防火期从哪天开始"])[0]
    got = data.dense_search(vector, 50, [doc_id])
    assert got and set(got) <= set(data.doc_rows[doc_id])


def test_an_index_without_sentence_vectors_still_loads_and_searches(tmp_path: Path, tiny_docs, embedder):
    data = build_index(tiny_docs, embedder)  # as every index saved before sentence vectors
    assert data.sentences is None
    save_index(data, tmp_path / "index")
    loaded = load_index(tmp_path / "index", embedder.name, embedder.dim)
    assert loaded.sentences is None and not loaded.config.sentence_vectors
    hits = HybridRetriever(loaded, embedder, RetrievalConfig()).search("全区森林防火期从哪天开始", mode="dense")
    assert hits


def test_a_corrupted_sentence_vector_file_is_refused(tmp_path: Path, tiny_docs, embedder):
    save_index(build_index(tiny_docs, embedder, SENTENCES), tmp_path / "index")
    folder = tmp_path / "index" / (tmp_path / "index" / "CURRENT").read_text().strip()
    path = next((folder / "sentences").glob("*.faiss"))
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(IndexCorruptError, match="rebuild"):
        load_index(tmp_path / "index", embedder.name, embedder.dim)


def test_cached_only_keeps_a_row_only_when_its_passage_and_every_sentence_are_cached(tmp_path: Path, embedder):
    from embeddings import EmbeddingCache

    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    texts = ["甲句。乙句。", "丙句。丁句。"]
    sentences = [["甲句。", "乙句。"], ["丙句。", "丁句。"]]
    cache.put_many(embedder.name, ["甲句。乙句。", "甲句。", "乙句。", "丙句。丁句。", "丙句。"],
                   embedder.encode_documents(["甲句。乙句。", "甲句。", "乙句。", "丙句。丁句。", "丙句。"]))
    got = encode_rows(np.array([0, 1]), sentences, texts, embedder, cache, cached_only=True)
    assert got.rows.tolist() == [0] and rows_of_sentences(got.sentence_ids).tolist() == [0, 0]
    full = encode_rows(np.array([0, 1]), sentences, texts, embedder, cache)
    np.testing.assert_allclose(full.passage_vectors, embedder.encode_documents(texts), atol=1e-6)
    np.testing.assert_allclose(full.subset(np.array([1])).sentence_vectors,
                               embedder.encode_documents(sentences[1]), atol=1e-6)
    cache.close()


def test_deferred_sentence_vectors_are_filled_in_and_count_a_passage_done_only_with_all_of_them(tmp_path: Path,
                                                                                                tiny_dir: Path):
    embedder = HashingEmbedder()
    service = QAService(tmp_path / "index", embedder, index_config=SENTENCES, defer_vectors=True, batch_size=4)
    service.index_paths([tiny_dir])
    text = "\n".join(f"第{i}项：新建社区食堂{i}个。九月底前投入使用。" for i in range(1, 30))
    service.add_document(document_from_text(text, source="canteens.txt", title="社区食堂"))
    progress = service.vector_progress()
    assert progress.done < progress.total
    service.complete_vectors()
    assert service.vector_progress().done == service.vector_progress().total
    data = service.snapshot.data
    assert len(data.sentences) == _sentence_count(data)
    reloaded = QAService(tmp_path / "index", embedder, index_config=SENTENCES)
    reloaded.load()
    assert len(reloaded.snapshot.data.sentences) == len(data.sentences)
    assert reloaded.search("社区食堂九月底前投入使用", mode="dense")


def test_an_index_built_with_other_settings_is_served_as_built_and_rebuilt_by_the_next_index_run(
        tmp_path: Path, tiny_dir: Path, caplog):
    embedder = HashingEmbedder()
    old = QAService(tmp_path / "index", embedder, index_config=IndexConfig(keyword_titles=False))
    old.index_paths([tiny_dir])
    assert read_manifest(tmp_path / "index")["keyword_titles"] is False
    service = QAService(tmp_path / "index", embedder, index_config=SENTENCES)
    with caplog.at_level("WARNING"):
        service.load()
    assert "run `qa index`" in caplog.text
    assert service.search("城关区上半年地区生产总值完成多少")  # served as built
    caplog.clear()
    with caplog.at_level("WARNING"):
        report = service.index_paths([tiny_dir])
    assert not report.unchanged
    # `qa index` says what it does, not what to run.
    assert "rebuilding the index" in caplog.text and "run `qa index`" not in caplog.text
    manifest = read_manifest(tmp_path / "index")
    assert manifest["keyword_titles"] is True and manifest["sentence_vectors"] is True


def test_with_titles_a_question_naming_the_document_matches_its_body_passages_too(tiny_docs, embedder):
    doc = max(tiny_docs, key=lambda d: len(d.text))
    plain = build_index(tiny_docs, embedder, IndexConfig(keyword_titles=False), embed=False)
    titled = build_index(tiny_docs, embedder, embed=False)
    from qa.text import normalize

    query = normalize(doc.title)
    body = set(titled.doc_rows[doc.doc_id]) - set(titled.header_rows)
    scores_plain = plain.keyword_search(query, 100)
    scores_titled = titled.keyword_search(query, 100)
    assert body and body <= set(scores_titled)
    # the title block no longer stands out: the body passages now score close to it
    header = next(iter(set(titled.doc_rows[doc.doc_id]) & set(titled.header_rows)))
    assert min(scores_titled[r] for r in body) / scores_titled[header] > min(
        scores_plain.get(r, 0.0) for r in body) / scores_plain[header]


@pytest.mark.parametrize("vector_index", ["hnsw", "auto"])
def test_the_vector_index_type_applies_to_the_sentence_vectors(tiny_docs, embedder, vector_index):
    exact = build_index(tiny_docs, embedder, SENTENCES)
    other = build_index(tiny_docs, embedder, IndexConfig(sentence_vectors=True, vector_index=vector_index,
                                                         auto_threshold=10))
    assert other.sentences.active_type != "flat"
    vector = embedder.encode_queries(["全区森林防火期从哪天开始"])[0]
    assert list(other.dense_search(vector, 3)) == list(exact.dense_search(vector, 3))
