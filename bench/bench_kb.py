"""Ten knowledge bases in one service: per-knowledge-base figures against single indexes, latency, memory.

    python bench/bench_kb.py [--cmrc ../shared/eval/cmrc2018_trial] [--dev ../shared/eval/dev.jsonl] [--workdir DIR]

1. Ten knowledge bases: `sample` (the sample corpus, asked dev.jsonl) and `cmrc-1` .. `cmrc-9` (the CMRC trial corpus
   cut into nine slices by document number, each asked the trial questions of its own documents).
2. Each is built with `qa kb create` + `qa index --kb NAME --wait`, scored with `qa eval --kb NAME --json`, and the
   same questions are scored on a single index of the same documents (`qa eval --corpus DIR --json`, the command
   users ran before knowledge bases). Every retrieval and answer figure must be identical; the script says which
   differ otherwise.
3. `qa serve` with only `default` loaded, then with all ten loaded at start: resident memory of the server process.
4. Search latency on that server: the dev questions sent one at a time to `POST /v1/search` without
   `knowledge_bases` (the default index: the sample corpus) and with `["sample"]` (the same documents as a knowledge
   base), alternating request by request, then all ten named at once.

Embeddings: each knowledge base's cache is seeded from the `qa eval --corpus` cache (`~/.cache/zhqa`), so the vectors
are computed once; the figures here are about ranking and memory, which a cache does not change.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.config import SAMPLE_CORPUS

SLICES = 9
# Latency and lists differ run to run; everything else in `qa eval --json` must match.
VOLATILE = {"latency_ms", "took_ms", "p50_ms", "p95_ms", "seconds", "questions_file", "corpus", "index_dir", "kb"}


def run_qa(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "qa", *args], check=False, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"qa {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def stable(metrics: object) -> object:
    """The metrics without timings and paths."""
    if isinstance(metrics, dict):
        return {k: stable(v) for k, v in metrics.items() if k not in VOLATILE and not k.endswith("_ms")}
    if isinstance(metrics, list):
        return [stable(v) for v in metrics]
    return metrics


def differences(a: object, b: object, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def make_slices(cmrc: Path, work: Path) -> list[tuple[str, Path, Path]]:
    """(name, corpus folder, questions file) for the nine CMRC slices."""
    docs = sorted((cmrc / "corpus").glob("*.txt"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    questions = [json.loads(line) for line in (cmrc / "questions.jsonl").read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    out = []
    for i in range(SLICES):
        name = f"cmrc-{i + 1}"
        part = docs[i::SLICES]
        folder = work / "corpora" / name
        folder.mkdir(parents=True, exist_ok=True)
        for doc in part:
            shutil.copy(doc, folder / doc.name)
        stems = {doc.stem for doc in part}
        qfile = work / "questions" / f"{name}.jsonl"
        qfile.parent.mkdir(parents=True, exist_ok=True)
        qfile.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions
                                 if Path(q["doc"]).stem in stems), encoding="utf-8")
        out.append((name, folder, qfile))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


class Server:
    def __init__(self, env: dict[str, str], kbs: list[str]):
        self.port = free_port()
        args = [sys.executable, "-m", "qa", "serve", "--port", str(self.port)]
        for kb in kbs:
            args += ["--kb", kb]
        self.proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise SystemExit("qa serve did not answer /health within 300 s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cmrc", type=Path, default=ROOT.parent / "shared" / "eval" / "cmrc2018_trial")
    parser.add_argument("--dev", type=Path, default=ROOT.parent / "shared" / "eval" / "dev.jsonl")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the dev questions for latency")
    parser.add_argument("--serve-only", action="store_true", help="only steps 3-4, on the --workdir of a previous run")
    args = parser.parse_args()
    for path in (args.cmrc / "questions.jsonl", args.dev):
        if not path.is_file():
            parser.error(f"{path} not found")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-kb-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "zhqa" / "embeddings.sqlite"
    env = {**os.environ, "QA_INDEX_DIR": str(work / "default-index"), "QA_DATA_DIR": str(work / "kbs"),
           "QA_CORPUS": str(SAMPLE_CORPUS), "PYTHONPATH": str(ROOT)}
    kbs = [("sample", SAMPLE_CORPUS, args.dev), *make_slices(args.cmrc, work)]
    try:
        rows = []
        if not args.serve_only:
            print(f"work folder {work}; building the default index and {len(kbs)} knowledge bases", flush=True)
            run_qa(["index", "--wait"], env)
        for name, corpus, questions in [] if args.serve_only else kbs:
            run_qa(["kb", "create", name, "--description", f"bench: {corpus.name}"], env)
            index = work / "kbs" / name / "index"
            if cache.is_file():
                index.mkdir(parents=True, exist_ok=True)
                shutil.copy(cache, index / "embeddings.sqlite")
            run_qa(["index", "--kb", name, "--wait", str(corpus)], env)
            in_kb = json.loads(run_qa(["eval", str(questions), "--kb", name, "--json", "--mode", "all"], env))
            single = json.loads(run_qa(["eval", str(questions), "--corpus", str(corpus), "--json", "--quiet",
                                        "--mode", "all"], env))
            diff = differences(stable(in_kb), stable(single))
            hybrid = in_kb.get("hybrid", in_kb)
            rows.append((name, len(list(corpus.glob("*"))), hybrid, diff))
            print(f"  {name}: {'identical' if not diff else 'DIFFERENT: ' + '; '.join(diff[:5])}", flush=True)

        print("\n| knowledge base | documents | questions | hit@1 | hit@5 | MRR@10 | answer holds evidence | "
              "same as single index |")
        print("|---|---|---|---|---|---|---|---|")
        for name, docs, m, diff in rows:
            print(f"| {name} | {docs} | {m.get('n')} | {m.get('hit@1')} | {m.get('hit@5')} | "
                  f"{m.get('mrr@10')} | {m.get('answer_contains_evidence')} | {'yes' if not diff else 'NO'} |")

        dev = [json.loads(line)["question"] for line in args.dev.read_text(encoding="utf-8").splitlines()
               if line.strip()]
        one = Server(env, [])
        for question in dev:  # the model and each index's lazy parts loaded, as in service
            post(f"{one.url}/v1/search", {"query": question})
        rss_default = rss_mb(one.proc.pid)
        one.stop()
        names = [name for name, *_ in kbs]
        server = Server(env, names)
        try:
            timings: dict[str, list[float]] = {"default": [], "sample named": [], f"all {len(names)} named": []}
            bodies = {"default": {}, "sample named": {"knowledge_bases": ["sample"]},
                      f"all {len(names)} named": {"knowledge_bases": names}}
            for question in dev:  # warm-up
                for body in bodies.values():
                    post(f"{server.url}/v1/search", {"query": question, **body})
            for _ in range(args.rounds):
                for question in dev:
                    for label, body in bodies.items():
                        start = time.perf_counter()
                        post(f"{server.url}/v1/search", {"query": question, **body})
                        timings[label].append((time.perf_counter() - start) * 1000)
            rss_all = rss_mb(server.proc.pid)
            print(f"\nresident memory of `qa serve` after answering the dev questions: default only {rss_default:.0f} MB;"
                  f" default + {len(names)} knowledge bases loaded and searched {rss_all:.0f} MB")
            base = statistics.median(timings["default"])
            print(f"\nPOST /v1/search, {len(dev)} dev questions x {args.rounds} rounds, alternating:")
            print("| search | p50 ms | p95 ms | p50 / default |")
            print("|---|---|---|---|")
            for label, values in timings.items():
                values.sort()
                p50, p95 = statistics.median(values), values[int(0.95 * (len(values) - 1))]
                print(f"| {label} | {p50:.1f} | {p95:.1f} | {p50 / base:.2f} |")
        finally:
            server.stop()
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
