"""Throughput and latency of POST /v1/search at several concurrency levels, with a bounded number of requests.

Usage:
    python bench/bench_http.py --serve [--clients 1,8,32] [--requests 300] [--questions distinct|repeat]
        [--env QA_QUERY_CACHE_SIZE=0 ...]
    python bench/bench_http.py --url http://127.0.0.1:8000 ...       # a service you started (`qa serve`)

`--questions distinct` (the default) sends questions made from the sample corpus's sentences, none repeated within a
run (every level gets its own slice), so no cache can make a figure: pass `--env QA_QUERY_CACHE_SIZE=0` to `--serve`
to switch the server's question cache off as well. `--questions repeat` cycles six dev-style questions, which shows
what the cache does. `--serve` starts `qa serve` on a free 127.0.0.1 port (index in `--index-dir`, built from the
sample corpus on first use) and stops it at the end. Traffic goes only to 127.0.0.1 or the given URL.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

QUESTIONS = ["古塔区固定资产投资完成多少", "城乡融合要推动哪几个一体化", "下半年讲话里作风要过硬，着重讲了哪三个字",
             "防疫培训要通过哪些方式提高业务指导水平", "商业门店复业经营由哪个部门牵头", "上半年城镇登记失业率控制在多少"]
# Endings that turn a clause of the corpus into a question; several per clause give more distinct questions.
_ASKING = ("是怎么说的", "有什么要求", "具体是多少", "是什么意思", "提到了哪些方面")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distinct_questions(count: int) -> list[str]:
    """`count` different questions, each a clause of a sample-corpus sentence plus a question ending."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from qa.config import SAMPLE_CORPUS
    from qa.ingest.reader import load_documents
    from qa.text import split_sentences

    clauses = []
    for doc in load_documents([SAMPLE_CORPUS]).documents:
        for start, end in split_sentences(doc.text):
            for clause in doc.text[start:end].replace("，", "。").replace("；", "。").split("。"):
                clause = "".join(clause.split()).strip("#*“”：:、")
                if 6 <= len(clause) <= 40:
                    clauses.append(clause)
    found = list(dict.fromkeys(c + ending for ending in _ASKING for c in dict.fromkeys(clauses)))
    if len(found) < count:
        raise SystemExit(f"the sample corpus gives {len(found)} distinct questions; ask for at most that many "
                         f"(--requests x levels = {count})")
    return found[:count]


async def run(url: str, clients: int, total: int, api_key: str | None,
              questions: list[str] | None = None) -> tuple[list[float], int, float]:
    """`total` requests from `clients` concurrent clients; `questions` in order (default: the six, cycled)."""
    feed = iter(questions) if questions is not None else itertools.cycle(QUESTIONS)
    latencies: list[float] = []
    errors = 0
    remaining = total
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await http.post("/v1/search", json={"query": next(feed), "top_k": 5})
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200

    async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(index_dir: Path, env_pairs: list[str], log_path: Path) -> tuple[subprocess.Popen, str]:
    """`qa serve` on a free 127.0.0.1 port with the extra `KEY=VALUE` settings; waits until it answers."""
    port = _free_port()
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    for pair in env_pairs:
        key, _, value = pair.partition("=")
        env[key] = value
    log = log_path.open("w", encoding="utf-8")  # an unread pipe would fill up and block the server
    server = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # the first start embeds the sample corpus
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"qa serve exited: {log_path.read_text(encoding='utf-8')[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit("qa serve did not answer within 600 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--serve", action="store_true", help="start `qa serve` for the run (ignores --url)")
    parser.add_argument("--index-dir", type=Path, default=Path(tempfile.gettempdir()) / "zhqa-bench-http-index")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the started server (repeat)")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    parser.add_argument("--questions", choices=("distinct", "repeat"), default="distinct")
    parser.add_argument("--api-key")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",") if c.strip()]
    warmup = 20
    pool = distinct_questions(warmup + args.requests * len(levels)) if args.questions == "distinct" else None
    server = None
    url = args.url
    if args.serve:
        server, url = start_server(args.index_dir, args.env, Path(tempfile.gettempdir()) / "zhqa-bench-http.log")
    try:
        print(f"POST {url}/v1/search, {args.requests} requests per level, {args.questions} questions"
              + (f", server settings {' '.join(args.env)}" if args.env else "") + "\n")
        print("| clients | requests | errors | p50 ms | p95 ms | p99 ms | req/s |\n|---|---|---|---|---|---|---|")
        asyncio.run(run(url, 1, warmup, args.api_key, pool[:warmup] if pool else None))
        for n, clients in enumerate(levels):
            chunk = pool[warmup + n * args.requests: warmup + (n + 1) * args.requests] if pool else None
            latencies, errors, elapsed = asyncio.run(run(url, clients, args.requests, args.api_key, chunk))
            print(f"| {clients} | {len(latencies)} | {errors} | {percentile(latencies, 50):.1f} | "
                  f"{percentile(latencies, 95):.1f} | {percentile(latencies, 99):.1f} | "
                  f"{len(latencies) / elapsed:.1f} |", flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
