"""Tests for qa.index.bm25.BM25Index on a tiny Chinese corpus."""

from __future__ import annotations

import json
import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from qa.index import bm25
from qa.index.bm25 import DEFAULT_TOKENIZER, BM25Index, BM25Params, BM25Segment
from qa.index.tokenize import TOKENIZER_NAMES

CORPUS = [
    "古塔区召开疫情防控和经济社会发展调度会议，宋晓东同志讲话。",
    "深入推进“放管服”改革，严格规范行政执法，切实简化办事程序。",
    "加快处理秸秆离田，指导农民购买晚熟品种或改种经济作物。",
    "完善“投贷保补”融资机制，促进金融活水流向民营和小微企业。",
    "加快发展夜间经济，规范发展地摊经济，培育新兴消费增长点。",
    "，。！",  # a passage without any token is a valid row that never matches
]


@pytest.fixture(scope="module")
def index() -> BM25Index:
    return BM25Index.build(CORPUS, DEFAULT_TOKENIZER)


@pytest.mark.parametrize(
    ("query", "expected_row"),
    [
        ("放管服改革要怎么推进", 1),
        ("秸秆离田怎么处理", 2),
        ("什么融资机制让金融活水流向小微企业", 3),
        ("夜间经济和地摊经济", 4),
        ("宋晓东在古塔区讲话", 0),
    ],
)
def test_right_document_first(index: BM25Index, query: str, expected_row: int) -> None:
    results = index.search(query, k=3)
    assert results[0][0] == expected_row
    scores = [s for _, s in results]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
def test_every_tokenizer_builds_and_finds(name: str) -> None:
    idx = BM25Index.build(CORPUS, name)
    assert idx.search("投贷保补融资机制", k=1)[0][0] == 3


def test_k_larger_than_corpus_and_zero_scores_skipped(index: BM25Index) -> None:
    results = index.search("经济", k=100)
    assert 0 < len(results) < len(CORPUS)
    assert {row for row, _ in results} <= set(range(len(CORPUS)))
    assert 5 not in {row for row, _ in results}


def test_unknown_tokens_are_ignored(index: BM25Index) -> None:
    assert index.search("光谱量子", k=5) == []
    assert index.search("zzzz qqqq", k=5) == []
    mixed = index.search("光谱量子 放管服", k=5)
    assert mixed[0][0] == 1


@pytest.mark.parametrize("query", ["", "   ", "？！。", "是什么", "的了吗"])
def test_empty_query_tokens_give_no_results(index: BM25Index, query: str) -> None:
    assert index.search(query, k=5) == []
    assert not index.scores(query).any()


def test_scores_cover_all_documents(index: BM25Index) -> None:
    scores = index.scores("放管服改革")
    assert isinstance(scores, np.ndarray) and scores.shape == (len(CORPUS),)
    assert int(np.argmax(scores)) == 1
    top = index.search("放管服改革", k=len(CORPUS))
    assert [row for row, _ in top] == [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > 0]


def test_search_batch_equals_search(index: BM25Index) -> None:
    queries = ["放管服", "秸秆", ""]
    assert index.search_batch(queries, k=2) == [index.search(q, k=2) for q in queries]


def test_ties_broken_by_row() -> None:
    idx = BM25Index.build(["苹果香蕉", "苹果香蕉", "橘子"], "char")
    assert [row for row, _ in idx.search("苹果", k=2)] == [0, 1]
    assert [row for row, _ in idx.search("苹果", k=1)] == [0]


def test_save_load_roundtrip(index: BM25Index, tmp_path: Path) -> None:
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.params == index.params and len(loaded) == len(CORPUS)
    for query in ["放管服改革", "秸秆离田", "夜间经济", "光谱", ""]:
        assert loaded.search(query, k=10) == index.search(query, k=10)
        np.testing.assert_array_equal(loaded.scores(query), index.scores(query))
    meta = json.loads((tmp_path / "bm25" / "qa_bm25.json").read_text(encoding="utf-8"))
    assert meta["tokenizer_name"] == DEFAULT_TOKENIZER and meta["n_docs"] == len(CORPUS)


