"""Several services (as several `qa serve` workers are) on one index folder: one writer at a time, readers follow.

Two `QAService` objects in one process stand for two processes here: each opens the lock files itself, and `flock`
locks conflict between separate opens as they do between processes. `tests/reliability/test_workers.py` runs real
worker processes.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from embeddings import HashingEmbedder
from qa.errors import IndexBusyError
from qa.index.locks import ServeLock, WriteLock
from qa.index.versions import load_index
from qa.ingest.document import document_from_text
from qa.service import QAService

NEW_TEXT = "乡村振兴示范点建设推进会\n会议要求，今年新建高标准农田八千亩，年底前全部完工。\n"
OTHER_TEXT = "防汛工作部署会\n会议强调，汛期前完成全部病险水库除险加固，储备冲锋舟十二艘。\n"


@pytest.fixture
def folder(tmp_path: Path, tiny_dir: Path) -> Path:
    QAService(tmp_path / "index", HashingEmbedder()).index_paths([tiny_dir])
    return tmp_path / "index"


def open_service(folder: Path, **kwargs) -> QAService:
    service = QAService(folder, HashingEmbedder(), **kwargs)
    service.load()
    return service


def test_a_change_made_by_one_service_is_served_by_the_other_without_a_restart(folder):
    writer, reader = open_service(folder), open_service(folder)
    before = reader.version
    doc = document_from_text(NEW_TEXT, "new.txt")
    assert writer.add_document(doc)
    assert reader.version == writer.version != before
    top = reader.ask("今年新建高标准农田多少亩", mode="bm25").hits[0].passage
    assert top.doc_id == doc.doc_id and "八千亩" in top.text
    writer.delete_document(doc.doc_id)
    assert doc.doc_id not in {d.doc_id for d in reader.documents()}


def test_a_writer_that_loaded_an_older_version_keeps_the_other_writers_change(folder):
    first, second = open_service(folder), open_service(folder)
    one, two = document_from_text(NEW_TEXT, "one.txt"), document_from_text(OTHER_TEXT, "two.txt")
    assert first.add_document(one)
    assert second.add_document(two)  # second still served the version before `one`
    on_disk = load_index(folder, HashingEmbedder().name, HashingEmbedder().dim)
    assert {one.doc_id, two.doc_id} <= set(on_disk.documents)
    assert {one.doc_id, two.doc_id} <= {d.doc_id for d in first.documents()}


def test_a_second_writer_waits_for_the_lock_and_then_gives_up_naming_the_folder(folder):
    service = open_service(folder, write_lock_timeout_s=0.3)
    doc = document_from_text(NEW_TEXT, "new.txt")
    with WriteLock(folder), pytest.raises(IndexBusyError, match=f"changing the index in {folder}"):
        service.add_document(doc)
    assert doc.doc_id not in {d.doc_id for d in service.documents()}
    assert service.add_document(doc)  # the lock is free again


def test_a_writer_waits_while_another_holds_the_lock_briefly(folder):
    service = open_service(folder, write_lock_timeout_s=10)
    lock = WriteLock(folder)
    lock.__enter__()
    threading.Timer(0.3, lock.__exit__, (None, None, None)).start()
    assert service.add_document(document_from_text(NEW_TEXT, "new.txt"))


def test_a_version_made_live_while_a_reader_loads_one_does_not_hang_it(folder, monkeypatch):
    # Refreshing holds the reload lock while it loads; loading read the served index through `snapshot`, which
    # refreshes again and waited for that same lock, forever, whenever yet another version went live meanwhile
    # (seen as a hung test run).
    writer, reader = open_service(folder), open_service(folder)
    assert writer.add_document(document_from_text(NEW_TEXT, "one.txt"))
    publish = reader._publish

    def publish_then_another_version_goes_live(data):
        publish(data)
        monkeypatch.setattr(reader, "_publish", publish)
        assert writer.add_document(document_from_text(OTHER_TEXT, "two.txt"))

    monkeypatch.setattr(reader, "_publish", publish_then_another_version_goes_live)
    refreshed = threading.Thread(target=reader.refresh, daemon=True)
    refreshed.start()
    refreshed.join(timeout=30)
    assert not refreshed.is_alive(), "refresh hung on its own reload lock"
    assert reader.version == writer.version


def test_readers_never_see_a_torn_index_while_another_service_writes(folder):
    writer, reader = open_service(folder), open_service(folder)
    docs = [document_from_text(f"第{i}次会议纪要\n会议确定，第{i}批项目共{i + 3}个，本月开工。\n", f"m{i}.txt")
            for i in range(6)]
    problems: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                snapshot = reader.snapshot
                for hit in snapshot.retriever.search("本月开工的项目有几个", top_k=5, mode="bm25"):
                    if hit.passage.doc_id not in snapshot.data.documents:
                        problems.append(f"hit from {hit.passage.doc_id} outside its own snapshot")
            except Exception as e:  # noqa: BLE001 - any failure is what this test looks for
                problems.append(repr(e))

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for doc in docs:
            writer.add_document(doc)
        for doc in docs[:3]:
            writer.delete_document(doc.doc_id)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not problems, problems[:5]
    assert {d.doc_id for d in reader.documents()} == {d.doc_id for d in writer.documents()}


def test_a_service_starting_while_another_replaces_versions_loads_the_newer_one(folder):
    writer = open_service(folder)
    problems: list[str] = []
    stop = threading.Event()

    def start_services() -> None:
        while not stop.is_set():
            try:
                QAService(folder, HashingEmbedder()).load()
            except Exception as e:  # noqa: BLE001 - any failure is what this test looks for
                problems.append(repr(e))

    thread = threading.Thread(target=start_services)
    thread.start()
    try:
        for i in range(8):  # every change writes a new version and removes the one before
            writer.add_document(document_from_text(f"第{i}号通知\n请各单位于{i + 1}日前报送材料。\n", f"n{i}.txt"))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not problems, problems[:3]


def test_qa_index_is_refused_while_a_server_serves_the_folder(folder, qa_env, run_cli, tiny_dir, monkeypatch):
    monkeypatch.setenv("QA_INDEX_DIR", str(folder))
    served = ServeLock(folder)
    served.hold()
    try:
        code, _out, err = run_cli("index", tiny_dir)
        assert code == 1 and "a `qa serve` process serves the index in" in err and "POST /v1/documents" in err
    finally:
        served.release()
    code, out, _err = run_cli("index", tiny_dir)
    assert code == 0 and "3 documents" in out
