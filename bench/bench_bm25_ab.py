"""BM25 top k of this checkout against another commit's, side by side in one process, on the bench_bm25 index.

Usage:
    git archive <commit> qa | tar -x -C /tmp/base            # the other version's qa package
    python bench/bench_bm25_ab.py --size 1000000 --base /tmp/base [--variants base,new,new:exhaustive_below=0]

Both `BM25Index` classes load the same memory-mapped index that `bench/bench_bm25.py --size N` saved; the queries are
bench_bm25's. Each query is asked once per variant, the variants rotating query by query, and every top k must equal
the first variant's. Thread time (CPU of the calling thread) is reported next to wall time: on a shared machine it
is the steadier of the two. A variant `new:NAME=VALUE,...` sets module constants of `qa.index.bm25` first
(e.g. `new:exhaustive_below=0` or `new:lookup_read_above=16+exhaustive_below=2.5`).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_bm25 import make_queries
from make_corpus import DEFAULT_DIR, default_path, read_jsonl

import qa.index.bm25 as new_bm25
from qa.text import normalize


def load_base(base: Path):
    spec = importlib.util.spec_from_file_location("base_bm25", base / "qa" / "index" / "bm25.py")
    if spec is None or not (base / "qa" / "index" / "bm25.py").is_file():
        raise SystemExit(f"no qa/index/bm25.py under {base}: extract the other commit there (git archive)")
    module = importlib.util.module_from_spec(spec)
    sys.modules["base_bm25"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--base", type=Path, required=True, help="folder holding the other commit's qa package")
    parser.add_argument("--variants", default="base,new")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_DIR / "bm25")
    args = parser.parse_args()
    directory = args.workdir / f"index-{args.size}"
    if not (directory / "qa_bm25.json").is_file():
        raise SystemExit(f"no index in {directory}: run bench/bench_bm25.py --size {args.size} --build-only first")
    texts = [normalize(row["text"]) for row in read_jsonl(default_path(args.size, 0))]
    queries = make_queries(texts, args.queries)
    del texts
    base = load_base(args.base)
    indexes = {"base": base.BM25Index.load(directory), "new": new_bm25.BM25Index.load(directory)}
    defaults = {name: getattr(new_bm25, name) for name in dir(new_bm25) if name.isupper()}
    variants = args.variants.split(",")

    def ask(variant: str, query: str) -> list[tuple[int, float]]:
        name, _, settings = variant.partition(":")
        for key, value in defaults.items():
            setattr(new_bm25, key, value)
        for pair in filter(None, settings.split("+")):
            key, _, value = pair.partition("=")
            setattr(new_bm25, key.upper(), type(defaults[key.upper()])(float(value)))
        return indexes[name].search(query, args.k)

    for query in queries:  # page the postings in
        ask(variants[0], query)
    wall = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    process = {v: [] for v in variants}
    for i, query in enumerate(queries):
        results = {}
        for variant in variants[i % len(variants):] + variants[:i % len(variants)]:
            w, c, p = time.perf_counter(), time.thread_time(), time.process_time()
            results[variant] = ask(variant, query)
            cpu[variant].append((time.thread_time() - c) * 1000)
            process[variant].append((time.process_time() - p) * 1000)
            wall[variant].append((time.perf_counter() - w) * 1000)
        if any(results[v] != results[variants[0]] for v in variants):
            raise SystemExit(f"top {args.k} differs between variants for {query!r}")
    print(f"{len(queries)} queries, k={args.k}, {args.size} rows; every top k equal\n")
    print("| variant | thread p50 / p95 / p99 ms | thread mean ms | process CPU p50 / mean ms | wall p50 / p95 / p99 ms |"
          "\n|---|---|---|---|---|")
    for v in variants:
        t, w, c = np.array(cpu[v]), np.array(wall[v]), np.array(process[v])
        print(f"| {v} | {' / '.join(f'{np.percentile(t, p):.2f}' for p in (50, 95, 99))} | {t.mean():.2f} | "
              f"{np.percentile(c, 50):.2f} / {c.mean():.2f} | "
              f"{' / '.join(f'{np.percentile(w, p):.2f}' for p in (50, 95, 99))} |")


if __name__ == "__main__":
    main()