def test_load_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="qa_bm25.json"):
        BM25Index.load(tmp_path / "nothing")


def test_build_validation() -> None:
    with pytest.raises(ValueError, match="texts is empty"):
        BM25Index.build([], "char")
    with pytest.raises(ValueError, match="none of the 2 texts"):
        BM25Index.build(["。", "！"], "char")
    with pytest.raises(ValueError, match="unknown tokenizer 'bpe'"):
        BM25Index.build(CORPUS, "bpe")
    with pytest.raises(ValueError, match=r"b=1\.5 is out of range"):
        BM25Index.build(CORPUS, "char", b=1.5)
    with pytest.raises(ValueError, match=r"k1=-1\.0 is out of range"):
        BM25Index.build(CORPUS, "char", k1=-1)


@pytest.mark.parametrize("k", [0, -3])
def test_search_rejects_bad_k(index: BM25Index, k: int) -> None:
    with pytest.raises(ValueError, match="k >= 1"):
        index.search("放管服", k=k)


def test_params_defaults() -> None:
    assert BM25Params() == BM25Params(tokenizer_name=DEFAULT_TOKENIZER, k1=1.5, b=0.75, n_docs=0)


# --- segments: adding and deleting rows without rebuilding ----------------------------------------------------


QUERIES = ["放管服改革", "融资机制", "夜间经济地摊经济", "秸秆离田", "古塔区会议"]


def test_appended_segment_scores_exactly_like_one_build() -> None:
    """Statistics are computed at query time, so two segments score as one index over the same rows."""
    split = BM25Index.build(CORPUS[:3]).with_segment(BM25Index.segment_for(CORPUS[3:]))
    whole = BM25Index.build(CORPUS)
    assert len(split.segments) == 2 and len(split) == len(CORPUS)
    for query in QUERIES:
        np.testing.assert_allclose(split.scores(query), whole.scores(query), rtol=1e-6)


def test_deleted_rows_score_zero_and_the_rest_as_if_never_indexed() -> None:
    deleted = BM25Index.build(CORPUS).without_rows([1, 3])
    kept = [0, 2, 4, 5]
    rebuilt = BM25Index.build([CORPUS[i] for i in kept])
    assert deleted.live_count == 4 and len(deleted) == len(CORPUS)
    for query in QUERIES:
        scores = deleted.scores(query)
        assert scores[1] == scores[3] == 0.0
        np.testing.assert_allclose(scores[kept], rebuilt.scores(query), rtol=1e-6)
    assert deleted.doc_freq("融资") == 0 and BM25Index.build(CORPUS).doc_freq("融资") == 1


def test_merging_segments_changes_no_score(tmp_path: Path) -> None:
    index = BM25Index.build(CORPUS[:2])
    for text in CORPUS[2:]:
        index = index.with_segment(BM25Index.segment_for([text]))
    index = index.without_rows([2])
    merged = index.merged(1, len(index.segments))
    assert len(merged.segments) == 2
    for query in QUERIES:
        np.testing.assert_array_equal(merged.scores(query), index.scores(query))
    merged.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert isinstance(loaded.segments[0].rows, np.memmap)  # postings stay on disk
    for query in QUERIES:
        np.testing.assert_array_equal(loaded.scores(query), index.scores(query))


def test_deleted_rows_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match=r"deleted rows must be in \[0, 6\)"):
        BM25Index.build(CORPUS).without_rows([6])


# --- pruned top k (MaxScore) against exhaustive scoring ----------------------------------------------------------

# Few characters with skewed frequencies: long posting lists, repeated terms (tf up to ~10), many tied scores.
ALPHABET = "古塔区经济发展会议农民金融夜间"
WEIGHTS = np.array([40, 25, 15, 10, 8, 6, 5, 4, 3, 2, 2, 1, 1, 1, 1], dtype=float)


