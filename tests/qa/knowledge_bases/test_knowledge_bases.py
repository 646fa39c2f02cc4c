"""Knowledge bases in the core: names, crash-safe create/delete, lazy loading under a memory budget, and answers
fused over several knowledge bases with comparable scores (FAISS, hashing embedder, tiny corpora)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from qa.config import SAMPLE_CORPUS, Settings
from qa.errors import (
    DocumentNotFoundError,
    IndexGoneError,
    InvalidKnowledgeBaseError,
    KnowledgeBaseEmptyError,
    KnowledgeBaseExistsError,
    KnowledgeBaseNotFoundError,
)
from qa.factory import service_from_settings
from qa.index.locks import WriteLock
from qa.ingest.reader import load_documents
from qa.knowledge_bases.manager import KnowledgeBaseManager
from qa.knowledge_bases.registry import DEFAULT_KB, KnowledgeBaseRegistry, check_name, milvus_prefix

TINY = Path(__file__).resolve().parents[2] / "data" / "tiny"


def _settings(tmp_path: Path, **overrides) -> Settings:
    values = {"index_dir": tmp_path / "default", "data_dir": tmp_path / "data", "embedder": "hashing",
              "corpus": [SAMPLE_CORPUS], "api_key": None, **overrides}
    return Settings(_env_file=None, **values)


@pytest.fixture
def manager(tmp_path: Path) -> KnowledgeBaseManager:
    """`default` holds the sample corpus plus the tiny Qinghe news; `tiny` holds the three tiny documents."""
    settings = _settings(tmp_path)
    manager = KnowledgeBaseManager(settings, serving=False)
    default = service_from_settings(settings)
    default.open([SAMPLE_CORPUS])
    default.add_document(load_documents([TINY / "c_qinghe_news.txt"]).documents[0])
    manager.attach_default(default)
    manager.create("tiny", "three short documents")
    for doc in load_documents([TINY]).documents:
        manager.service("tiny", allow_empty=True).add_document(doc)
    yield manager
    manager.close()


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "-x", "_x", "a b", "中文", "a" * 65, "a\n", 7, None])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidKnowledgeBaseError, match="letters, digits"):
        check_name(name)


def test_milvus_prefixes_never_collide():
    names = ["a-b", "a_b", "a__b", "a_db", "a-_b", "default"]
    prefixes = {milvus_prefix("zhqa", n) for n in names}
    assert len(prefixes) == len(names)
    assert milvus_prefix("zhqa", DEFAULT_KB) == "zhqa"
    assert all(p.replace("_", "").isalnum() for p in prefixes)


def test_create_list_update_delete(tmp_path):
    registry = KnowledgeBaseRegistry(_settings(tmp_path))
    assert [kb.name for kb in registry.list()] == ["default"]
    registry.create("speeches-2020", "2020 年讲话")
    registry.create("minutes")
    assert [kb.name for kb in registry.list()] == ["default", "minutes", "speeches-2020"]
    assert registry.get("speeches-2020").description == "2020 年讲话"
    with pytest.raises(KnowledgeBaseExistsError):
        registry.create("minutes")
    with pytest.raises(KnowledgeBaseExistsError):
        registry.create("default")
    assert registry.update("minutes", "会议纪要").description == "会议纪要"
    assert registry.get("minutes").description == "会议纪要"
    assert registry.update("default", "主库").description == "主库"
    with pytest.raises(InvalidKnowledgeBaseError):
        registry.create("x", embedder="word2vec")
    with pytest.raises(KnowledgeBaseNotFoundError):
        registry.get("nope")
    manager = KnowledgeBaseManager(registry.settings, serving=False)
    with pytest.raises(KnowledgeBaseExistsError):
        manager.delete("default")
    manager.delete("minutes")
    assert [kb.name for kb in registry.list()] == ["default", "speeches-2020"]
    assert sorted(os.listdir(tmp_path / "data")) == ["default", "speeches-2020"]
    with pytest.raises(KnowledgeBaseNotFoundError):
        manager.delete("minutes")


def test_interrupted_create_and_delete_leave_it_whole_or_gone(tmp_path):
    settings = _settings(tmp_path)
    registry = KnowledgeBaseRegistry(settings)
    registry.create("kept")
    registry.create("doomed")
    # A crash mid-create leaves a temporary folder; mid-delete, a trash folder (the name is already free).
    (tmp_path / "data" / ".tmp-half-1234abcd").mkdir()
    (tmp_path / "data" / ".tmp-half-1234abcd" / "kb.json").write_text('{"name": "half"}')
    trash = registry.detach("doomed")
    assert [kb.name for kb in registry.list()] == ["default", "kept"]
    registry.create("doomed")  # the name is free again at once
    KnowledgeBaseManager(settings, serving=False).clean()
    assert not trash.exists()
    assert sorted(os.listdir(tmp_path / "data")) == ["doomed", "kept"]


def test_loaded_on_first_use_and_unloaded_beyond_the_budget(tmp_path):
    settings = _settings(tmp_path, kb_memory_budget_mb=0.01)  # 10 KB: room for one small knowledge base at most
    manager = KnowledgeBaseManager(settings, serving=False)
    for name in ("a", "b"):
        manager.create(name)
        assert not manager.loaded(name)
        with pytest.raises(KnowledgeBaseEmptyError, match="no documents yet"):
            manager.service(name)
        manager.service(name, allow_empty=True).add_document(load_documents([TINY]).documents[0])
    assert manager.service("a").passage_count() > 0
    manager.service("b")  # loading b pushes a out: together they pass the budget
    assert manager.loaded("b") and not manager.loaded("a")
    assert manager.service("a").passage_count() > 0  # a loads again from its folder
    status = {s.name: s for s in manager.status()}
    assert status["a"].loaded and status["a"].passages > 0 and not status["b"].loaded
    with pytest.raises(KnowledgeBaseNotFoundError):
        manager.service("c")
    manager.close()


def test_same_text_in_two_knowledge_bases_scores_alike(manager):
    # The Qinghe passage is in both; raw BM25 differs ~2.5x between a 3-document and a 6-document collection.
    answer = manager.ask(["default", "tiny"], "清河镇完成高标准农田建设多少亩", top_k=4)
    first, second = answer.hits[:2]
    assert first.passage.passage_id == second.passage.passage_id
    assert {first.knowledge_base, second.knowledge_base} == {"default", "tiny"}
    assert abs(first.score - second.score) < 0.05
    assert first.keyword_score > 2 * second.keyword_score or second.keyword_score > 2 * first.keyword_score
    assert answer.answerable and "1.2万亩" in answer.text
    assert answer.hits[answer.source].answer is not None


def test_an_unrelated_knowledge_base_ranks_below_a_relevant_one(manager):
    question = "古塔区固定资产投资完成多少"
    # Each knowledge base's own fused score puts its best passage near 1 on its own scale, so the merge re-fuses
    # the raw signals over the union of candidates (before the hybrid re-rank, `tiny` ranked 2nd merged as it was).
    answer = manager.ask(["tiny", "default"], question, top_k=3)
    assert [h.knowledge_base for h in answer.hits] == ["default"] * 3
    assert "10.4亿元" in answer.text and answer.source is not None


def test_doc_ids_and_single_knowledge_base(manager):
    doc_id = manager.service("tiny").documents()[0].doc_id
    answer = manager.ask(["default", "tiny"], "森林防火期从哪天开始", doc_ids=[doc_id])
    assert {h.passage.doc_id for h in answer.hits} == {doc_id}
    with pytest.raises(DocumentNotFoundError):
        manager.ask(["default", "tiny"], "森林防火期", doc_ids=["nope"])
    single = manager.ask(["tiny"], "森林防火期从哪天开始", top_k=2)
    direct = manager.service("tiny").ask("森林防火期从哪天开始", top_k=2)
    # One knowledge base named: its own answer and scores, unchanged, each hit naming it.
    assert single.text == direct.text and single.source == direct.source
    assert [(h.passage, h.score) for h in single.hits] == [(h.passage, h.score) for h in direct.hits]
    assert [h.knowledge_base for h in single.hits] == ["tiny", "tiny"]


def test_one_embedder_for_knowledge_bases_that_share_a_model(manager):
    manager.create("more")
    more = manager.service("more", allow_empty=True)
    assert more.embedder is manager.service("tiny").embedder is manager.service(DEFAULT_KB).embedder


def test_a_knowledge_base_deleted_by_another_process_is_not_served(manager):
    assert manager.service("tiny").passage_count() > 0
    other = KnowledgeBaseManager(manager.settings, serving=False)  # e.g. another `qa serve` worker
    other.delete("tiny")
    with pytest.raises(KnowledgeBaseNotFoundError):
        manager.service("tiny")
    assert not manager.loaded("tiny")


def test_an_upload_after_the_delete_fails_and_leaves_no_folder_behind(manager):
    """A request that got the service before the delete writes nothing and does not make the folder again."""
    held = manager.service("tiny")
    folder = manager.registry.folder("tiny")
    manager.delete("tiny")
    doc = load_documents([TINY / "c_qinghe_news.txt"]).documents[0]
    with pytest.raises(IndexGoneError, match="no longer exists"):
        held.add_document(doc)
    assert not folder.exists()
    assert [p.name for p in manager.registry.data_dir.iterdir()] == []
    manager.create("tiny")  # the name is free
    assert manager.service("tiny", allow_empty=True).add_document(doc)


def test_a_delete_waits_for_the_upload_being_written(manager):
    held = manager.service("tiny")
    writing = WriteLock(held.index_dir, 30.0)
    writing.__enter__()  # an upload being written
    deleted = threading.Event()
    deleting = threading.Thread(target=lambda: (manager.delete("tiny"), deleted.set()))
    deleting.start()
    time.sleep(0.3)
    assert not deleted.is_set(), "the delete did not wait for the write in progress"
    assert manager.registry.exists("tiny")
    writing.release()
    deleting.join(10)
    assert deleted.is_set() and not manager.registry.exists("tiny")
    assert not manager.registry.folder("tiny").exists()


def test_a_change_that_waited_behind_a_delete_meets_the_deleted_folder(manager):
    """The delete holds the write lock while it renames the folder away: the change waiting for it writes nothing."""
    index_dir = manager.service("tiny").index_dir
    deleting = WriteLock(index_dir, 30.0, create=False)
    deleting.__enter__()
    result: list[BaseException | None] = []

    def wait_then_write() -> None:
        try:
            with WriteLock(index_dir, 30.0, create=False):
                result.append(None)
        except IndexGoneError as e:
            result.append(e)

    waiter = threading.Thread(target=wait_then_write)
    waiter.start()
    time.sleep(0.2)
    assert not result, "the change did not wait for the lock"
    trash = manager.registry.detach("tiny")
    deleting.release()
    waiter.join(10)
    assert isinstance(result[0], IndexGoneError) and "deleted" in str(result[0])
    assert not manager.registry.folder("tiny").exists() and trash.exists()
