"""Request latency of POST /v1/search against a running service, with a bounded number of requests.

Usage: python bench/bench_http.py [--url http://127.0.0.1:8000] [--clients 1,8] [--requests 400]
Start the service first (`qa serve`). Sends traffic only to the given URL (keep it on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time

import httpx

QUESTIONS = ["古塔区固定资产投资完成多少", "城乡融合要推动哪几个一体化", "下半年讲话里作风要过硬，着重讲了哪三个字",
             "防疫培训要通过哪些方式提高业务指导水平", "商业门店复业经营由哪个部门牵头", "上半年城镇登记失业率控制在多少"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def run(url: str, clients: int, total: int, api_key: str | None) -> tuple[list[float], int, float]:
    questions = itertools.cycle(QUESTIONS)
    latencies: list[float] = []
    errors = 0
    remaining = total
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await http.post("/v1/search", json={"query": next(questions), "top_k": 5})
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200

    async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", default="1,8", help="comma-separated concurrency levels")
    parser.add_argument("--requests", type=int, default=400, help="requests per concurrency level")
    parser.add_argument("--api-key")
    args = parser.parse_args()
    print(f"POST {args.url}/v1/search, {args.requests} requests per level\n")
    print("| clients | requests | errors | p50 ms | p95 ms | p99 ms | req/s |\n|---|---|---|---|---|---|---|")
    for clients in (int(c) for c in args.clients.split(",")):
        latencies, errors, elapsed = asyncio.run(run(args.url, clients, args.requests, args.api_key))
        print(f"| {clients} | {len(latencies)} | {errors} | {percentile(latencies, 50):.1f} | "
              f"{percentile(latencies, 95):.1f} | {percentile(latencies, 99):.1f} | {len(latencies) / elapsed:.0f} |")


if __name__ == "__main__":
    main()
