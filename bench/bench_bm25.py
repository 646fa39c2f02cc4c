"""BM25 top-k on a large generated corpus: exhaustive scoring against MaxScore pruning, on the same index and queries.

Usage:
    python bench/bench_bm25.py --size 100000 [--queries 300] [--k 50] [--delete 0.01] [--workdir DIR]

The passages of `bench/make_corpus.py` (seed 0) are tokenized into BM25 segments of `qa.index.build.SEGMENT_ROWS`
rows, as the service builds them, and saved once under the work folder (reused by later runs: the index, never
a query result). The saved index is loaded memory-mapped, as the service loads it. Queries: the dev questions plus
fragments of random passages (6-24 characters, the length of a question), distinct. One untimed pass pages their
postings in (a running service has them in the page cache); then each is asked once per path, the two paths
alternating query by query so that load on the shared cores hits both alike. Every pruned top k is checked against
the exhaustive one (same rows, same order, same scores). "pruned" is `BM25Index.search`, the service's path: MaxScore,
or exhaustive scoring when the query's lists hold fewer than `EXHAUSTIVE_BELOW` postings per row.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_http import percentile
from make_corpus import DEFAULT_DIR, default_path, read_jsonl, write_jsonl

from qa.index.bm25 import EXHAUSTIVE_BELOW, BM25Index, BM25Params, top_k
from qa.index.build import SEGMENT_ROWS
from qa.text import normalize

DEV_QUESTIONS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"


def build(texts: list[str], directory: Path) -> BM25Index:
    """Segments of SEGMENT_ROWS rows built on all cores (tokenizing is pure Python), saved to `directory`."""
    chunks = [texts[i:i + SEGMENT_ROWS] for i in range(0, len(texts), SEGMENT_ROWS)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        segments = list(pool.map(BM25Index.segment_for, chunks))
    index = BM25Index(segments, BM25Params())
    index.save(directory)
    return index


def dev_questions() -> list[str]:
    if not DEV_QUESTIONS.is_file():
        return []
    return [json.loads(line)["question"] for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line]


def make_queries(texts: list[str], count: int, seed: int = 1) -> list[str]:
    """The dev questions first, then distinct fragments of random passages."""
    asked = dev_questions()
    rng = random.Random(seed)
    seen = set(asked)
    while len(asked) < count:
        text = texts[rng.randrange(len(texts))]
        length = rng.randint(6, 24)
        start = rng.randrange(max(1, len(text) - length))
        fragment = text[start:start + length]
        if fragment not in seen:
            seen.add(fragment)
            asked.append(fragment)
    return asked[:count]


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - started) * 1000


def stats(values: list[float]) -> str:
    return f"{percentile(values, 50):.2f} / {percentile(values, 95):.2f} / {percentile(values, 99):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="passages in the generated corpus")
    parser.add_argument("--queries", type=int, default=300, help="distinct queries (dev questions + fragments)")
    parser.add_argument("--k", type=int, default=50, help="top k (the service asks BM25 for 50 candidates)")
    parser.add_argument("--delete", type=float, default=0.01, help="share of rows deleted in the second pass")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_DIR / "bm25")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()

    corpus = default_path(args.size, 0)
    if not corpus.is_file():
        write_jsonl(corpus, args.size, 0)
    texts = [normalize(row["text"]) for row in read_jsonl(corpus)]
    directory = args.workdir / f"index-{args.size}"
    if not (directory / "qa_bm25.json").is_file():
        _, ms = timed(build, texts, directory)
        print(f"built {len(texts)} passages into {directory} in {ms / 1000:.1f} s")
    if args.build_only:
        return
    index = BM25Index.load(directory)
    queries = make_queries(texts, args.queries)
    n_dev = min(len(dev_questions()), len(queries))
    print(f"{index!r}; {len(queries)} distinct queries, k={args.k}\n")
    print("| index | path | p50 / p95 / p99 ms |\n|---|---|---|")
    rng = np.random.default_rng(0)
    variants = [("all rows live", index)]
    if args.delete > 0:
        dead = rng.choice(len(index), int(len(index) * args.delete), replace=False)
        variants.append((f"{args.delete:.0%} rows deleted", index.without_rows(dead)))
    for label, idx in variants:
        if idx.deleted.size:
            _, ms = timed(idx.search, "首次查询", args.k)
            print(f"| {label} | first query after the deletion (counts the deleted rows' terms, once per segment) | "
                  f"{ms:.0f} |")
        for query in queries:  # page the query terms' postings in, as in a service that has been running
            idx.scores(query)
        exhaustive, scoring, pruned, pruned_share = [], [], [], 0
        for i, query in enumerate(queries):
            # Alternate which path goes first, so neither always finds the postings freshly paged in.
            for path in (("e", "p") if i % 2 == 0 else ("p", "e")):
                if path == "e":
                    scores, ms_score = timed(idx.scores, query)
                    expected, ms_top = timed(top_k, scores, args.k)
                    scoring.append(ms_score)
                    exhaustive.append(ms_score + ms_top)
                else:
                    got, ms = timed(idx.search, query, args.k)
                    pruned.append(ms)
            if got != expected:
                raise SystemExit(f"pruned top {args.k} differs from exhaustive for {query!r}")
        print(f"| {label} | exhaustive: `scores` (dense array over all rows) | {stats(scoring)} |")
        print(f"| {label} | exhaustive: `scores` + `top_k` (the path before pruning) | {stats(exhaustive)} |")
        print(f"| {label} | **`search` top {args.k} (pruned)** | **{stats(pruned)}** |")
        plans = []
        for query in queries:
            plan, ms = timed(idx._plan, query)
            plans.append(ms)
            pruned_share += plan is not None and int((plan.ends - plan.starts).sum()) >= EXHAUSTIVE_BELOW * len(idx)
        print(f"| {label} | of which the query plan (tokenize, vocabulary lookups, live df, bounds), both paths | "
              f"{stats(plans)} |")
        if n_dev:
            print(f"| {label} | the {n_dev} dev questions alone: exhaustive `scores` + `top_k` / `search` | "
                  f"{stats(exhaustive[:n_dev])} / {stats(pruned[:n_dev])} |")
        ratio = [e / p for e, p in zip(exhaustive, pruned, strict=True)]
        print(f"| {label} | speed-up per query (exhaustive / `search`) | median {np.median(ratio):.1f}x, "
              f"min {min(ratio):.1f}x, max {max(ratio):.1f}x; {pruned_share} of {len(queries)} queries pruned |",
              flush=True)


if __name__ == "__main__":
    main()
