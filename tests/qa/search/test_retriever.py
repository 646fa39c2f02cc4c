"""Hybrid retrieval over the tiny corpus: ranking, document filters, request validation and hit fields."""

from __future__ import annotations

import pytest

from qa.errors import DocumentNotFoundError, InvalidQueryError
from qa.search.retriever import HybridRetriever, RetrievalConfig, validate_request

MODES = ("hybrid", "dense", "bm25")

# (question, a string found only in the passage that answers it)
KEYWORD_QUESTIONS = [
    ("全区森林防火期从哪天开始", "全区森林防火期为2023年11月1日至2024年5月31日"),
    ("城关区上半年地区生产总值完成多少", "全区地区生产总值完成56.7亿元"),
    ("风力灭火机储备在哪两处物资库", "青石岭、黑松沟两处物资库"),
    ("清河镇要加快推进哪两个示范项目", "柳树湾村民宿集群和桃花峪采摘园"),
]


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
@pytest.mark.parametrize(("question", "needle"), KEYWORD_QUESTIONS,
                         ids=["fire-period", "gdp", "stockpile", "demo-projects"])
def test_answering_passage_ranks_first(retriever, passage_with, question, needle, mode):
    expected = passage_with(needle)
    hits = retriever.search(question, top_k=5, mode=mode)
    assert hits, "a keyword question must find something"
    assert hits[0].passage.passage_id == expected.passage_id, [h.passage.text[:30] for h in hits]


def test_rrf_fusion_also_ranks_the_answering_passage_first(tiny_index, embedder, passage_with):
    rrf = HybridRetriever(tiny_index, embedder, RetrievalConfig(fusion="rrf"))
    for question, needle in KEYWORD_QUESTIONS:
        assert rrf.search(question, top_k=3)[0].passage.passage_id == passage_with(needle).passage_id


@pytest.mark.parametrize("mode", MODES)
def test_doc_ids_filter_returns_only_that_documents_passages(retriever, tiny_index, doc_by_file, mode):
    # The question is about the fire notice, but only the speech may be searched.
    speech = doc_by_file["a_chengguan_speech.txt"]
    hits = retriever.search("全区森林防火期从哪天开始", top_k=20, mode=mode, doc_ids=[speech.doc_id])
    assert hits
    assert {h.passage.doc_id for h in hits} == {speech.doc_id}
    if mode != "bm25":  # dense scores every passage of the chosen document
        assert len(hits) == len(tiny_index.doc_rows[speech.doc_id])


def test_doc_ids_filter_with_two_documents(retriever, doc_by_file):
    wanted = {doc_by_file["b_forest_fire_notice.txt"].doc_id, doc_by_file["c_qinghe_news.txt"].doc_id}
    hits = retriever.search("全区", top_k=50, mode="dense", doc_ids=sorted(wanted))
    assert {h.passage.doc_id for h in hits} == wanted


def test_unknown_doc_id_raises_document_not_found(retriever, doc_by_file):
    known = doc_by_file["a_chengguan_speech.txt"].doc_id
    with pytest.raises(DocumentNotFoundError) as info:
        retriever.search("森林防火", doc_ids=[known, "0000000000000000"])
    assert "0000000000000000" in str(info.value)


@pytest.mark.parametrize("mode", MODES)
def test_scores_are_descending_and_top_k_is_respected(retriever, mode):
    for top_k in (1, 3, 7):
        hits = retriever.search("全区防火工作和经济发展", top_k=top_k, mode=mode)
        assert 1 <= len(hits) <= top_k
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert len({h.passage.passage_id for h in hits}) == len(hits)


def is_title_block(retriever, passage) -> bool:
    span = retriever.data.documents[passage.doc_id].header_span
    return span is not None and passage.char_start == span[0]


def assert_score_follows(retriever, hit, signal: float) -> None:
    """In a single-signal mode the ranking score is that signal (a title block may be demoted below it)."""
    if is_title_block(retriever, hit.passage):
        assert 0.0 <= hit.score <= signal + 1e-9
    else:
        assert hit.score == pytest.approx(signal)