def random_texts(rng: np.random.Generator, n: int) -> list[str]:
    p = WEIGHTS / WEIGHTS.sum()
    texts = ["".join(rng.choice(list(ALPHABET), size=int(rng.integers(1, 60)), p=p)) for _ in range(n)]
    texts[int(rng.integers(n))] = "，。"  # a row without a token
    texts[int(rng.integers(n))] = texts[0]  # an exact duplicate: tied scores
    return texts


def random_queries(rng: np.random.Generator, n: int) -> list[str]:
    extra = ALPHABET + "光谱"  # characters in no text: unknown terms
    return ["".join(rng.choice(list(extra), size=int(rng.integers(1, 14)))) for _ in range(n)]


def segmented(texts: list[str], cuts: list[int], deleted: list[int]) -> BM25Index:
    """An index grown by appending a segment per block of `texts` (cut at `cuts`), then `deleted` removed."""
    blocks = [texts[a:b] for a, b in zip([0, *cuts], [*cuts, len(texts)])]
    index = BM25Index.build(blocks[0])
    for block in blocks[1:]:
        index = index.with_segment(BM25Index.segment_for(block))
    return index.without_rows(deleted) if deleted else index


@pytest.fixture(scope="module")
def random_index() -> tuple[BM25Index, list[str]]:
    rng = np.random.default_rng(7)
    texts = random_texts(rng, 400)
    return segmented(texts, [150, 260, 330], deleted=sorted(rng.choice(400, 40, replace=False).tolist())), texts


@pytest.fixture(params=[0.0, bm25.EXHAUSTIVE_BELOW], ids=["always-pruned", "default"])
def pruning(request, monkeypatch) -> float:
    """Prune every query (0), or only those with many postings per row, as the service does."""
    monkeypatch.setattr(bm25, "EXHAUSTIVE_BELOW", request.param)
    return request.param


def test_pruned_top_k_equals_exhaustive_on_random_queries(random_index, pruning) -> None:
    index, _ = random_index
    queries = random_queries(np.random.default_rng(1), 120)
    for query in queries:
        for k in (1, 2, 5, 10, 50, 1000):
            pruned = index.search(query, k)
            assert pruned == index.search(query, k, prune=False), (query, k)
            assert not {row for row, _ in pruned} & set(index.deleted.tolist())


@pytest.mark.parametrize("read_above", [0, 4, 10**9], ids=["binary-search", "default", "read-lists"])
def test_both_lookup_paths_give_the_exhaustive_top_k(random_index, monkeypatch, read_above: int) -> None:
    """Phase 2 finds candidates by binary search or by reading a list against the row -> candidate map: same top k."""
    monkeypatch.setattr(bm25, "EXHAUSTIVE_BELOW", 0.0)
    monkeypatch.setattr(bm25, "LOOKUP_READ_ABOVE", read_above)
    index, _ = random_index
    for query in random_queries(np.random.default_rng(3), 60):
        for k in (1, 5, 50):
            assert index.search(query, k) == index.search(query, k, prune=False), (query, k)


def test_concurrent_searches_share_no_scratch(random_index, monkeypatch) -> None:
    """Searches on threads each take their own work arrays, left all zeros for the next: results stay exact."""
    monkeypatch.setattr(bm25, "EXHAUSTIVE_BELOW", 0.0)
    index, _ = random_index
    queries = random_queries(np.random.default_rng(4), 80)
    expected = [index.search(q, 10, prune=False) for q in queries]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda q: index.search(q, 10), queries * 4))
    assert got == expected * 4
    assert 1 <= len(index._scratch) <= bm25._SCRATCH_KEPT
    assert all(not s.dense.any() and not s.seen.any() and not s.slot.any() for s in index._scratch)


