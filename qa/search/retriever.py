"""Hybrid retrieval: jieba/character BM25 and dense vectors, fused by a normalized weighted sum (or RRF)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from embeddings import Embedder
from qa.errors import DocumentNotFoundError, InvalidQueryError
from qa.search.answer import passage_scorer
from qa.search.fusion import rrf, weighted_sum
from qa.search.reading import TermWeights
from qa.search.roles import (
    AskedRole,
    asked_metadata,
    asked_role,
    asks_publication,
    header_answers,
    header_holds,
    states_role,
)
from qa.text import normalize
from qa.types import Document, Hit, Passage

SEARCH_MODES = ("hybrid", "dense", "bm25")
# Questions a title block (title, speaker, date, place lines) can answer.
_METADATA_QUESTION = re.compile(r"谁|哪位|什么时候|哪天|哪一天|何时|哪年|日期|时间|标题|题目|作者|讲话人|发言人|署名|发布|来源|地点|在哪")
TITLE_BLOCK_FACTOR = 0.5
# A title block pushed under a body passage that states the asked role scores this share of that passage's score.
STATED_BELOW = 0.99
_SEARCHABLE = re.compile(r"[^\W_]")
FUSION_METHODS = ("weighted", "rrf")


def asks_metadata(query: str) -> bool:
    """Whether a question asks who, when, where or which document (title blocks then keep their score)."""
    return _METADATA_QUESTION.search(query) is not None


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """How results are found and fused.

    Attributes:
        fusion: "weighted" (min-max normalized weighted sum; measured best here) or "rrf".
        bm25_weight / dense_weight: weights of each signal in [0, 1].
        candidates: how many results each signal contributes before fusion.
        sentence_weight: share of a passage's dense score that comes from its best sentence (the rest from the
            passage vector); an index without sentence vectors uses the passage vector alone.
        rerank_weight / rerank_depth: hybrid search adds `rerank_weight` times the answer-sentence score of a
            passage's best sentence (see `qa.search.answer.passage_scorer`) to the fused score of its
            `rerank_depth` best candidates; 0 turns it off.
        max_top_k / max_query_chars: the largest request accepted.
        ef_search / nprobe: search breadth of an HNSW / IVF vector index (ignored by the exact one).
    """

    fusion: str = "weighted"
    bm25_weight: float = 0.5
    dense_weight: float = 0.5
    candidates: int = 50
    sentence_weight: float = 0.5
    rerank_weight: float = 2.5
    rerank_depth: int = 10
    max_top_k: int = 100
    max_query_chars: int = 2000
    ef_search: int = 128
    nprobe: int = 32

    def __post_init__(self) -> None:
        if self.fusion not in FUSION_METHODS:
            raise ValueError(f"fusion must be one of {', '.join(FUSION_METHODS)}, got {self.fusion!r}")
        for name in ("bm25_weight", "dense_weight", "sentence_weight"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")
        if not (0.0 <= self.rerank_weight <= 100.0):
            raise ValueError(f"rerank_weight must be in [0, 100], got {self.rerank_weight}")
        if self.rerank_depth < 0:
            raise ValueError(f"rerank_depth must be >= 0, got {self.rerank_depth}")


def validate_request(query: str, top_k: int, mode: str, config: RetrievalConfig) -> str:
    """Check a search request; returns the stripped query.

    Raises:
        InvalidQueryError: the message names the bad value and the allowed range.
    """
    if not isinstance(query, str) or not query.strip():
        raise InvalidQueryError("query is empty; ask a question in a few words")
    query = query.strip()
    if len(query) > config.max_query_chars:
        raise InvalidQueryError(f"query is {len(query)} characters long; the limit is {config.max_query_chars}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= config.max_top_k:
        raise InvalidQueryError(f"top_k must be an integer in [1, {config.max_top_k}], got {top_k!r}")
    if mode not in SEARCH_MODES:
        raise InvalidQueryError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
    if not _SEARCHABLE.search(normalize(query)):
        raise InvalidQueryError("query has no searchable characters (letters, digits or Chinese characters)")
    return query


class SearchIndex(Protocol):
    """What the retriever needs from a backend (`qa.index.segments.IndexData` for FAISS, `qa.index.milvus_index.MilvusIndex`).

    Rows are integer passage ids: `passages[row]`, and the keys of what the two searches return.
    """

    documents: Mapping[str, Document]
    doc_rows: Mapping[str, Sequence[int]]
    header_rows: frozenset[int]
    passages: Sequence[Passage]

    @property
    def passage_count(self) -> int: ...

    def keyword_search(self, query: str, n: int, doc_ids: list[str] | None = None) -> dict[int, float]: ...

    def dense_search(self, vector: np.ndarray, n: int, doc_ids: list[str] | None = None,
                     sentence_weight: float = 1.0) -> dict[int, float]: ...

    def tune(self, ef_search: int, nprobe: int) -> None: ...

    def index_texts(self) -> list[str]: ...


class HybridRetriever:
    """Ranks passages of one loaded index for a question."""

    def __init__(self, data: SearchIndex, embedder: Embedder, config: RetrievalConfig | None = None,
                 weights: TermWeights | None = None):
        """`weights`: the index's term weights (the service's, shared with the answer); read from the passages on
        first use when None."""
        self.data = data
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self._weights = weights
        data.tune(ef_search=self.config.ef_search, nprobe=self.config.nprobe)

    @property
    def weights(self) -> TermWeights:
        if self._weights is None:
            # The live rows' texts as BM25 saw them (a deleted document's rows stay in `passages` until compaction).
            self._weights = TermWeights(self.data.index_texts())
        return self._weights

    def _rerank(self, query: str, ranked: list[tuple[int, float]],
                answering_headers: frozenset[int] = frozenset()) -> list[tuple[int, float]]:
        """The best `rerank_depth` candidates gain `rerank_weight` times their best answering sentence's score.

        Fusion judges a passage as a whole, so an article's opening paragraph, which names its subject again and
        again and is about everything the article says, outranks the passage whose one sentence answers
        (`1992年4月，罗保铭担任什么职务` -> `1992年4月，任中共天津市大港区委副书记…`). The answer sentence's score (its
        coverage of the question, with the title's words counted for every sentence, the asked kind of value, the
        asked attribute) tells them apart. Scores only grow, so the list stays sorted above the rest.

        `answering_headers` are title blocks that hold what a who/when/which-document question asks (kept up by
        `_demote_title_blocks`): their answer is a metadata line (`(2020年7月25日)`) that shares no words with the
        question, so they gain as much as the best other candidate, which keeps their place. When the question asks
        when the document was published, which no body passage says, they go first.
        """
        depth, weight = self.config.rerank_depth, self.config.rerank_weight
        if not ranked or not depth or not weight:
            return ranked
        score = passage_scorer(query, self.weights)
        passages = self.data.passages
        gains = {row: weight * score(passages[row].text, passages[row].doc_title)
                 for row, _ in ranked[:depth] if row not in answering_headers}
        best = max(gains.values(), default=0.0)
        head = [(row, fused + gains.get(row, best)) for row, fused in ranked[:depth]]
        if answering_headers and asks_publication(query):
            top = max(score for row, score in head)
            head = [(row, top + 1e-6 if row in answering_headers else score) for row, score in head]
        return sorted(head + ranked[depth:], key=lambda rs: (-rs[1], rs[0]))

    def _check_ids(self, doc_ids: list[str] | None) -> list[str] | None:
        if not doc_ids:
            return None
        for doc_id in doc_ids:
            if doc_id not in self.data.doc_rows:
                raise DocumentNotFoundError(f"unknown document id {doc_id!r}")
        return list(doc_ids)

    def _keyword(self, query: str, doc_ids: list[str] | None, n: int) -> dict[int, float]:
        return self.data.keyword_search(normalize(query), n, doc_ids)

    def _dense(self, query: str, doc_ids: list[str] | None, n: int) -> dict[int, float]:
        vector = self.embedder.encode_queries([normalize(query)])[0]
        return self.data.dense_search(vector, n, doc_ids, sentence_weight=self.config.sentence_weight)

    def _demote_title_blocks(self, query: str,
                             ranked: list[tuple[int, float]]) -> tuple[list[tuple[int, float]], frozenset[int]]:
        """Push title-block passages down unless the question asks for metadata (who, when, which document).

        A title block shares the document's title words with every question that names the document
        (`县委扩大会议讲话要求落实的“两个责任”是什么`), yet it only answers who spoke, when and where. For who-chaired /
        when-held questions it is pushed down too when it does not hold the answer or a body passage of its
        document states it (see `qa.search.roles`).

        Returns the ranking and the title blocks kept because they hold what the question asks.
        """
        header_rows = self.data.header_rows
        if not any(row in header_rows for row, _ in ranked[:10]):
            return ranked, frozenset()
        asked = asked_role(query)
        if asked is not None:
            ceiling = self._role_headers(asked, ranked[:10])
        elif asks_metadata(query):
            # A title block answers only what it holds: a bare title has no date, a speaker is not a designer.
            fields = asked_metadata(query)
            documents, passages = self.data.documents, self.data.passages
            ceiling = {row: float("inf") for row, _ in ranked if row in header_rows and not header_answers(
                fields, getattr(documents.get(passages[row].doc_id), "meta", None))}
        else:
            ceiling = dict.fromkeys(header_rows, float("inf"))
        answering = frozenset(row for row, _ in ranked[:10] if row in header_rows and row not in ceiling)
        if not ceiling:
            return ranked, answering
        adjusted = [(row, min(score * TITLE_BLOCK_FACTOR, ceiling[row]) if row in ceiling else score)
                    for row, score in ranked]
        if asked is not None:
            adjusted = self._body_first(asked, ranked[:10], adjusted)
        return sorted(adjusted, key=lambda rs: (-rs[1], rs[0])), answering

    def _body_first(self, asked: AskedRole, top: list[tuple[int, float]],
                    adjusted: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """The best passage of a document stating the asked role takes the place its title block held above it."""
        passages, header_rows = self.data.passages, self.data.header_rows
        header_score = {passages[row].doc_id: score for row, score in top if row in header_rows}
        lifted: dict[int, float] = {}
        for row, score in top:
            doc_id = passages[row].doc_id
            if row not in header_rows and doc_id in header_score and states_role(passages[row].text, asked):
                lifted[row] = max(score, header_score.pop(doc_id))
        return [(row, lifted.get(row, score)) for row, score in adjusted]

    def _role_headers(self, asked: AskedRole, top: list[tuple[int, float]]) -> dict[int, float]:
        """Title blocks among `top` that do not answer a who/when question, each with a score it must stay below.

        A title block is pushed down when it does not hold what is asked, and placed under the best passage of
        its document that states it (`区委副书记魏少峰主持会议`) when one is among `top`.
        """
        passages, header_rows = self.data.passages, self.data.header_rows
        stating: dict[str, float] = {}
        for row, score in top:
            if row not in header_rows and states_role(passages[row].text, asked):
                stating.setdefault(passages[row].doc_id, score * STATED_BELOW)
        ceiling = {}
        for row, _ in top:
            if row in header_rows:
                doc_id = passages[row].doc_id
                doc = self.data.documents.get(doc_id)
                if doc_id in stating:
                    ceiling[row] = stating[doc_id]
                elif not header_holds(asked, doc.meta if doc else None):
                    ceiling[row] = float("inf")
        return ceiling

    def search(self, query: str, top_k: int = 5, mode: str = "hybrid", doc_ids: list[str] | None = None) -> list[Hit]:
        """Rank passages for `query`, best first.

        Args:
            query: the question (1 to `max_query_chars` characters).
            top_k: how many hits, in [1, `max_top_k`].
            mode: "hybrid", "dense" or "bm25".
            doc_ids: search only these documents.

        Returns:
            Up to `top_k` hits with the fused score and its normalized parts.

        Raises:
            InvalidQueryError: a parameter out of range.
            DocumentNotFoundError: an unknown id in `doc_ids`.
        """
        query = validate_request(query, top_k, mode, self.config)
        doc_ids = self._check_ids(doc_ids)
        n = max(self.config.candidates, top_k)
        keyword = self._keyword(query, doc_ids, n) if mode in ("hybrid", "bm25") else {}
        dense = self._dense(query, doc_ids, n) if mode in ("hybrid", "dense") else {}
        if mode == "bm25":
            ranked = sorted(keyword.items(), key=lambda kv: (-kv[1], kv[0]))
        elif mode == "dense":
            ranked = sorted(dense.items(), key=lambda kv: (-kv[1], kv[0]))
        elif self.config.fusion == "rrf":
            ranked = rrf([list(keyword), list(dense)], weights=[self.config.bm25_weight, self.config.dense_weight])
        else:
            ranked = weighted_sum([keyword, dense], [self.config.bm25_weight, self.config.dense_weight])
        ranked, answering_headers = self._demote_title_blocks(query, ranked)
        if mode == "hybrid":
            ranked = self._rerank(query, ranked, answering_headers)
        return [
            Hit(passage=self.data.passages[row], score=float(score),
                dense_score=dense.get(row) if mode != "bm25" else None,
                keyword_score=keyword.get(row) if mode != "dense" else None)
            for row, score in ranked[:top_k]
        ]
