"""Faults: kill -9 during indexing and during an upload, a full or unwritable disk, corrupted index files.

What must hold:
- after a SIGKILL at any point of `qa index` or of an upload to `qa serve`, the next start serves the last complete
  index, and the interrupted change is either entirely there or entirely absent;
- when the index folder cannot be written (no space, file size limit, not a folder, read-only), a change is refused
  with a clear 507/503 (the CLI prints one line and exits 1) and the served index stays as it was;
- a corrupted index file is caught by the manifest checksums: the service starts anyway and answers 503 with the
  reason on every /v1 route (/health says why), the CLI says to rebuild, and `qa index --rebuild` repairs it.

Techniques (tests run as root, so chmod cannot make a folder read-only): SIGKILL of real `qa index` / `qa serve`
subprocesses on 127.0.0.1 with the hashing embedder, at random times (seeded, printed) and at the moment a new
version folder appears; the kernel's file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so writes fail with EFBIG
like a full disk) on a `qa serve` and a `qa index` subprocess; the index folder replaced by a regular file under a
running service; and in-process `OSError(ENOSPC)` / `OSError(EROFS)` injected into the store's writes.
"""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.deps import build_service
from api.main import create_app
from embeddings import create_embedder
from qa.cli import main as qa_main
from qa.errors import IndexCorruptError
from qa.index import versions
from qa.index.versions import load_index
from tests.support import CORPUS, QA_BIN, make_settings, start_serve, subprocess_env

SEED = int(os.environ.get("ZHQA_FAULT_SEED", "20261122"))
COPIES = 20  # 5 sample documents x 20 = 100 documents, about 3000 passages: indexing takes a moment
HASHING = create_embedder("hashing")


def _doc_ids(index_dir: Path) -> frozenset[str]:
    return frozenset(load_index(index_dir, HASHING.name, HASHING.dim).documents)


def _make_corpus(folder: Path, variant: str) -> Path:
    folder.mkdir(parents=True)
    for i in range(COPIES):
        for path in sorted(CORPUS.glob("*.txt")):
            text = path.read_text(encoding="utf-8")
            (folder / f"{path.stem}_{i}.txt").write_text(f"{text}\n附记：第{i}号副本，版本{variant}。\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fault-corpora")
    return {"A": _make_corpus(root / "A", "甲"), "B": _make_corpus(root / "B", "乙")}


