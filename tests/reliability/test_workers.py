"""`qa serve --workers 2`: two processes serve one index folder; a change made through one is served by both."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support import QA_BIN, start_serve, subprocess_env

PHRASE = "工作进程共享索引测试"
TEXT = f"{PHRASE}\n会议决定，全区新建社区食堂十五个，九月底前全部投入使用。\n"
QUESTION = "全区新建社区食堂多少个"


def _ask_each_worker(url: str, attempts: int = 80) -> dict[int, httpx.Response]:
    """One search per worker: each new connection lands on some worker, which /health names by its pid."""
    answers: dict[int, httpx.Response] = {}
    for _ in range(attempts):
        with httpx.Client(base_url=url, timeout=30) as client:  # a new connection
            pid = client.get("/health").json()["pid"]
            if pid not in answers:
                answers[pid] = client.post("/v1/search", json={"query": QUESTION, "top_k": 3})
        if len(answers) == 2:
            break
    return answers


@pytest.mark.slow
def test_two_workers_serve_one_folder_and_follow_each_others_changes(base_index: Path, tmp_path: Path):
    index_dir = tmp_path / "index"
    shutil.copytree(base_index, index_dir)
    served = start_serve(index_dir, tmp_path / "serve.log", args=("--workers", "2"), timeout=120)
    try:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            added = client.post("/v1/documents", json={"title": PHRASE, "text": TEXT})
            assert added.status_code == 201, added.text
            doc_id = added.json()["document"]["id"]
        answers = _ask_each_worker(served.url)
        assert len(answers) == 2, "the kernel sent every new connection to one worker"
        for pid, response in answers.items():
            assert response.status_code == 200, (pid, response.text, served.log()[-3000:])
            assert response.json()["hits"][0]["doc_id"] == doc_id, f"worker {pid} serves an older version"
        with httpx.Client(base_url=served.url, timeout=30) as client:
            assert client.delete(f"/v1/documents/{doc_id}").status_code == 200
        for response in _ask_each_worker(served.url).values():
            assert all(hit["doc_id"] != doc_id for hit in response.json()["hits"])
    finally:
        served.stop()
    log = served.log()
    assert "Traceback" not in log, log[-3000:]


def test_qa_index_is_refused_while_qa_serve_runs(base_index: Path, tmp_path: Path):
    index_dir = tmp_path / "index"
    shutil.copytree(base_index, index_dir)
    served = start_serve(index_dir, tmp_path / "serve.log")
    try:
        done = subprocess.run([str(QA_BIN), "index"], env=subprocess_env(index_dir), capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 1
        assert "a `qa serve` process serves the index in" in done.stderr and "Traceback" not in done.stderr
    finally:
        served.stop()
