"""Offline evaluation: score retrieval and the "不知道" decision on a question set.

Question files are JSON Lines in the dev-set format (`id`, `question`, `evidence`, `type`, ...): a passage hits
when it contains an evidence string after NFKC + whitespace removal. BEIR folders (corpus.jsonl, queries.jsonl,
qrels/*.tsv) are read too: there a passage hits when its document is relevant.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qa.errors import QAError
from qa.metrics import first_hit_rank, hit_at_k, mrr_at_k, percentile
from qa.types import Answer

UNANSWERABLE = "unanswerable"
MAX_RANK = 10


class EvalInputError(QAError):
    """A question file or BEIR folder cannot be read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Question:
    """One evaluation question. `relevant_docs` is set for BEIR questions, `evidence` for dev-set ones."""

    qid: str
    question: str
    type: str = "factoid"
    evidence: tuple[str, ...] = ()
    relevant_docs: frozenset[str] = frozenset()

    @property
    def answerable(self) -> bool:
        return self.type != UNANSWERABLE and bool(self.evidence or self.relevant_docs)


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """What came back for one question."""

    question: Question
    rank: int | None  # 1-based rank of the first hit within MAX_RANK, None when none
    answerable: bool  # the service's verdict
    answer: str
    top_passages: tuple[str, ...]
    latency_ms: float


@dataclass(frozen=True, slots=True)
class EvalReport:
    mode: str
    results: tuple[QuestionResult, ...]
    summary: dict = field(default_factory=dict)


def load_questions(path: Path) -> list[Question]:
    """Read a dev-set style JSON Lines file.

    Raises:
        EvalInputError: missing file, bad JSON, or a line without `question`.
    """
    if not path.is_file():
        raise EvalInputError(f"{path}: no such question file")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalInputError(f"{path}:{number}: not valid JSON ({e.msg})") from e
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
            raise EvalInputError(f"{path}:{number}: each line needs a non-empty \"question\" string")
        evidence = row.get("evidence") or []
        if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
            raise EvalInputError(f"{path}:{number}: \"evidence\" must be a list of strings")
        qtype = row.get("type") or ("factoid" if evidence else UNANSWERABLE)
        questions.append(Question(str(row.get("id", number)), row["question"], qtype, tuple(evidence)))
    if not questions:
        raise EvalInputError(f"{path}: holds no questions")
    return questions