def test_bm25_hits_have_no_dense_score(retriever):
    hits = retriever.search("森林防火期", top_k=5, mode="bm25")
    assert hits
    for h in hits:
        assert h.dense_score is None
        assert h.keyword_score is not None and h.keyword_score > 0
        assert_score_follows(retriever, h, h.keyword_score)


def test_dense_hits_have_no_keyword_score(retriever):
    hits = retriever.search("森林防火期", top_k=5, mode="dense")
    assert hits
    for h in hits:
        assert h.keyword_score is None
        assert h.dense_score is not None and -1.0 - 1e-6 <= h.dense_score <= 1.0 + 1e-6
        assert_score_follows(retriever, h, h.dense_score)


def test_hybrid_hits_carry_both_signals_and_scores_within_weights(tiny_index, embedder):
    # Without the answer-sentence re-rank a hybrid score is the weighted sum of two normalized signals.
    retriever = HybridRetriever(tiny_index, embedder, RetrievalConfig(rerank_weight=0))
    hits = retriever.search("森林防火期", top_k=5, mode="hybrid")
    top = hits[0]
    assert top.dense_score is not None and top.keyword_score is not None
    config = retriever.config
    for h in hits:
        assert 0.0 <= h.score <= config.bm25_weight + config.dense_weight + 1e-9


def test_search_strips_the_query(retriever):
    plain = retriever.search("森林防火期", top_k=5, mode="hybrid")
    padded = retriever.search("  森林防火期 \n", top_k=5, mode="hybrid")
    assert [h.passage.passage_id for h in plain] == [h.passage.passage_id for h in padded]


@pytest.mark.parametrize("kwargs", [{"fusion": "max"}, {"bm25_weight": 1.5}, {"dense_weight": -0.1},
                                    {"candidates": 0}, {"rerank_weight": -1}, {"rerank_depth": -1}])
def test_retrieval_config_rejects_out_of_range_values(kwargs):
    with pytest.raises(ValueError) as info:
        RetrievalConfig(**kwargs)
    assert next(iter(kwargs)) in str(info.value)


# --- validate_request ---------------------------------------------------------------------------------------------


CONFIG = RetrievalConfig()


def test_valid_request_returns_the_stripped_query():
    assert validate_request("  森林防火期  ", 5, "hybrid", CONFIG) == "森林防火期"
    assert validate_request("问" * CONFIG.max_query_chars, CONFIG.max_top_k, "bm25", CONFIG)
    assert validate_request("问", 1, "dense", CONFIG) == "问"


@pytest.mark.parametrize("query", ["", "   ", " \t\n\u3000 "])
def test_empty_or_whitespace_query_is_rejected(query):
    with pytest.raises(InvalidQueryError, match="empty"):
        validate_request(query, 5, "hybrid", CONFIG)


def test_too_long_query_names_the_limit():
    assert CONFIG.max_query_chars == 2000
    with pytest.raises(InvalidQueryError) as info:
        validate_request("问" * 10_000, 5, "hybrid", CONFIG)
    assert "2000" in str(info.value) and "10000" in str(info.value)


def test_query_limit_follows_the_config():
    small = RetrievalConfig(max_query_chars=10)
    validate_request("问" * 10, 5, "hybrid", small)
    with pytest.raises(InvalidQueryError, match="10"):
        validate_request("问" * 11, 5, "hybrid", small)


@pytest.mark.parametrize("top_k", [0, -1, 101, 10_000, True, False, 5.0, "5", None])
def test_bad_top_k_names_the_allowed_range(top_k):
    with pytest.raises(InvalidQueryError) as info:
        validate_request("森林防火期", top_k, "hybrid", CONFIG)
    assert "[1, 100]" in str(info.value)
    assert repr(top_k) in str(info.value)


@pytest.mark.parametrize("mode", ["fuzzy", "HYBRID", "", None])
def test_unknown_mode_names_the_allowed_values(mode):
    with pytest.raises(InvalidQueryError) as info:
        validate_request("森林防火期", 5, mode, CONFIG)
    message = str(info.value)
    assert all(m in message for m in MODES)


