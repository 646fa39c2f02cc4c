"""How soon an uploaded document is searchable: upload time, first keyword hit, and when its vectors are done.

Usage:
    python bench/bench_upload.py [--index-dir DIR] [--passages 100] [--runs 3] [--env QA_EMBED_IN_BACKGROUND=false]

Starts `qa serve` (the bundled model, or whatever QA_* the environment and `--env` give) on a free 127.0.0.1 port over
`--index-dir` (default: a sample-corpus index in the temp folder; pass the folder `bench/bench_scale.py` built for the
100k-passage figure), then per run: generates a new document of about `--passages` passages (recombined sample
sentences with a run-specific marker, never seen before, so no cache helps), POSTs it, searches a phrase of it by
keywords right after the upload returns, and polls /health until every passage has its vector. Each run's document
is deleted at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_http import start_server
from make_corpus import generate_document, load_sentences


def make_document(sources: list[list[str]], passages: int, marker: str) -> tuple[str, str, str]:
    """(title, text, a phrase only this document holds) of about `passages` passages of 150-300 characters."""
    paragraphs: list[str] = []
    index = 0
    while len(paragraphs) < passages:
        _title, generated = generate_document(sources, seed=int(marker[:8], 16), doc_index=index)
        paragraphs += generated
        index += 1
    phrase = f"编号{marker}的专项督查"
    paragraphs = paragraphs[:passages]
    paragraphs[len(paragraphs) // 2] = f"会议还部署了{phrase}工作。" + paragraphs[len(paragraphs) // 2]
    return f"专项工作会议讲话{marker}", "\n\n".join(paragraphs) + "\n", phrase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=Path(tempfile.gettempdir()) / "zhqa-bench-http-index")
    parser.add_argument("--passages", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (repeat)")
    parser.add_argument("--max-wait-s", type=float, default=1800.0, help="longest wait for the vectors of one run")
    args = parser.parse_args()
    sources = load_sentences()
    server, url = start_server(args.index_dir, args.env, Path(tempfile.gettempdir()) / "zhqa-bench-upload.log")
    try:
        with httpx.Client(base_url=url, timeout=600) as client:
            health = client.get("/health").json()
            print(f"qa serve on {health['passages']} passages, model {health['model']}"
                  + (f", {' '.join(args.env)}" if args.env else "") + "\n")
            print("| run | passages | upload returned s | keyword hit s after upload | vectors done s after upload |")
            print("|---|---|---|---|---|")
            for run in range(args.runs):
                title, text, phrase = make_document(sources, args.passages, uuid.uuid4().hex[:12])
                started = time.perf_counter()
                created = client.post("/v1/documents", json={"title": title, "text": text})
                returned = time.perf_counter() - started
                created.raise_for_status()
                doc = created.json()["document"]
                hits = client.post("/v1/search", json={"query": phrase, "mode": "bm25", "top_k": 3}).json()["hits"]
                found = time.perf_counter() - started
                hit = "yes" if hits and hits[0]["doc_id"] == doc["id"] else "NO"
                while True:
                    detail = client.get(f"/v1/documents/{doc['id']}").json()
                    if detail["passages_with_vectors"] >= detail["passage_count"]:
                        break
                    if time.perf_counter() - started > args.max_wait_s:
                        raise SystemExit(f"vectors not done after {args.max_wait_s} s")
                    time.sleep(0.2)
                done = time.perf_counter() - started
                print(f"| {run + 1} | {doc['passage_count']} | {returned:.2f} | {found:.2f} (hit: {hit}) | "
                      f"{done:.1f} |", flush=True)
                client.delete(f"/v1/documents/{doc['id']}").raise_for_status()
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