@pytest.fixture(scope="module")
def big_index(tmp_path_factory, corpora) -> Path:
    """An index of corpus A (200 documents), built once by `qa index`; tests work on copies."""
    index_dir = tmp_path_factory.mktemp("fault-big") / "index"
    done = subprocess.run([str(QA_BIN), "index", str(corpora["A"]), "--quiet"], env=subprocess_env(index_dir),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return index_dir


def _qa_index(index_dir: Path, corpus: Path) -> subprocess.Popen:
    return subprocess.Popen([str(QA_BIN), "index", str(corpus), "--quiet"], env=subprocess_env(index_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_new_folder(index_dir: Path, before: set[str], prefix: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = {p.name for p in index_dir.iterdir()}
        if any(n.startswith(prefix) for n in names - before):
            return True
        time.sleep(0.002)
    return False


def test_kill_9_during_indexing_leaves_the_old_or_the_new_index(tmp_path, corpora, big_index):
    index_dir = tmp_path / "index"
    shutil.copytree(big_index, index_dir)
    ids = {"A": _doc_ids(index_dir)}
    # One full run to B: the new state exists and how long a run takes is known.
    started = time.monotonic()
    full = _qa_index(index_dir, corpora["B"])
    assert full.wait(timeout=120) == 0, full.stderr.read().decode()
    duration = time.monotonic() - started
    ids["B"] = _doc_ids(index_dir)
    assert len(ids["A"]) == len(ids["B"]) == 5 * COPIES and not ids["A"] & ids["B"]
    current = "B"
    rng = random.Random(SEED)
    # Kill points: random times across the run, and the moments a new temporary / version folder appears.
    plans = [("time", rng.uniform(0.2, duration)) for _ in range(3)] + [("tmp", 0.0), ("tmp", 0.02),
                                                                              ("version", 0.0)]
    outcomes = []
    for kind, delay in plans:
        target = "A" if current == "B" else "B"
        before = {p.name for p in index_dir.iterdir()}
        proc = _qa_index(index_dir, corpora[target])
        if kind == "time":
            time.sleep(delay)
        else:
            prefix = ".tmp-" if kind == "tmp" else "v-"
            _wait_for_new_folder(index_dir, before, prefix, timeout=duration * 3)
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        after = _doc_ids(index_dir)  # loads, checksums verified: the pointer names a complete version
        assert after in (ids[current], ids[target]), f"{kind}@{delay:.2f}s: a mix of both corpora"
        outcomes.append((kind, round(delay, 2), proc.returncode, "new" if after == ids[target] else "old"))
        current = "A" if after == ids["A"] else "B"
    print(f"seed {SEED}, full run {duration:.2f}s, kills (kind, delay s, exit code, state after): {outcomes}")
    # Killed (or, for a kill timed after the end, finished with the new state).
    assert all(code == -signal.SIGKILL or (code == 0 and state == "new") for _, _, code, state in outcomes)
    assert sum(code == -signal.SIGKILL for _, _, code, _ in outcomes) >= 4
    # A service started now (a fresh load from disk, as after a restart) serves whatever survived, whole.
    with TestClient(create_app(make_settings(index_dir))) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["documents"] == len(ids[current])
        assert {d["id"] for d in client.get("/v1/documents").json()["documents"]} == ids[current]
        # Leftovers of killed runs (temporary folders) go away with the next complete write.
        assert client.post("/v1/documents", json={"text": "清理测试：写入一个新版本。" * 5}).status_code == 201
    assert [p.name for p in index_dir.iterdir() if p.is_dir()] == [(index_dir / "CURRENT").read_text()]


def _upload_in_background(url: str, text: str) -> dict:
    result: dict = {}

    def send() -> None:
        try:
            result["status"] = httpx.post(f"{url}/v1/documents", json={"text": text, "title": "断电测试"},
                                          timeout=60).status_code
        except httpx.HTTPError as e:
            result["error"] = type(e).__name__

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    result["thread"] = thread
    return result


def test_kill_9_during_an_upload_leaves_it_all_or_nothing(tmp_path, corpora):
    # 40 documents: an upload (which rebuilds and saves the whole index) takes about a second.
    index_dir = tmp_path / "index"
    subset = sorted(corpora["A"].glob("*.txt"))[: 5 * 8]
    build_service(make_settings(index_dir)).index_paths(subset)
    base = _doc_ids(index_dir)
    rng = random.Random(SEED + 1)
    log = tmp_path / "serve.log"
    outcomes = []
    served = start_serve(index_dir, log)
    try:
        # How long an uninterrupted upload takes here; the kills are spread over that time.
        started = time.monotonic()
        warm = httpx.post(f"{served.url}/v1/documents", json={"text": "计时用的文档，正常上传。" * 5}, timeout=60)
        upload_time = time.monotonic() - started
        assert warm.status_code == 201
        base = {d["id"] for d in httpx.get(f"{served.url}/v1/documents", timeout=30).json()["documents"]}
        # Kill points: as the new version's temporary folder appears (mid-write), as it is renamed into place
        # (just before the pointer swap), and at a random time around the end of the upload.
        plans = [("tmp", 0.0), ("version", 0.0), ("time", rng.uniform(0.3, 1.5) * upload_time)]
        for attempt, (kind, delay) in enumerate(plans):
            text = f"断电测试文档第{attempt}号：上传过程中服务进程被强行终止，重启后这篇文档要么完整存在，要么完全不存在。" * 3
            before = {p.name for p in index_dir.iterdir()}
            upload = _upload_in_background(served.url, text)
            if kind != "time":
                _wait_for_new_folder(index_dir, before, ".tmp-" if kind == "tmp" else "v-", timeout=upload_time * 5)
            time.sleep(delay)
            served.kill()
            upload["thread"].join(timeout=30)
            served = start_serve(index_dir, log)
            listed = {d["id"]: d for d in httpx.get(f"{served.url}/v1/documents", timeout=30).json()["documents"]}
            extra = set(listed) - base
            assert set(listed) >= base and len(extra) <= 1, "documents lost or duplicated"
            again = httpx.post(f"{served.url}/v1/documents", json={"text": text, "title": "断电测试"}, timeout=60)
            if extra:  # it made it: complete, searchable, and the same upload again changes nothing
                (doc_id,) = extra
                assert again.status_code == 200 and again.json()["created"] is False
                hits = httpx.post(f"{served.url}/v1/search", timeout=30,
                                  json={"query": "断电测试文档", "doc_ids": [doc_id]}).json()["hits"]
                assert hits and hits[0]["doc_id"] == doc_id
            else:  # it did not: no trace, and uploading again works
                assert again.status_code == 201
            outcomes.append((kind, round(delay, 2), upload.get("status") or upload.get("error"),
                             "present" if extra else "absent"))
            base = {d["id"] for d in httpx.get(f"{served.url}/v1/documents", timeout=30).json()["documents"]}
    finally:
        served.stop()
    print(f"seed {SEED + 1}, upload {upload_time:.2f}s, kills (kind, delay s, client saw, after restart): {outcomes}")


def _fsize_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    return apply


def test_full_disk_refuses_changes_and_keeps_serving(tmp_path, index_copy):
    """A kernel-enforced write limit (RLIMIT_FSIZE 100 kB: the next index version cannot be written)."""
    before = _doc_ids(index_copy)
    current = (index_copy / "CURRENT").read_text()
    port_log = tmp_path / "serve.log"
    served = start_serve(index_copy, port_log, preexec_fn=_fsize_limit(100_000))
    try:
        refused = httpx.post(f"{served.url}/v1/documents", timeout=60,
                             json={"text": "磁盘已满测试：这篇文档无法写入索引。" * 5})
        assert refused.status_code == 507, refused.text
        body = refused.json()
        assert body["type"] == "insufficient_storage" and "no space left" in body["detail"]
        assert "live index is unchanged" in body["detail"]
        assert httpx.get(f"{served.url}/health", timeout=10).json()["documents"] == len(before)
        search = httpx.post(f"{served.url}/v1/search", json={"query": "古塔区固定资产投资完成多少"}, timeout=30)
        assert search.status_code == 200 and search.json()["hits"]
        doc_id = min(before)
        assert httpx.delete(f"{served.url}/v1/documents/{doc_id}", timeout=60).status_code == 507
    finally:
        served.stop()
    assert (index_copy / "CURRENT").read_text() == current and _doc_ids(index_copy) == before
    assert not [p for p in index_copy.iterdir() if p.name.startswith(".tmp-")], "partial version left behind"
    # The CLI under the same limit: one line on stderr, exit 1, the index untouched.
    cli = subprocess.run([str(QA_BIN), "index", str(CORPUS), "--rebuild", "--quiet"], env=subprocess_env(index_copy),
                         capture_output=True, text=True, timeout=120, check=False,
                         preexec_fn=_fsize_limit(100_000))
    assert cli.returncode == 1
    assert cli.stderr.strip().count("\n") == 0 and "cannot write the index" in cli.stderr and "no space" in cli.stderr
    assert "Traceback" not in cli.stderr
    assert (index_copy / "CURRENT").read_text() == current and _doc_ids(index_copy) == before


@pytest.mark.parametrize(("code", "status", "kind", "phrase"), [
    (errno.ENOSPC, 507, "insufficient_storage", "no space left"),
    (errno.EROFS, 503, "index_unwritable", "Read-only file system"),
    (errno.EACCES, 503, "index_unwritable", "Permission denied"),
])
@pytest.mark.parametrize("where", ["replace", "write"])
def test_write_errors_in_process(make_client, index_copy, monkeypatch, code, status, kind, phrase, where):
    """OSError injected into the store's writes: at the final rename, or while a data file is being written."""
    with make_client() as client:
        before = client.get("/v1/documents").json()["total"]
        real_replace, real_write = versions.os.replace, versions._write_jsonl

        def failing_replace(src, dst):
            raise OSError(code, os.strerror(code), str(dst))

        def failing_write(path, rows):
            if path.name == "passages.jsonl":
                raise OSError(code, os.strerror(code), str(path))
            real_write(path, rows)

        if where == "replace":
            monkeypatch.setattr(versions.os, "replace", failing_replace)
        else:
            monkeypatch.setattr(versions, "_write_jsonl", failing_write)
        refused = client.post("/v1/documents", json={"text": "写入失败测试文档。" * 10})
        assert refused.status_code == status, refused.text
        assert refused.json()["type"] == kind and phrase in refused.json()["detail"]
        assert client.get("/v1/documents").json()["total"] == before
        assert client.post("/v1/search", json={"query": "古塔区"}).status_code == 200
        assert not [p for p in index_copy.iterdir() if p.name.startswith((".tmp-", ".CURRENT."))]
        monkeypatch.setattr(versions.os, "replace", real_replace)
        monkeypatch.setattr(versions, "_write_jsonl", real_write)
        assert client.post("/v1/documents", json={"text": "写入失败测试文档。" * 10}).status_code == 201


def test_index_folder_replaced_by_a_file(make_client, index_copy, tmp_path):
    with make_client() as client:
        moved = tmp_path / "moved-away"
        index_copy.rename(moved)
        index_copy.write_text("not a folder")
        try:
            refused = client.post("/v1/documents", json={"text": "索引目录变成了文件。" * 5})
            assert refused.status_code == 503 and refused.json()["type"] == "index_unwritable"
            assert "cannot write the index" in refused.json()["detail"]
            assert client.post("/v1/search", json={"query": "古塔区"}).status_code == 200
        finally:
            index_copy.unlink()
            moved.rename(index_copy)
        assert client.post("/v1/documents", json={"text": "索引目录变成了文件。" * 5}).status_code == 201


def test_cli_index_into_a_file_path_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QA_EMBEDDER", "hashing")
    assert qa_main(["--index-dir", str(blocker / "index"), "index", str(CORPUS), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("qa: ") and "\n" not in err and "index" in err


# --- corrupted index files -------------------------------------------------------------------------------------------


def _version(index_dir: Path) -> Path:
    return index_dir / (index_dir / "CURRENT").read_text().strip()


def _segment_file(index_dir: Path, name: str) -> Path:
    """A file of the live version's first segment."""
    return next(_version(index_dir).glob(f"segments/*/{name}"))


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "vectors-byte": lambda d: _flip_byte(_version(d) / "vectors.faiss"),
    "passages-byte": lambda d: _flip_byte(_segment_file(d, "passages.jsonl")),
    "documents-truncated": lambda d: _segment_file(d, "documents.jsonl").write_bytes(
        _segment_file(d, "documents.jsonl").read_bytes()[:1000]),
    "bm25-file-missing": lambda d: _segment_file(d, "bm25/rows.npy").unlink(),
    "deleted-rows-edited": lambda d: (_version(d) / "deleted.json").write_text('{"rows": [1], "documents": []}\n'),
    "manifest-garbage": lambda d: (_version(d) / "manifest.json").write_bytes(b"\x00\xffnot json"),
    "manifest-checksum-edited": lambda d: (_version(d) / "manifest.json").write_text(json.dumps(
        {**json.loads((_version(d) / "manifest.json").read_text()),
         "checksums": {**json.loads((_version(d) / "manifest.json").read_text())["checksums"],
                       **{name: "0" * 64 for name in json.loads((_version(d) / "manifest.json").read_text())[
                           "checksums"] if name.endswith("passages.jsonl")}}})),
    "pointer-garbage": lambda d: (d / "CURRENT").write_bytes(b"../../etc\xff"),
    "pointer-to-missing-version": lambda d: (d / "CURRENT").write_text("v-20000101000000-000000000-1"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corruption_is_detected_by_the_load(index_copy, corruption):
    CORRUPTIONS[corruption](index_copy)
    with pytest.raises(IndexCorruptError, match="rebuild"):
        load_index(index_copy, HASHING.name, HASHING.dim)


def test_service_on_a_corrupted_index_answers_503_with_the_reason(index_copy):
    _flip_byte(_segment_file(index_copy, "passages.jsonl"))
    with TestClient(create_app(make_settings(index_copy))) as client:
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["index_loaded"] is False
        reason = health.json()["error"]
        assert "checksum" in reason and "qa index --rebuild" in reason
        for method, path, kwargs in [("post", "/v1/search", {"json": {"query": "古塔区"}}),
                                     ("get", "/v1/documents", {}), ("get", "/v1/documents/x", {}),
                                     ("post", "/v1/documents", {"json": {"text": "新文档。"}}),
                                     ("delete", "/v1/documents/x", {}), ("get", "/v1/models", {}),
                                     ("post", "/v1/chat/completions",
                                      {"json": {"messages": [{"role": "user", "content": "古塔区"}]}})]:
            response = getattr(client, method)(path, **kwargs)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["detail"] == reason and response.json()["type"] == "index_unavailable"
        assert client.get("/").status_code == 200  # the chat page loads and shows the reason from /health
        assert "zhqa_index_loaded 0.0" in client.get("/metrics").text


def test_cli_refuses_a_corrupted_index_and_rebuild_repairs_it(index_copy, tmp_path, monkeypatch, capsys):
    _flip_byte(_version(index_copy) / "vectors.faiss")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QA_EMBEDDER", "hashing")
    monkeypatch.setenv("QA_CORPUS", json.dumps([str(CORPUS)]))
    common = ["--index-dir", str(index_copy)]
    assert qa_main([*common, "ask", "古塔区固定资产投资完成多少"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "corrupted" in err and "qa index --rebuild" in err
    assert qa_main([*common, "index", "--quiet"]) == 1
    assert "qa index --rebuild" in capsys.readouterr().err
    assert qa_main([*common, "index", "--rebuild", "--quiet"]) == 0
    assert len(_doc_ids(index_copy)) == 5
    with TestClient(create_app(make_settings(index_copy))) as client:
        assert client.get("/health").status_code == 200
        assert client.post("/v1/search", json={"query": "古塔区固定资产投资完成多少"}).status_code == 200
