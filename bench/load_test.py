"""Load test: concurrent searches and streamed chats while documents are added and deleted, every answer checked.

Usage (start the service first, e.g. `QA_INDEX_DIR=/tmp/zhqa-load .venv/bin/qa serve`):

    .venv/bin/python bench/load_test.py --url http://127.0.0.1:8000 --requests 20000 --clients 32

`--clients` tasks share one HTTP/1.1 connection pool and send `--requests` requests in all: POST /v1/search, and
a `--chat-share` of them POST /v1/chat/completions with `stream: true`, read to `data: [DONE]`. Meanwhile a writer
task (unless `--no-writer`) uploads a small new document, checks it is listed and searchable, deletes it, checks it
is gone, and repeats until the readers are done (at most `--max-writes` times).

Every response is checked, not just its status: 200; well-formed JSON/SSE; hits ranked 1..n with non-increasing
scores, each passage equal to `document.text[char_start:char_end]` of the document it names (texts fetched up front,
and for the writer's documents when uploaded) and its answer span inside it; a stream that ends with a finish chunk
carrying citations, then [DONE]. A torn index (a hit from a half-applied change) would fail these checks.

Bounded: the request count, `--max-seconds` for the whole run, 60 s per request, and the writer's `--max-writes`.
Traffic goes only to the given URL, which must be a loopback address. Exits 1 when any request failed a check.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

QUESTIONS = ["古塔区固定资产投资完成多少", "城乡融合要推动哪几个一体化", "下半年讲话里作风要过硬，着重讲了哪三个字",
             "防疫培训要通过哪些方式提高业务指导水平", "商业门店复业经营由哪个部门牵头", "上半年城镇登记失业率控制在多少",
             "社会消费品零售总额是多少", "疫情防控工作有哪些要求", "如何推进重点项目建设", "脱贫攻坚要做好哪些工作",
             "谁在会议上讲话", "这篇讲话是什么时候发表的", "火星上有没有固定资产投资", "项目建设的进度怎么样",
             "安全生产要注意什么", "招商引资取得了哪些成绩"]
WRITER_MARK = "压力测试临时文档"
MODES = ("hybrid", "hybrid", "hybrid", "dense", "bm25")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"refusing to send load to {url}: only loopback addresses (127.0.0.0/8, ::1, localhost)")


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"search": [], "chat": []})
    errors: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    sent: int = 0
    writer_cycles: int = 0
    writer_errors: int = 0
    hits_checked: int = 0
    hits_from_writer_docs: int = 0

    def fail(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 20:
            self.examples.append(f"{kind}: {detail[:300]}")

    def summary(self, elapsed: float) -> dict[str, Any]:
        every = self.latencies["search"] + self.latencies["chat"]

        def stats(values: list[float]) -> dict[str, float]:
            return {"n": len(values), "p50_ms": round(percentile(values, 50), 1),
                    "p90_ms": round(percentile(values, 90), 1), "p99_ms": round(percentile(values, 99), 1),
                    "max_ms": round(max(values), 1) if values else float("nan")}

        return {"requests": self.sent, "errors": sum(self.errors.values()), "error_kinds": dict(self.errors),
                "examples": self.examples, "elapsed_s": round(elapsed, 1),
                "requests_per_s": round(self.sent / elapsed, 1) if elapsed else 0.0,
                "all": stats(every), "search": stats(self.latencies["search"]), "chat": stats(self.latencies["chat"]),
                "writer_cycles": self.writer_cycles, "writer_errors": self.writer_errors,
                "hits_checked": self.hits_checked, "hits_from_writer_docs": self.hits_from_writer_docs}


class Checker:
    """Checks hits against the texts of every document the run has seen."""

    def __init__(self, texts: dict[str, str], results: Results):
        self.texts = texts
        self.writer_ids: set[str] = set()
        self.results = results
        # Cleared while the writer uploads a document and has not yet read its stored text back: a search that
        # already finds it waits for the text instead of calling the hit unknown.
        self.writer_settled = asyncio.Event()
        self.writer_settled.set()

    async def hits(self, hits: Any, top_k: int | None, where: str) -> str | None:
        if isinstance(hits, list) and any(h.get("doc_id") not in self.texts for h in hits if isinstance(h, dict)):
            try:
                await asyncio.wait_for(self.writer_settled.wait(), timeout=60)
            except TimeoutError:
                pass
        return self._check(hits, top_k, where)

    def _check(self, hits: Any, top_k: int | None, where: str) -> str | None:
        if not isinstance(hits, list):
            return f"{where}: hits is not a list"
        if top_k is not None and len(hits) > top_k:
            return f"{where}: {len(hits)} hits for top_k={top_k}"
        previous = float("inf")
        for i, hit in enumerate(hits, start=1):
            if hit.get("rank") != i:
                return f"{where}: rank {hit.get('rank')} at position {i}"
            score = hit.get("score")
            if not isinstance(score, (int, float)) or score > previous + 1e-9:
                return f"{where}: scores not in order ({previous} then {score})"
            previous = score
            text = self.texts.get(hit.get("doc_id"))
            if text is None:
                return f"{where}: hit from unknown document {hit.get('doc_id')!r}"
            start, end = hit.get("char_start"), hit.get("char_end")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
                return f"{where}: offsets {start}-{end} outside document {hit['doc_id']} ({len(text)} chars)"
            if text[start:end] != hit.get("text"):
                return f"{where}: passage text differs from document {hit['doc_id']}[{start}:{end}]"
            span = hit.get("answer_span")
            if span is not None and (not 0 <= span["start"] < span["end"] <= len(hit["text"])
                                     or hit["text"][span["start"]:span["end"]] != span["text"]):
                return f"{where}: answer span {span['start']}-{span['end']} does not match the passage"
            self.results.hits_checked += 1
            if hit["doc_id"] in self.writer_ids:
                self.results.hits_from_writer_docs += 1
        return None


async def one_search(http: httpx.AsyncClient, checker: Checker, rng: random.Random) -> str | None:
    top_k = rng.choice((1, 3, 5, 10))
    question = rng.choice(QUESTIONS + [f"{WRITER_MARK}的编号是多少"])
    response = await http.post("/v1/search", json={"query": question, "top_k": top_k, "mode": rng.choice(MODES)})
    if response.status_code != 200:
        return f"search status {response.status_code}: {response.text[:200]}"
    body = response.json()
    answer = body.get("answer")
    if not (isinstance(answer, dict) and isinstance(answer.get("text"), str) and answer["text"]
            and isinstance(answer.get("answerable"), bool)):
        return f"search: malformed answer {str(answer)[:200]}"
    return await checker.hits(body.get("hits"), top_k, "search")


async def one_chat(http: httpx.AsyncClient, checker: Checker, rng: random.Random) -> str | None:
    body = {"model": "zhqa-retrieval", "stream": True, "top_k": 3,
            "messages": [{"role": "user", "content": rng.choice(QUESTIONS)}]}
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return f"chat status {response.status_code}: {response.text[:200]}"
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            return f"chat: content type {response.headers.get('content-type')}"
        content, citations, finished, done, chunks = [], None, False, False, 0
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            payload = line[len("data: "):]
            if payload == "[DONE]":
                done = True
                break
            chunk = json.loads(payload)
            chunks += 1
            if chunk.get("object") != "chat.completion.chunk":
                return f"chat: chunk object {chunk.get('object')!r}"
            for choice in chunk.get("choices", []):
                content.append(choice.get("delta", {}).get("content") or "")
                if choice.get("finish_reason") == "stop":
                    finished = True
                    citations = chunk.get("citations")
    if not done:
        return "chat: stream ended without [DONE]"
    if not finished or citations is None:
        return "chat: no finish chunk with citations"
    if not "".join(content).strip():
        return "chat: empty reply"
    return await checker.hits(citations, 3, "chat")


async def writer(http: httpx.AsyncClient, checker: Checker, results: Results, stop: asyncio.Event,
                 max_writes: int) -> None:
    """Upload a new small document, check it is there, delete it, check it is gone; until stopped."""
    for cycle in range(max_writes):
        if stop.is_set():
            return
        text = (f"{WRITER_MARK}第{cycle}号。本文件用于并发测试：上传之后立即可以检索，删除之后不再出现。"
                f"{WRITER_MARK}的编号是{cycle}，内容会在测试结束前删除。" * 2)
        checker.writer_settled.clear()
        try:
            added = await http.post("/v1/documents", json={"text": text, "title": f"{WRITER_MARK}{cycle}"})
            if added.status_code != 201:
                raise AssertionError(f"upload status {added.status_code}: {added.text[:200]}")
            doc_id = added.json()["document"]["id"]
            stored = await http.get(f"/v1/documents/{doc_id}", params={"include_text": "true"})
            if stored.status_code != 200:
                raise AssertionError(f"uploaded document not readable: {stored.status_code}")
            checker.texts[doc_id] = stored.json()["text"]
            checker.writer_ids.add(doc_id)
            checker.writer_settled.set()
            found = await http.post("/v1/search", json={"query": f"{WRITER_MARK}的编号", "doc_ids": [doc_id]})
            if found.status_code != 200 or not found.json()["hits"]:
                raise AssertionError(f"uploaded document not searchable: {found.status_code}")
            deleted = await http.delete(f"/v1/documents/{doc_id}")
            if deleted.status_code != 200:
                raise AssertionError(f"delete status {deleted.status_code}: {deleted.text[:200]}")
            gone = await http.get(f"/v1/documents/{doc_id}")
            if gone.status_code != 404:
                raise AssertionError(f"deleted document still there: {gone.status_code}")
            results.writer_cycles += 1
        except (AssertionError, httpx.HTTPError, ValueError, KeyError) as e:
            results.writer_errors += 1
            results.fail("writer", str(e))
            await asyncio.sleep(0.2)
        finally:
            checker.writer_settled.set()


async def run_load(url: str, requests: int = 20_000, clients: int = 32, chat_share: float = 0.3,
                   with_writer: bool = True, max_writes: int = 10_000, max_seconds: float = 1800.0,
                   api_key: str | None = None, seed: int = 1) -> dict[str, Any]:
    """Run the load and return the summary (see the module docstring)."""
    check_loopback(url)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    results = Results()
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers, limits=limits) as http:
        health = await http.get("/health")
        if health.status_code != 200:
            raise SystemExit(f"service not ready: {health.status_code} {health.text[:300]}")
        listed = (await http.get("/v1/documents")).json()["documents"]
        texts = {}
        for doc in listed:
            texts[doc["id"]] = (await http.get(f"/v1/documents/{doc['id']}",
                                               params={"include_text": "true"})).json()["text"]
        checker = Checker(texts, results)
        deadline = time.monotonic() + max_seconds
        remaining = requests
        stop = asyncio.Event()

        async def reader(index: int) -> None:
            nonlocal remaining
            rng = random.Random(seed * 1000 + index)
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                kind = "chat" if rng.random() < chat_share else "search"
                started = time.perf_counter()
                try:
                    problem = await (one_chat if kind == "chat" else one_search)(http, checker, rng)
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
                    problem = f"{kind}: {type(e).__name__}: {e}"
                results.latencies[kind].append((time.perf_counter() - started) * 1000)
                results.sent += 1
                if problem:
                    results.fail(kind, problem)

        started = time.perf_counter()
        writer_task = asyncio.create_task(writer(http, checker, results, stop, max_writes)) if with_writer else None
        await asyncio.gather(*(reader(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
        stop.set()
        if writer_task is not None:
            await asyncio.wait_for(writer_task, timeout=120)
        # Nothing the writer added is left behind.
        left = [d["id"] for d in (await http.get("/v1/documents")).json()["documents"] if d["id"] in checker.writer_ids]
        if left:
            results.fail("writer", f"documents left behind: {left}")
    summary = results.summary(elapsed)
    summary.update(clients=clients, chat_share=chat_share, writer=with_writer, url=url,
                   timed_out=results.sent < requests)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--chat-share", type=float, default=0.3, help="share of requests that are streamed chats")
    parser.add_argument("--no-writer", action="store_true", help="no concurrent uploads and deletes")
    parser.add_argument("--max-writes", type=int, default=10_000, help="upper bound on writer cycles")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="upper bound on the run time")
    parser.add_argument("--api-key")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    summary = asyncio.run(run_load(args.url, args.requests, args.clients, args.chat_share, not args.no_writer,
                                   args.max_writes, args.max_seconds, args.api_key))
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(f"{summary['requests']} requests from {summary['clients']} clients in {summary['elapsed_s']} s "
              f"({summary['requests_per_s']} req/s), errors: {summary['errors']} {summary['error_kinds'] or ''}")
        print("| requests | n | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|")
        for name in ("all", "search", "chat"):
            s = summary[name]
            print(f"| {name} | {s['n']} | {s['p50_ms']} | {s['p90_ms']} | {s['p99_ms']} | {s['max_ms']} |")
        print(f"writer: {summary['writer_cycles']} upload+delete cycles, {summary['writer_errors']} errors; "
              f"{summary['hits_checked']} hits checked ({summary['hits_from_writer_docs']} from writer documents)")
        for example in summary["examples"]:
            print(f"  {example}")
    return 1 if summary["errors"] or summary["timed_out"] else 0


if __name__ == "__main__":
    sys.exit(main())
