"""Searchable at once: a change is saved before its passages are embedded; the vectors are filled in afterwards."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from embeddings import HashingEmbedder
from qa.index.versions import load_index, read_manifest
from qa.ingest.document import document_from_text
from qa.service import QAService

HASHING = HashingEmbedder()
PHRASE = "社区食堂"
TEXT = "\n".join(f"第{i}项：全区新建{PHRASE}{i}个，由民政局牵头，九月底前投入使用，每个食堂配备工作人员{i + 2}名。"
                 for i in range(1, 41)) + "\n"


class CountingEmbedder:
    """Hashing vectors, counting the passages it encodes (and optionally slow, to watch a change in flight)."""

    def __init__(self, delay_s: float = 0.0):
        self.inner = HashingEmbedder()
        self.name, self.dim, self.delay_s = self.inner.name, self.inner.dim, delay_s
        self.encoded = 0

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        time.sleep(self.delay_s)
        self.encoded += len(texts)
        return self.inner.encode_documents(texts)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode_queries(texts)


@pytest.fixture
def folder(tmp_path: Path, tiny_dir: Path) -> Path:
    QAService(tmp_path / "index", HashingEmbedder()).index_paths([tiny_dir])
    return tmp_path / "index"


def deferred(folder: Path, embedder=HASHING, **kwargs) -> QAService:
    service = QAService(folder, embedder, defer_vectors=True, batch_size=4, **kwargs)
    service.load()
    return service


def ranked(service: QAService, question: str, mode: str) -> list[str]:
    return [h.passage.passage_id for h in service.search(question, top_k=5, mode=mode)]


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_added_document_is_found_by_keywords_before_it_has_vectors(folder):
    service = deferred(folder)
    doc = document_from_text(TEXT, "canteens.txt")
    assert service.add_document(doc)
    progress = service.vector_progress(doc.doc_id)
    assert progress.done == 0 and progress.total == service.passage_count(doc.doc_id) > 1
    assert service.vector_progress().total - service.vector_progress().done == progress.total
    top = service.ask(f"全区新建{PHRASE}多少个", mode="hybrid").hits[0].passage
    assert top.doc_id == doc.doc_id and PHRASE in top.text
    assert all(h.passage.doc_id != doc.doc_id for h in service.search("民政局牵头的食堂", top_k=20, mode="dense"))
    # Saved as it is: a restart serves the same keyword-only passages, and knows which still need vectors.
    manifest = read_manifest(folder)
    assert manifest["passages_without_vectors"] == progress.total
    reloaded = deferred(folder)
    assert reloaded.vector_progress(doc.doc_id) == progress


def test_filled_vectors_rank_exactly_as_an_index_embedded_at_once(folder, tmp_path, tiny_dir):
    doc = document_from_text(TEXT, "canteens.txt")
    service = deferred(folder)
    service.add_document(doc)
    seen: list[int] = []
    service.complete_vectors(seen.append)
    assert sum(seen) == service.passage_count(doc.doc_id)
    assert service.vector_progress().done == service.vector_progress().total
    at_once = QAService(tmp_path / "at-once", HashingEmbedder())
    at_once.index_paths([tiny_dir])
    at_once.add_document(doc)
    for question in (f"全区新建{PHRASE}多少个", "森林防火期从哪天开始", "民政局牵头负责什么"):
        for mode in ("dense", "hybrid"):
            assert ranked(service, question, mode) == ranked(at_once, question, mode), (question, mode)
    assert read_manifest(folder)["passages_without_vectors"] == 0


def test_a_background_thread_fills_the_vectors(folder):
    service = deferred(folder, background_vectors=True)
    doc = document_from_text(TEXT, "canteens.txt")
    service.add_document(doc)
    wait_for(lambda: service.vector_progress(doc.doc_id).done == service.passage_count(doc.doc_id))
    assert any(h.passage.doc_id == doc.doc_id for h in service.search("民政局牵头的食堂", top_k=5, mode="dense"))
    service.close()
    data = load_index(folder, HASHING.name, HASHING.dim)
    assert not len(data.pending_rows())


def test_a_restart_continues_from_the_cache_and_the_saved_chunks(folder):
    first = deferred(folder, embedder=CountingEmbedder())
    doc = document_from_text(TEXT, "canteens.txt")
    first.add_document(doc)
    total = first.passage_count(doc.doc_id)
    assert total > 4
    assert first.fill_vectors(chunk=4) == 4  # one chunk saved, then the process "dies"
    assert first.vector_progress(doc.doc_id).done == 4
    embedder = CountingEmbedder()
    second = deferred(folder, embedder=embedder)
    assert second.vector_progress(doc.doc_id).done == 4  # the saved chunk survived
    second.complete_vectors()
    assert embedder.encoded == total - 4  # nothing embedded twice
    assert second.vector_progress(doc.doc_id).done == total


def test_a_document_deleted_before_its_vectors_are_done_is_simply_skipped(folder):
    service = deferred(folder)
    doc = document_from_text(TEXT, "canteens.txt")
    service.add_document(doc)
    service.delete_document(doc.doc_id)
    assert service.fill_vectors() == 0
    assert service.vector_progress().done == service.vector_progress().total


def test_changes_while_the_vectors_are_filled_lose_nothing(folder):
    service = deferred(folder, embedder=CountingEmbedder(delay_s=0.02), background_vectors=True)
    docs = [document_from_text(f"第{i}次会议\n" + TEXT.replace(PHRASE, f"{PHRASE}{i}号"), f"m{i}.txt")
            for i in range(4)]
    threads = [threading.Thread(target=service.add_document, args=(d,)) for d in docs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    service.delete_document(docs[0].doc_id)
    wait_for(lambda: service.vector_progress().done == service.vector_progress().total, timeout=60)
    service.close()
    data = load_index(folder, HASHING.name, HASHING.dim)
    assert {d.doc_id for d in docs[1:]} <= set(data.documents) and docs[0].doc_id not in data.documents
    assert sorted(data.vectors.ids().tolist()) == sorted(data.live_rows())