def test_search_validates_before_searching(retriever):
    with pytest.raises(InvalidQueryError):
        retriever.search("森林防火期", top_k=0)
    with pytest.raises(InvalidQueryError):
        retriever.search("森林防火期", mode="keyword")


@pytest.mark.parametrize("query", ["**", "\u200b\u200b"])
def test_query_of_only_markup_or_invisible_characters_is_rejected(query):
    with pytest.raises(InvalidQueryError, match="searchable"):
        validate_request(query, 5, "hybrid", CONFIG)


@pytest.mark.parametrize("query", ["？！。，", "...", "——、、"], ids=["fullwidth", "dots", "dashes"])
def test_punctuation_only_query_is_rejected(query):
    with pytest.raises(InvalidQueryError, match="searchable"):
        validate_request(query, 5, "hybrid", CONFIG)


# --- re-ranking by the best answering sentence ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def biography(embedder):
    from qa.index.build import build_index
    from qa.ingest.document import document_from_text
    from tests.qa.search.documents import BIOGRAPHY, NEWS

    return build_index([document_from_text(BIOGRAPHY, "bio.txt"), document_from_text(NEWS, "news.txt")], embedder)


def _row_with(index, needle: str) -> int:
    return next(i for i, p in enumerate(index.passages) if needle in p.text)


@pytest.mark.parametrize(("question", "needle"), [
    ("1992年4月，罗保铭担任什么职务？", "1992年4月，任中共天津市大港区委副书记"),
    ("2017年4月，罗保铭担任什么职务？", "2017年4月，任全国人民代表大会华侨委员会副主任委员"),
])
def test_a_close_second_that_holds_the_answering_sentence_moves_first(biography, embedder, question, needle):
    # The opening paragraph names the person throughout: fusion put it first in the bundled model's ranking.
    opening, answering = _row_with(biography, "罗保铭，天津人"), _row_with(biography, needle)
    assert opening != answering
    fused = [(opening, 0.9), (answering, 0.8)]
    reranked = HybridRetriever(biography, embedder)._rerank(question, fused)
    assert [row for row, _ in reranked] == [answering, opening]
    assert HybridRetriever(biography, embedder, RetrievalConfig(rerank_weight=0))._rerank(question, fused) == fused


def test_rerank_adds_to_the_depth_best_only_and_keeps_scores_sorted(biography, embedder):
    config = RetrievalConfig(rerank_depth=1)
    retriever = HybridRetriever(biography, embedder, config)
    fused = [(0, 0.9), (1, 0.8), (2, 0.7)]
    reranked = retriever._rerank("罗保铭担任什么职务", fused)
    assert dict(reranked)[1] == 0.8 and dict(reranked)[2] == 0.7  # below the depth: untouched
    assert dict(reranked)[0] >= 0.9
    hits = retriever.search("罗保铭担任什么职务", top_k=5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_rerank_applies_to_hybrid_only(biography, embedder):
    plain = HybridRetriever(biography, embedder, RetrievalConfig(rerank_weight=0))
    reranked = HybridRetriever(biography, embedder)
    for mode in ("bm25", "dense"):
        assert ([(h.passage.passage_id, h.score) for h in plain.search("罗保铭担任什么职务", mode=mode)]
                == [(h.passage.passage_id, h.score) for h in reranked.search("罗保铭担任什么职务", mode=mode)])


def test_rerank_keeps_a_title_block_that_holds_the_asked_speaker_first(embedder):
    """The title block's answer is its speaker line, which shares no words with the question: the answer-sentence
    re-rank must not push it below body passages that only share the meeting's words."""
    from qa.config import SAMPLE_CORPUS
    from qa.index.build import build_index
    from qa.ingest.reader import load_documents

    index = build_index(load_documents([SAMPLE_CORPUS]).documents, embedder)
    retriever = HybridRetriever(index, embedder)
    assert retriever.config.rerank_weight > 0
    top = retriever.search("古塔区统筹推进疫情防控和经济社会发展调度会议上是谁讲话", top_k=3)[0]
    assert is_title_block(retriever, top.passage)
    assert "宋 晓 东" in top.passage.text