def load_beir(folder: Path, split: str = "test") -> tuple[list[dict], list[Question]]:
    """Read a BEIR-style folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv.

    Returns:
        The corpus rows (`_id`, `title`, `text`) and the questions whose `relevant_docs` hold corpus `_id`s.
    """
    corpus_path, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for path in (corpus_path, queries_path, qrels_path):
        if not path.is_file():
            raise EvalInputError(f"{folder}: not a BEIR folder ({path.relative_to(folder)} is missing)")
    try:
        corpus = [json.loads(line) for line in corpus_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        queries = {str(q["_id"]): q["text"] for q in (json.loads(line) for line in
                   queries_path.read_text(encoding="utf-8").splitlines() if line.strip())}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise EvalInputError(f"{folder}: cannot read corpus/queries ({e})") from e
    for number, row in enumerate(corpus, 1):
        if not isinstance(row, dict) or "_id" not in row:
            raise EvalInputError(f"{corpus_path}:{number}: each corpus line needs an \"_id\"")
    relevant: dict[str, set[str]] = {}
    with qrels_path.open(encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) < 3 or row[0] in ("query-id", "query_id"):
                continue
            if float(row[2]) > 0:
                relevant.setdefault(row[0], set()).add(row[1])
    questions = [Question(qid, queries[qid], "beir", (), frozenset(docs))
                 for qid, docs in relevant.items() if qid in queries]
    if not questions:
        raise EvalInputError(f"{folder}: no query in {qrels_path.name} is in queries.jsonl")
    return corpus, questions


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
        doc_id_of: maps an index document id back to a BEIR corpus id (BEIR questions only).
    """
    results = []
    for q in questions:
        started = time.perf_counter()
        answer = ask(q.question)
        latency = (time.perf_counter() - started) * 1000
        texts = [h.passage.text for h in answer.hits[:MAX_RANK]]
        if q.relevant_docs:
            docs = [doc_id_of(h.passage.doc_id) if doc_id_of else h.passage.doc_id for h in answer.hits[:MAX_RANK]]
            rank = next((i for i, d in enumerate(docs, 1) if d in q.relevant_docs), None)
        else:
            rank = first_hit_rank(texts, list(q.evidence)) if q.evidence else None
        results.append(QuestionResult(q, rank, answer.answerable, answer.text, tuple(texts[:3]), latency))
    return EvalReport(mode, tuple(results), summarize(results))


def summarize(results: list[QuestionResult] | tuple[QuestionResult, ...]) -> dict:
    """The metrics of `qa eval --json`: hit@k and MRR@10 over answerable questions, flag rates, latency."""
    answerable = [r for r in results if r.question.answerable]
    unanswerable = [r for r in results if not r.question.answerable]
    ranks = [r.rank for r in answerable]
    by_type: dict[str, dict] = {}
    for qtype in sorted({r.question.type for r in answerable}):
        type_ranks = [r.rank for r in answerable if r.question.type == qtype]
        by_type[qtype] = {"n": len(type_ranks), "hit@1": _round(hit_at_k(type_ranks, 1)),
                          "hit@5": _round(hit_at_k(type_ranks, 5)), "mrr@10": _round(mrr_at_k(type_ranks, 10))}
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
        "answerable_flagged": _round(sum(not r.answerable for r in answerable) / len(answerable))
        if answerable else 0.0,
        "by_type": by_type,
        "latency_ms": {"p50": _round(percentile(latencies, 50), 2), "p95": _round(percentile(latencies, 95), 2)},
    }


def hit_curve(results: tuple[QuestionResult, ...]) -> list[float]:
    """hit@k for k = 1..10 over answerable questions."""
    ranks = [r.rank for r in results if r.question.answerable]
    return [hit_at_k(ranks, k) if ranks else 0.0 for k in range(1, MAX_RANK + 1)]


def _round(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def write_report(reports: list[EvalReport], folder: Path, source: str, worst: int = 10) -> Path:
    """Write `report.md` (metrics and the worst questions) and `hit_at_k.png` (hit@k per mode) into `folder`."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for report in reports:
        ax.plot(range(1, MAX_RANK + 1), hit_curve(report.results), marker="o", label=report.mode)
    ax.set_xlabel("k")
    ax.set_ylabel("hit@k")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(range(1, MAX_RANK + 1))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("hit@k by search mode")
    fig.tight_layout()
    fig.savefig(folder / "hit_at_k.png")
    plt.close(fig)

    lines = [f"# Retrieval evaluation: {source}", "", "![hit@k](hit_at_k.png)", "",
             "| mode | n | hit@1 | hit@3 | hit@5 | MRR@10 | unanswerable flagged | answerable flagged | p50 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        s = r.summary
        lines.append(f"| {r.mode} | {s['n']} | {s['hit@1']:.3f} | {s['hit@3']:.3f} | {s['hit@5']:.3f} | "
                     f"{s['mrr@10']:.3f} | {s['unanswerable']['flagged']:.3f} | {s['answerable_flagged']:.3f} | "
                     f"{s['latency_ms']['p50']:.1f} |")
    for r in reports:
        lines += ["", f"## Worst questions ({r.mode})", ""]
        misses = sorted((x for x in r.results if x.question.answerable),
                        key=lambda x: (x.rank is not None, -(x.rank or 0)))[:worst]
        wrong_flags = [x for x in r.results if x.question.answerable != x.answerable]
        for x in misses:
            if x.rank == 1:
                continue
            expected = " / ".join(x.question.evidence) or ", ".join(sorted(x.question.relevant_docs))
            lines += [f"### {x.question.qid} ({x.question.type}): {x.question.question}",
                      f"- rank of first hit: {x.rank or 'none in top 10'}",
                      f"- expected: {expected}",
                      f"- got first: {_one_line(x.top_passages[0]) if x.top_passages else '(nothing)'}", ""]
        if wrong_flags:
            lines += [f"### Wrong 不知道 decisions ({r.mode})", ""]
            lines += [f"- {x.question.qid} ({x.question.type}) {x.question.question}: said "
                      f"{'answerable' if x.answerable else 'unanswerable'}; answer: {_one_line(x.answer)}"
                      for x in wrong_flags]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
