"""Run a question set through a search function and summarize retrieval, the answer text and the "不知道" decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from qa.evaluate.metrics import (
    contains_evidence,
    first_hit_rank,
    hit_at_k,
    mrr_at_k,
    percentile,
    same_document,
)
from qa.evaluate.questions import Question
from qa.types import Answer

MAX_RANK = 10


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """What came back for one question."""

    question: Question
    rank: int | None  # 1-based rank of the first hit within MAX_RANK, None when none
    answerable: bool  # the service's verdict
    answer: str  # Answer.text: what a chat user reads first
    top_passages: tuple[str, ...]
    latency_ms: float


@dataclass(frozen=True, slots=True)
class EvalReport:
    mode: str
    results: tuple[QuestionResult, ...]
    summary: dict = field(default_factory=dict)


def evaluate(
    ask: Callable[[str], Answer],
    questions: list[Question],
    mode: str,
    doc_id_of: Callable[[str], str] | None = None,
) -> EvalReport:
    """Ask every question and score what comes back.

    Args:
        ask: `ask(question)` returning the service's answer with its ranked hits (metrics look at the first 10).
        questions: the question set.
        mode: the search mode, for the report.
        doc_id_of: maps an index document id to the name the questions use for it: the BEIR corpus id, or the
            source file name that a dev-set question's `doc`/`docs` give. Without it, BEIR ids are compared as
            they are and `doc`/`docs` are not checked (any passage with the evidence hits).
    """
    results = []
    for q in questions:
        started = time.perf_counter()
        answer = ask(q.question)
        latency = (time.perf_counter() - started) * 1000
        hits = answer.hits[:MAX_RANK]
        texts = [h.passage.text for h in hits]
        if q.relevant_docs:
            docs = [doc_id_of(h.passage.doc_id) if doc_id_of else h.passage.doc_id for h in hits]
            rank = next((i for i, d in enumerate(docs, 1) if d in q.relevant_docs), None)
        elif q.evidence:
            in_doc = None
            if q.docs and doc_id_of is not None:
                names = [doc_id_of(h.passage.doc_id) for h in hits]
                in_doc = [name is not None and any(same_document(d, name) for d in q.docs) for name in names]
            rank = first_hit_rank(texts, list(q.evidence), in_doc)
        else:
            rank = None
        results.append(QuestionResult(q, rank, answer.answerable, answer.text, tuple(texts[:3]), latency))
    return EvalReport(mode, tuple(results), summarize(results))


def answer_holds_evidence(result: QuestionResult) -> bool:
    """Whether the answer text the service gave contains one of the question's evidence strings."""
    return contains_evidence(result.answer, result.question.evidence)


def summarize(results: list[QuestionResult] | tuple[QuestionResult, ...]) -> dict:
    """The metrics of `qa eval --json`: hit@k and MRR@10 over answerable questions, the answer text, flag rates,
    latency.

    `answer_contains_evidence` is the share of answerable questions with evidence strings whose answer text holds
    one (None when no question has evidence, e.g. BEIR); `wrongly_unanswerable` the share of answerable questions
    the service called unanswerable (`answerable_flagged` is the same figure under its old name). Both are also
    given per type.
    """
    answerable = [r for r in results if r.question.answerable]
    unanswerable = [r for r in results if not r.question.answerable]
    ranks = [r.rank for r in answerable]
    by_type: dict[str, dict] = {}
    for qtype in sorted({r.question.type for r in answerable}):
        of_type = [r for r in answerable if r.question.type == qtype]
        type_ranks = [r.rank for r in of_type]
        by_type[qtype] = {"n": len(type_ranks), "hit@1": _round(hit_at_k(type_ranks, 1)),
                          "hit@3": _round(hit_at_k(type_ranks, 3)), "hit@5": _round(hit_at_k(type_ranks, 5)),
                          "mrr@10": _round(mrr_at_k(type_ranks, 10)),
                          "answer_contains_evidence": _answer_share(of_type),
                          "wrongly_unanswerable": _flag_share(of_type)}
    latencies = [r.latency_ms for r in results]
    return {
        "n": len(results),
        "n_answerable": len(answerable),
        "hit@1": _round(hit_at_k(ranks, 1)) if ranks else 0.0,
        "hit@3": _round(hit_at_k(ranks, 3)) if ranks else 0.0,
        "hit@5": _round(hit_at_k(ranks, 5)) if ranks else 0.0,
        "mrr@10": _round(mrr_at_k(ranks, 10)) if ranks else 0.0,
        "unanswerable": {"n": len(unanswerable),
                         "flagged": _round(sum(not r.answerable for r in unanswerable) / len(unanswerable))
                         if unanswerable else 0.0},
        "answer_contains_evidence": _answer_share(answerable),
        "wrongly_unanswerable": _flag_share(answerable),
        "answerable_flagged": _flag_share(answerable),
        "by_type": by_type,
        "latency_ms": {"p50": _round(percentile(latencies, 50), 2), "p95": _round(percentile(latencies, 95), 2)},
    }


def hit_curve(results: tuple[QuestionResult, ...]) -> list[float]:
    """hit@k for k = 1..10 over answerable questions."""
    ranks = [r.rank for r in results if r.question.answerable]
    return [hit_at_k(ranks, k) if ranks else 0.0 for k in range(1, MAX_RANK + 1)]


def _answer_share(answerable: list[QuestionResult]) -> float | None:
    with_evidence = [r for r in answerable if r.question.evidence]
    if not with_evidence:
        return None
    return _round(sum(answer_holds_evidence(r) for r in with_evidence) / len(with_evidence))


def _flag_share(answerable: list[QuestionResult]) -> float:
    return _round(sum(not r.answerable for r in answerable) / len(answerable)) if answerable else 0.0


def _round(value: float, digits: int = 4) -> float:
    return round(float(value), digits)
