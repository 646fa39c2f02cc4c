"""Knowledge bases through the HTTP API and the real `openai` client, on FAISS and Milvus: their routes, their
documents, search over several, one chat model each, and keys that see only the knowledge bases they cover.

One server per backend: `default` is a copy of the session index (the sample corpus) plus the tiny Qinghe news;
`tiny` holds the three tiny documents (the Qinghe news is in both).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from api.deps import build_service
from api.main import create_app
from qa.knowledge_bases.access import KeyEntry, KeyStore, hash_key
from qa.knowledge_bases.registry import milvus_prefix
from tests.support import live_server, new_collection

TINY = Path(__file__).resolve().parent.parent / "data" / "tiny"
ADMIN = "admin-key-1"
KEYS = {"tiny-reader": ("read-tiny-key", ["tiny"], []), "tiny-writer": ("write-tiny-key", [], ["tiny"]),
        "default-reader": ("read-default-key", ["default"], [])}
FIRE_QUESTION = "全区森林防火期从哪天开始"  # answered only by a document of `tiny`
FIRE_DOC = "b_forest_fire_notice.txt"
QINGHE_QUESTION = "清河镇完成高标准农田建设多少亩"  # the Qinghe news is in both


@dataclass
class World:
    url: str
    settings: object
    fire_doc_id: str

    def client(self, key: str | None = ADMIN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def oai(self, key: str = ADMIN) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=60)


def _upload(client: httpx.Client, path: str, file: Path) -> dict:
    response = client.post(path, json={"text": file.read_text(encoding="utf-8"), "filename": file.name})
    assert response.status_code in (200, 201), response.text
    return response.json()["document"]


@pytest.fixture(scope="module")
def world(settings, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("kbs")
    shutil.copytree(settings.index_dir, root / "index")
    update = {"index_dir": root / "index", "data_dir": root / "data", "keys_file": root / "keys.json",
              "api_key": ADMIN}
    if settings.backend == "milvus":
        update["milvus_collection"] = new_collection("kb")
    ours = settings.model_copy(update=update)
    if settings.backend == "milvus":
        build_service(ours).open(list(ours.corpus))
    store = KeyStore(ours.keys_file)
    for name, (key, read, write) in KEYS.items():
        store.add(KeyEntry(name, hash_key(key), tuple(read), tuple(write)))
    with live_server(create_app(ours)) as url:
        world = World(url, ours, "")
        with world.client() as admin:
            assert admin.post("/v1/knowledge_bases", json={"name": "tiny", "description": "三篇短文"}).status_code == 201
            for file in sorted(TINY.iterdir()):
                doc = _upload(admin, "/v1/knowledge_bases/tiny/documents", file)
                if file.name == FIRE_DOC:
                    world.fire_doc_id = doc["id"]
            _upload(admin, "/v1/documents", TINY / "c_qinghe_news.txt")
        yield world


def test_knowledge_base_routes(world):
    with world.client() as admin:
        listed = admin.get("/v1/knowledge_bases").json()
        assert [kb["name"] for kb in listed["knowledge_bases"]] == ["default", "tiny"]
        tiny = admin.get("/v1/knowledge_bases/tiny").json()
        assert tiny["description"] == "三篇短文" and tiny["model_id"] == "zhqa-retrieval/tiny"
        assert tiny["documents"] == 3 and tiny["passages"] > 3 and tiny["loaded"]
        assert admin.patch("/v1/knowledge_bases/tiny", json={"description": "短文"}).json()["description"] == "短文"
        duplicate = admin.post("/v1/knowledge_bases", json={"name": "tiny"})
        assert duplicate.status_code == 409 and "exists already" in duplicate.json()["detail"]
        for bad in ["../etc", "a b", "", "-x", "x" * 65, "中文"]:
            response = admin.post("/v1/knowledge_bases", json={"name": bad})
            assert response.status_code == 422 and "letters, digits" in response.json()["detail"], bad
        assert admin.get("/v1/knowledge_bases/a.b").status_code == 422
        unknown = admin.get("/v1/knowledge_bases/nope")
        assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
        assert admin.get("/v1/knowledge_bases/nope/documents").status_code == 404
        assert admin.post("/v1/search", json={"query": "清河镇", "knowledge_bases": ["nope"]}).status_code == 404
        assert admin.delete("/v1/knowledge_bases/default").status_code == 409
        # The default routes are untouched: the sample corpus plus the one upload.
        assert admin.get("/v1/documents").json()["total"] == 6
        health = {kb["name"]: kb for kb in admin.get("/health").json()["knowledge_bases"]}
        assert health["tiny"] == {"name": "tiny", "loaded": True, "documents": 3, "passages": tiny["passages"]}
        assert health["default"]["documents"] == 6
        metrics = admin.get("/metrics").text
        assert 'zhqa_kb_loaded{knowledge_base="tiny"} 1.0' in metrics
        assert f'zhqa_kb_passages{{knowledge_base="tiny"}} {float(tiny["passages"])}' in metrics
        assert 'zhqa_kb_documents{knowledge_base="default"} 6.0' in metrics
    with world.client(KEYS["tiny-reader"][0]) as reader:
        _forbidden(reader.get("/metrics"))  # they name every knowledge base


def test_documents_of_a_knowledge_base(world):
    with world.client() as admin:
        docs = admin.get("/v1/knowledge_bases/tiny/documents").json()
        assert docs["total"] == 3
        detail = admin.get(f"/v1/knowledge_bases/tiny/documents/{world.fire_doc_id}").json()
        assert detail["title"] and detail["passage_count"] > 0
        assert admin.get(f"/v1/documents/{world.fire_doc_id}").status_code == 404  # not in default
        assert admin.post("/v1/knowledge_bases", json={"name": "scratch"}).status_code == 201
        empty = admin.post("/v1/search", json={"query": "清河镇", "knowledge_bases": ["scratch"]})
        assert empty.status_code == 409 and "no documents yet" in empty.json()["detail"]
        assert admin.get("/v1/knowledge_bases/scratch/documents").json() == {"documents": [], "total": 0}
        added = admin.post("/v1/knowledge_bases/scratch/documents", json={"text": "临时文件：仓库钥匙由张三保管。"})
        assert added.status_code == 201
        assert added.headers["location"].startswith("/v1/knowledge_bases/scratch/documents/")
        hits = admin.post("/v1/search", json={"query": "仓库钥匙由谁保管", "knowledge_bases": ["scratch"]}).json()
        assert hits["hits"][0]["knowledge_base"] == "scratch" and "张三" in hits["hits"][0]["text"]
        folder = Path(world.settings.data_dir) / "scratch"
        assert folder.is_dir()
        deleted = admin.delete("/v1/knowledge_bases/scratch")
        assert deleted.status_code == 200 and deleted.json()["knowledge_base"]["name"] == "scratch"
        assert not folder.exists() and admin.get("/v1/knowledge_bases/scratch").status_code == 404
        assert sorted(p.name for p in Path(world.settings.data_dir).iterdir()) == ["tiny"]
        if world.settings.backend == "milvus":
            from pymilvus import MilvusClient

            prefix = milvus_prefix(world.settings.milvus_collection, "scratch")
            milvus = MilvusClient(uri=world.settings.milvus_uri)
            assert not milvus.has_collection(f"{prefix}_passages")
            assert milvus.has_collection(f"{milvus_prefix(world.settings.milvus_collection, 'tiny')}_passages")
            milvus.close()
        assert admin.get("/v1/knowledge_bases/tiny/documents").json()["total"] == 3


def test_search_over_several_knowledge_bases(world):
    with world.client() as admin:
        one = admin.post("/v1/search", json={"query": FIRE_QUESTION, "knowledge_bases": ["tiny"]}).json()
        assert "2023年11月1日" in one["answer"]["text"] and {h["knowledge_base"] for h in one["hits"]} == {"tiny"}
        both = admin.post("/v1/search", json={"query": QINGHE_QUESTION, "knowledge_bases": ["default", "tiny"],
                                              "top_k": 4}).json()
        first, second = both["hits"][:2]
        assert first["passage_id"] == second["passage_id"]
        assert {first["knowledge_base"], second["knowledge_base"]} == {"default", "tiny"}
        assert abs(first["score"] - second["score"]) < 0.05
        assert "1.2万亩" in both["answer"]["text"] and [h["rank"] for h in both["hits"]] == [1, 2, 3, 4]
        plain = admin.post("/v1/search", json={"query": QINGHE_QUESTION}).json()
        assert {h["knowledge_base"] for h in plain["hits"]} == {"default"}


def test_one_chat_model_per_knowledge_base(world):
    oai = world.oai()
    assert [m.id for m in oai.models.list().data] == ["zhqa-retrieval", "zhqa-retrieval/tiny"]
    assert oai.models.retrieve("zhqa-retrieval/tiny").id == "zhqa-retrieval/tiny"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("zhqa-retrieval/nope")
    completion = oai.chat.completions.create(model="zhqa-retrieval/tiny",
                                             messages=[{"role": "user", "content": FIRE_QUESTION}])
    assert completion.model == "zhqa-retrieval/tiny"
    assert "2023年11月1日" in completion.choices[0].message.content
    citations = completion.model_extra["citations"]
    assert citations and {c["knowledge_base"] for c in citations} == {"tiny"}
    assert completion.model_extra["retrieval"]["knowledge_base"] == "tiny"
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="zhqa-retrieval/nope", messages=[{"role": "user", "content": "你好"}])
    stream = list(oai.chat.completions.create(model="zhqa-retrieval/tiny", stream=True,
                                              messages=[{"role": "user", "content": FIRE_QUESTION}]))
    final = next(c for c in stream if c.choices and c.choices[0].finish_reason == "stop")
    assert {c["knowledge_base"] for c in final.model_extra["citations"]} == {"tiny"}


def _forbidden(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["type"] == "forbidden"


def test_a_read_key_sees_only_its_knowledge_base(world):
    key = KEYS["tiny-reader"][0]
    with world.client(key) as reader:
        assert [kb["name"] for kb in reader.get("/v1/knowledge_bases").json()["knowledge_bases"]] == ["tiny"]
        assert [kb["name"] for kb in reader.get("/health").json()["knowledge_bases"]] == ["tiny"]
        _forbidden(reader.get("/v1/knowledge_bases/default"))
        _forbidden(reader.get("/v1/documents"))
        _forbidden(reader.post("/v1/search", json={"query": QINGHE_QUESTION}))
        _forbidden(reader.post("/v1/search", json={"query": QINGHE_QUESTION, "knowledge_bases": ["tiny", "default"]}))
        _forbidden(reader.get("/v1/knowledge_bases/nope"))  # unknown and uncovered look alike: nothing revealed
        _forbidden(reader.post("/v1/knowledge_bases/tiny/documents", json={"text": "不能写入。"}))
        _forbidden(reader.post("/v1/knowledge_bases", json={"name": "mine"}))
        found = reader.post("/v1/search", json={"query": QINGHE_QUESTION, "knowledge_bases": ["tiny"]}).json()
        assert found["hits"] and {h["knowledge_base"] for h in found["hits"]} == {"tiny"}
    oai = world.oai(key)
    assert [m.id for m in oai.models.list().data] == ["zhqa-retrieval/tiny"]
    with pytest.raises(openai.PermissionDeniedError):
        oai.chat.completions.create(model="zhqa-retrieval", messages=[{"role": "user", "content": QINGHE_QUESTION}])
    with pytest.raises(openai.PermissionDeniedError):
        oai.models.retrieve("zhqa-retrieval")
    # A follow-up turn stays inside the chosen knowledge base: every citation of every turn is from `tiny`.
    messages = [{"role": "user", "content": "城关区上半年地区生产总值完成多少"}]
    for follow_up in ["那固定资产投资呢？", "社会消费品零售总额呢？"]:
        completion = oai.chat.completions.create(model="zhqa-retrieval/tiny", messages=messages)
        assert {c["knowledge_base"] for c in completion.model_extra["citations"]} == {"tiny"}
        messages += [{"role": "assistant", "content": completion.choices[0].message.content},
                     {"role": "user", "content": follow_up}]


def test_a_default_key_never_gets_hits_from_tiny(world):
    key = KEYS["default-reader"][0]
    with world.client(key) as reader:
        assert [kb["name"] for kb in reader.get("/v1/knowledge_bases").json()["knowledge_bases"]] == ["default"]
        _forbidden(reader.post("/v1/search", json={"query": FIRE_QUESTION, "knowledge_bases": ["tiny"]}))
        _forbidden(reader.get("/v1/knowledge_bases/tiny/documents"))
        hits = reader.post("/v1/search", json={"query": FIRE_QUESTION, "top_k": 20}).json()["hits"]
        assert hits and {h["knowledge_base"] for h in hits} == {"default"}
        assert world.fire_doc_id not in {h["doc_id"] for h in hits}
    oai = world.oai(key)
    assert [m.id for m in oai.models.list().data] == ["zhqa-retrieval"]
    with pytest.raises(openai.PermissionDeniedError):
        oai.chat.completions.create(model="zhqa-retrieval/tiny", messages=[{"role": "user", "content": FIRE_QUESTION}])
    messages = [{"role": "user", "content": FIRE_QUESTION}, {"role": "assistant", "content": "不知道。"},
                {"role": "user", "content": "那结束日期呢？"}]
    completion = oai.chat.completions.create(model="zhqa-retrieval", messages=messages)
    assert {c["knowledge_base"] for c in completion.model_extra["citations"]} == {"default"}
    assert world.fire_doc_id not in {c["doc_id"] for c in completion.model_extra["citations"]}


def test_write_keys_and_bad_keys(world, caplog):
    caplog.set_level(logging.DEBUG)
    key = KEYS["tiny-writer"][0]
    with world.client(key) as writer:
        added = writer.post("/v1/knowledge_bases/tiny/documents", json={"text": "写入测试：档案室在三楼。"})
        assert added.status_code == 201
        doc_id = added.json()["document"]["id"]
        assert writer.delete(f"/v1/knowledge_bases/tiny/documents/{doc_id}").status_code == 200
        assert writer.patch("/v1/knowledge_bases/tiny", json={"description": "短文"}).status_code == 200
        _forbidden(writer.delete("/v1/knowledge_bases/tiny"))
        _forbidden(writer.post("/v1/documents", json={"text": "不能写入默认库。"}))
    with world.client("wrong-key") as stranger:
        assert stranger.get("/v1/knowledge_bases").status_code == 401
        assert stranger.get("/health").json()["knowledge_bases"] is None
    with world.client(None) as anonymous:
        assert anonymous.post("/v1/search", json={"query": "清河镇", "knowledge_bases": ["tiny"]}).status_code == 401
    logged = "\n".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    assert all(k not in logged for k, _, _ in KEYS.values()) and ADMIN not in logged
    stored = Path(world.settings.keys_file).read_text()
    assert all(k not in stored and hash_key(k) in stored for k, _, _ in KEYS.values())


def test_a_delete_interrupted_after_its_rename_is_finished_at_the_next_start(world):
    from qa.knowledge_bases.manager import KnowledgeBaseManager
    from qa.knowledge_bases.registry import KnowledgeBaseRegistry

    with world.client() as admin:
        assert admin.post("/v1/knowledge_bases", json={"name": "crashy"}).status_code == 201
        _upload(admin, "/v1/knowledge_bases/crashy/documents", TINY / FIRE_DOC)
        milvus = prefix = None
        if world.settings.backend == "milvus":
            from pymilvus import MilvusClient

            milvus = MilvusClient(uri=world.settings.milvus_uri)
            prefix = milvus_prefix(world.settings.milvus_collection, "crashy")
            assert milvus.has_collection(f"{prefix}_passages")
        trash = KnowledgeBaseRegistry(world.settings).detach("crashy")  # the process dies right after this
        assert admin.get("/v1/knowledge_bases/crashy/documents").status_code == 404  # gone at once
        KnowledgeBaseManager(world.settings, serving=False).clean()  # what the next start runs
        assert not trash.exists()
        assert sorted(p.name for p in Path(world.settings.data_dir).iterdir()) == ["tiny"]
        if milvus is not None:
            assert not milvus.has_collection(f"{prefix}_passages")
            assert not milvus.has_collection(f"{prefix}_documents")
            milvus.close()
        assert admin.get("/v1/knowledge_bases/tiny/documents").json()["total"] == 3