def test_pruned_top_k_equals_exhaustive_within_allowed_rows(random_index, pruning) -> None:
    index, _ = random_index
    rng = np.random.default_rng(2)
    for query in random_queries(rng, 60):
        for size in (1, 5, 40, 300):  # few rows: they are the candidates; many: a mask on the postings
            allowed = rng.choice(len(index), size, replace=True)  # unordered, repeats, deleted rows included
            for k in (1, 10):
                pruned = index.search(query, k, rows=allowed)
                assert pruned == index.search(query, k, rows=allowed, prune=False), (query, size, k)
                assert {row for row, _ in pruned} <= set(allowed.tolist())
    assert index.search(ALPHABET, 5, rows=[]) == []


def test_scores_are_bm25_over_the_live_rows(random_index) -> None:
    """The reference path itself, against BM25 written out term by term over the live rows."""
    index, texts = random_index
    live = [r for r in range(len(texts)) if r not in set(index.deleted.tolist())]
    docs = {r: Counter(index.query_terms(texts[r])) for r in live}
    lengths = {r: sum(docs[r].values()) for r in live}
    avgdl = sum(lengths.values()) / len(live)
    k1, b = index.params.k1, index.params.b
    for query in random_queries(np.random.default_rng(3), 10):
        expected = np.zeros(len(texts))
        for term, asked in index.query_terms(query).items():
            df = sum(term in docs[r] for r in live)
            idf = math.log1p((len(live) - df + 0.5) / (df + 0.5))
            for r in live:
                tf = docs[r][term]
                if tf:
                    expected[r] += asked * idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[r] / avgdl))
        np.testing.assert_allclose(index.scores(query), expected, rtol=2e-5, atol=1e-6)


def test_ties_are_broken_by_row_on_both_paths(pruning) -> None:
    texts = ["古塔区", "经济", "古塔区", "古塔区", "经济", "古塔区"] * 5
    index = segmented(texts, [7, 19], deleted=[2])
    for k in range(1, 25):
        expected = index.search("古塔区", k, prune=False)
        assert index.search("古塔区", k) == expected
        rows = [row for row, _ in expected]
        assert len({s for _, s in expected}) == 1 and rows == sorted(rows) and 2 not in rows


def test_segment_bounds_hold_for_every_posting(random_index) -> None:
    index, _ = random_index
    for segment in index.segments:
        for j in range(segment.vocab.size):
            a, b = segment.indptr[j], segment.indptr[j + 1]
            assert segment.max_tf[j] == segment.tf[a:b].max()
            assert segment.min_len[j] == segment.lengths[segment.rows[a:b]].min()
    merged = index.merged(0, len(index.segments))
    fresh = BM25Segment.concat(index.segments)
    np.testing.assert_array_equal(merged.segments[0].max_tf, fresh.max_tf)
    for query in random_queries(np.random.default_rng(4), 40):
        plan = index._plan(query)
        if plan is None:
            continue
        scores_by_term = [index._contributions(plan.weights[t], *_live_postings(index, plan, t))
                          for t in range(plan.weights.size)]
        assert all(s.max() <= bound for s, bound in zip(scores_by_term, plan.bounds, strict=True))
        assert list(plan.bounds) == sorted(plan.bounds, reverse=True)


def _live_postings(index: BM25Index, plan, t: int) -> tuple[np.ndarray, np.ndarray]:
    rows, tf = index._term_postings(plan, t)
    keep = ~np.isin(rows, index.deleted)
    return rows[keep], tf[keep]


def test_a_common_term_is_looked_up_not_read(monkeypatch) -> None:
    """With a rare term setting the bar, the long list of a common term is only searched for the candidates."""
    monkeypatch.setattr(bm25, "EXHAUSTIVE_BELOW", 0.0)
    texts = ["经济发展"] * 300 + ["古塔区经济"] + ["经济"] * 300
    index = segmented(texts, [200, 400], deleted=[5])
    read: list[int] = []
    term_postings = BM25Index._term_postings

    def counting(self, plan, t):
        rows, tf = term_postings(self, plan, t)
        read.append(rows.size)
        return rows, tf

    monkeypatch.setattr(BM25Index, "_term_postings", counting)
    assert index.search("古塔经济", 1) == index.search("古塔经济", 1, prune=False)
    assert index.search("古塔经济", 1)[0][0] == 300
    assert max(read) == 1  # only the rare terms' lists (古, 古塔: one posting each) were read whole


