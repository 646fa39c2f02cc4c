"""One ranking from the hits of several knowledge bases, with scores that compare across them.

A knowledge base's hybrid score is a weighted sum of its signals each min-max normalized over *its own*
candidates, so every knowledge base's best passage scores near 1 however poorly it matches: those scores cannot be
compared. Here the raw signals are fused again over the union of all candidates, as one index holding every
knowledge base would: the dense signal is the cosine similarity (the same scale in every knowledge base that uses
the same embedding model) and the keyword signal the raw BM25 score (its IDF comes from each knowledge base's own
statistics, so equal texts in two knowledge bases get close, not equal, keyword scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from qa.search.fusion import minmax, rrf, weighted_sum
from qa.search.retriever import TITLE_BLOCK_FACTOR
from qa.types import Hit


@dataclass(frozen=True, slots=True)
class KnowledgeBaseHits:
    """One knowledge base's candidates for a question.

    Attributes:
        titles: passage ids among `hits` that are title blocks (demoted unless the question asks for metadata).
        model: the embedding model's name; cosine similarities compare only between equal models.
    """

    kb: str
    hits: tuple[Hit, ...]
    titles: frozenset[str] = frozenset()
    model: str = ""
    keyword_scale: float = 1.0


def fuse_knowledge_bases(results: Sequence[KnowledgeBaseHits], top_k: int, mode: str = "hybrid",
                         fusion: str = "weighted", bm25_weight: float = 0.7, dense_weight: float = 0.3,
                         demote_titles: bool = True) -> list[Hit]:
    """The best `top_k` hits over all knowledge bases, each naming its knowledge base, best first.

    Args:
        results: each knowledge base's candidates (raw `dense_score` and `keyword_score` set, as the retriever
            returns them).
        mode / fusion / weights: as in `RetrievalConfig`.
        demote_titles: multiply title-block scores by the retriever's TITLE_BLOCK_FACTOR (False for metadata
            questions, as the retriever decides).

    Returns:
        Hits whose `score` is the fused score over the union of candidates and `knowledge_base` is set.
    """
    items: list[tuple[str, Hit, bool]] = [(r.kb, hit, hit.passage.passage_id in r.titles)
                                          for r in results for hit in r.hits]
    keyword = _keyword_signal(results)
    dense = _dense_signal(results)
    if mode == "bm25":
        ranked = list(keyword.items())
    elif mode == "dense":
        ranked = list(dense.items())
    elif fusion == "rrf":
        by_keyword = sorted(keyword, key=lambda i: (-keyword[i], i))
        by_dense = sorted(dense, key=lambda i: (-dense[i], i))
        ranked = rrf([by_keyword, by_dense], weights=[bm25_weight, dense_weight])
    else:
        ranked = weighted_sum([keyword, dense], [bm25_weight, dense_weight])
    if demote_titles:
        ranked = [(i, s * TITLE_BLOCK_FACTOR if items[i][2] else s) for i, s in ranked]
    # Ties by knowledge base order, then rank within it: deterministic for equal copies.
    ranked.sort(key=lambda item: (-item[1], item[0]))
    return [replace(items[i][1], score=float(score), knowledge_base=items[i][0]) for i, score in ranked[:top_k]]


def _keyword_signal(results: Sequence[KnowledgeBaseHits]) -> dict[int, float]:
    """BM25 scores by item, each divided by its knowledge base's `keyword_scale`."""
    keyword: dict[int, float] = {}
    offset = 0
    for r in results:
        scale = r.keyword_scale if r.keyword_scale > 0 else 1.0
        keyword.update({offset + j: h.keyword_score / scale for j, h in enumerate(r.hits)
                        if h.keyword_score is not None})
        offset += len(r.hits)
    return keyword


def _dense_signal(results: Sequence[KnowledgeBaseHits]) -> dict[int, float]:
    """Cosine similarities by item; min-max normalized per knowledge base when their embedding models differ."""
    shared = len({r.model for r in results}) <= 1
    dense: dict[int, float] = {}
    offset = 0
    for r in results:
        own = {offset + j: h.dense_score for j, h in enumerate(r.hits) if h.dense_score is not None}
        dense.update(own if shared else minmax(own))
        offset += len(r.hits)
    return dense