def test_an_index_saved_without_bounds_loads_with_them(random_index, tmp_path: Path) -> None:
    index, _ = random_index
    index.save(tmp_path / "bm25")
    for path in tmp_path.glob("bm25/segment-*/m*_*.npy"):  # max_tf.npy, min_len.npy: what the old format lacks
        path.unlink()
    loaded = BM25Index.load(tmp_path / "bm25")
    for old, new in zip(index.segments, loaded.segments, strict=True):
        np.testing.assert_array_equal(old.max_tf, new.max_tf)
        np.testing.assert_array_equal(old.min_len, new.min_len)
    for query in random_queries(np.random.default_rng(5), 20):
        assert loaded.search(query, 10) == index.search(query, 10)


def test_bounds_that_do_not_fit_the_vocabulary_are_refused(tmp_path: Path) -> None:
    BM25Index.build(CORPUS).save(tmp_path / "bm25")
    np.save(tmp_path / "bm25" / "segment-0000" / "max_tf.npy", np.zeros(3, np.uint16))
    with pytest.raises(ValueError, match="inconsistent"):
        BM25Index.load(tmp_path / "bm25")


def test_deleted_postings_are_counted_once_per_segment_and_handed_on() -> None:
    texts = CORPUS * 3
    index = segmented(texts, [6, 12], deleted=[1, 3])
    query = "发展经济改革"
    index.search(query, 3)
    counted = index._dead_terms[0]
    assert counted is not None and index._dead_terms[1] is None  # segment 1 has no deleted row
    later = index.without_rows([13]).with_segment(BM25Index.segment_for(CORPUS[:2]))
    assert later._dead_terms[0] is counted and later._dead_terms[2] is None  # segment 2 changed
    live = [r for r in range(len(later)) if r not in (1, 3, 13)]
    rebuilt = BM25Index.build([(texts + CORPUS[:2])[r] for r in live])
    for q in [query, *QUERIES]:
        np.testing.assert_allclose(later.scores(q)[live], rebuilt.scores(q), rtol=1e-6)
        assert later.search(q, 4) == later.search(q, 4, prune=False)
        assert [later.doc_freq(t) for t in later.query_terms(q)] == [rebuilt.doc_freq(t) for t in later.query_terms(q)]


@pytest.mark.parametrize("read_above", [0, 4, 10**9], ids=["binary-search", "default", "read-lists"])
def test_tied_duplicates_across_many_segments_give_the_exhaustive_top_k(monkeypatch, read_above: int) -> None:
    """Exact ties spread over segments (one of them empty, one without a token), k cutting through a tie: the
    pruned path picks the same rows as scoring everything, on both lookup paths."""
    monkeypatch.setattr(bm25, "EXHAUSTIVE_BELOW", 0.0)
    monkeypatch.setattr(bm25, "LOOKUP_READ_ABOVE", read_above)
    rng = np.random.default_rng(11)
    distinct = random_texts(rng, 12)  # 12 texts repeated: every score is shared by ~50 rows
    texts = [distinct[i] for i in rng.integers(0, 12, 600)]
    index = segmented(texts, [80, 200, 260, 400, 520], deleted=sorted(rng.choice(600, 30, replace=False).tolist()))
    index = index.with_segment(BM25Index.segment_for([])).with_segment(BM25Index.segment_for(["，。", "！"]))
    index = index.with_segment(BM25Index.segment_for(distinct))
    assert len(index.segments) == 9 and len(index.segments[6]) == 0
    for query in random_queries(np.random.default_rng(12), 60):
        for k in (1, 7, 30, 55, 200):
            expected = index.search(query, k, prune=False)
            assert index.search(query, k) == expected, (query, k)
