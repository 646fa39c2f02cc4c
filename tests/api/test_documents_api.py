"""Documents: list, detail, upload (multipart and JSON), delete, persistence across restarts, and bad uploads."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

UNIQUE = "青柠湾社区共建共享示范点"
NEW_DOC = (
    "关于青柠湾社区建设的通报\n\n"
    "一、总体情况\n"
    f"今年全区建成{UNIQUE}三处，惠及居民八千余户。\n\n"
    "二、下一步工作\n"
    "各街道要总结经验，明年再建五处示范点。\n"
)
JSON_UNIQUE = "琥珀河湿地公园二期工程"
JSON_DOC = f"{JSON_UNIQUE}于九月开工，计划明年六月完工，新增绿地十二公顷。"


def _search_top(client, query: str) -> dict:
    return client.post("/v1/search", json={"query": query, "mode": "bm25", "top_k": 1}).json()["hits"][0]


def test_list_documents(client, service):
    body = client.get("/v1/documents").json()
    assert body["total"] == len(body["documents"]) == 5
    by_id = {d["id"]: d for d in body["documents"]}
    speech = next(d for d in body["documents"] if d["meta"]["speaker"] == "宋晓东")
    assert speech["meta"] == {"speaker": "宋晓东", "date": "2020年7月25日", "place": "古塔区"}
    assert speech["source"].endswith("000_41c0baea53232ea5.txt")
    assert sum(d["passage_count"] for d in by_id.values()) == service.passage_count()


def test_document_detail_has_sections(client, service):
    doc = next(d for d in service.documents() if d.source.endswith("001_6616b1998ff55e9b.txt"))
    body = client.get(f"/v1/documents/{doc.doc_id}").json()
    assert body["id"] == doc.doc_id and body["title"] == doc.title and body["text"] is None
    titles = [s["title"] for s in body["sections"]]
    assert any("抓好脱贫收官工作" in t for t in titles)
    for section in body["sections"]:
        assert section["path"][-1] == section["title"] and 0 <= section["start"] < section["end"] <= len(doc.text)
    with_text = client.get(f"/v1/documents/{doc.doc_id}", params={"include_text": "true"}).json()
    assert with_text["text"] == doc.text


def test_unknown_document_is_404(client):
    assert client.get("/v1/documents/0000000000000000").status_code == 404
    assert client.delete("/v1/documents/0000000000000000").status_code == 404
    body = client.post("/v1/search", json={"query": "古塔区", "doc_ids": ["0000000000000000"]}).json()
    assert "0000000000000000" in body["detail"]


def test_upload_search_delete_and_restart(make_client, index_copy):
    with make_client() as client:
        upload = client.post("/v1/documents", files={"file": ("青柠湾.txt", NEW_DOC.encode("utf-8"), "text/plain")})
        assert upload.status_code == 201, upload.text
        new = upload.json()["document"]
        assert upload.json()["created"] is True and new["source"] == "青柠湾.txt"
        assert upload.headers["location"] == f"/v1/documents/{new['id']}"
        assert new["title"] and new["passage_count"] >= 1

        again = client.post("/v1/documents", files={"file": ("copy.txt", NEW_DOC.encode("utf-8"), "text/plain")})
        assert again.status_code == 200 and again.json()["created"] is False
        assert again.json()["document"]["id"] == new["id"]

        as_json = client.post("/v1/documents", json={"title": "湿地公园", "text": JSON_DOC, "filename": "wetland.md"})
        assert as_json.status_code == 201, as_json.text
        wetland = as_json.json()["document"]
        assert wetland["title"] == "湿地公园" and wetland["source"] == "wetland.md"

        assert client.get("/v1/documents").json()["total"] == 7
        assert _search_top(client, "青柠湾社区共建共享示范点建成几处")["doc_id"] == new["id"]
        assert _search_top(client, JSON_UNIQUE)["doc_id"] == wetland["id"]
        detail = client.get(f"/v1/documents/{new['id']}").json()
        assert [s["title"] for s in detail["sections"]][:2] == ["一、总体情况", "二、下一步工作"]

        deleted = client.delete(f"/v1/documents/{new['id']}")
        assert deleted.status_code == 200 and deleted.json()["document"]["id"] == new["id"]
        assert client.get(f"/v1/documents/{new['id']}").status_code == 404
        assert _search_top(client, "青柠湾社区共建共享示范点建成几处")["doc_id"] != new["id"]

    # A new app over the same folder sees both changes: the JSON document stays, the uploaded one stays deleted.
    with make_client() as client:
        ids = {d["id"] for d in client.get("/v1/documents").json()["documents"]}
        assert wetland["id"] in ids and new["id"] not in ids and len(ids) == 6
        assert _search_top(client, JSON_UNIQUE)["doc_id"] == wetland["id"]


def test_deleting_the_last_document_is_409(tmp_path, make_client):
    corpus = tmp_path / "one"
    corpus.mkdir()
    (corpus / "only.txt").write_text("唯一的文档。这里只有一句话，用来测试删除。", encoding="utf-8")
    with make_client(index_dir=tmp_path / "one_index", corpus=[corpus]) as client:
        doc_id = client.get("/v1/documents").json()["documents"][0]["id"]
        response = client.delete(f"/v1/documents/{doc_id}")
        assert response.status_code == 409 and "last document" in response.json()["detail"]


@pytest.mark.parametrize(
    ("name", "data", "status", "reason"),
    [
        ("empty.txt", b"", 422, "empty"),
        ("blank.txt", b"   \n\n ", 422, "empty"),
        ("binary.txt", bytes(range(256)) * 8, 422, "binary"),
        ("image.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 415, ".png"),
        ("noext", "没有扩展名的文件。".encode(), 415, "(none)"),
        ("script.py", b"print('hi')", 415, ".py"),
    ],
)
def test_bad_uploads_are_refused_with_the_reason(make_client, name, data, status, reason):
    with make_client() as client:
        response = client.post("/v1/documents", files={"file": (name, data, "application/octet-stream")})
        assert response.status_code == status, response.text
        assert reason in response.json()["detail"]
        assert client.get("/v1/documents").json()["total"] == 5


def test_undecodable_upload_is_422(make_client):
    # Invalid UTF-8 and invalid GB18030 (0x80 alone is a lead byte with nothing valid after it) and many controls.
    data = (b"\xff\xfe\x80\x81" + bytes(range(1, 32))) * 20
    with make_client() as client:
        response = client.post("/v1/documents", files={"file": ("bad.txt", data, "text/plain")})
        assert response.status_code == 422
        assert "decode" in response.json()["detail"] or "binary" in response.json()["detail"]


def test_gbk_upload_is_decoded(make_client):
    text = "关于古塔区冬季供暖工作的通知。各街道要确保居民室温达标。"
    with make_client() as client:
        response = client.post("/v1/documents", files={"file": ("gbk.txt", text.encode("gbk"), "text/plain")})
        assert response.status_code == 201
        doc_id = response.json()["document"]["id"]
        detail = client.get(f"/v1/documents/{doc_id}", params={"include_text": True}).json()
        assert detail["text"] == text


def test_upload_size_limits(make_client):
    with make_client(max_upload_bytes=2_000, max_body_bytes=50_000) as client:
        big = ("很长的文档内容。" * 200).encode("utf-8")  # 4,800 bytes: over the upload limit, under the body limit
        upload = client.post("/v1/documents", files={"file": ("big.txt", big, "text/plain")})
        assert upload.status_code == 413 and "2000" in upload.json()["detail"]
        as_json = client.post("/v1/documents", json={"text": big.decode("utf-8")})
        assert as_json.status_code == 413
        # Over the body limit: refused from Content-Length before the body is read.
        huge = b"x" * 60_000
        body = client.post("/v1/documents", files={"file": ("huge.txt", huge, "text/plain")})
        assert body.status_code == 413 and "50000" in body.json()["detail"]
        search = client.post("/v1/search", content=b'{"query": "' + huge + b'"}',
                             headers={"content-type": "application/json"})
        assert search.status_code == 413


def test_streamed_body_over_the_limit_is_cut_off(make_client):
    def chunks():
        for _ in range(100):
            yield b"x" * 1_000

    with make_client(max_body_bytes=10_000) as client:
        # A generator body is sent chunked, without Content-Length: the middleware counts the bytes.
        response = client.post("/v1/search", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert response.json()["detail"] == "request body is larger than the limit of 10000 bytes"
        response = client.post("/v1/documents", content=chunks(),
                               headers={"content-type": "multipart/form-data; boundary=xyz"})
        assert response.status_code == 413


def test_wrong_content_types_for_upload(make_client):
    with make_client() as client:
        plain = client.post("/v1/documents", content="纯文本".encode(), headers={"content-type": "text/plain"})
        assert plain.status_code == 415
        no_file = client.post("/v1/documents", data={"title": "没有文件"}, files={"other": ("a.txt", b"abc")})
        assert no_file.status_code == 422 and "'file'" in no_file.json()["detail"]
        bad_json = client.post("/v1/documents", content=b"{not json", headers={"content-type": "application/json"})
        assert bad_json.status_code == 400
        missing = client.post("/v1/documents", json={"title": "只有标题"})
        assert missing.status_code == 422 and "text" in missing.json()["detail"]
        empty = client.post("/v1/documents", json={"text": ""})
        assert empty.status_code == 422 and "empty" in empty.json()["detail"]
        nul = client.post("/v1/documents", json={"text": "abc\u0000def"})
        assert nul.status_code == 422


def test_path_traversal_filename_is_only_a_label(make_client, index_copy, tmp_path):
    before = {p for p in Path("/etc").iterdir()} if Path("/etc").exists() else set()
    outside = tmp_path.parent / "passwd.txt"
    with make_client() as client:
        for name in ("../../etc/passwd.txt", "..\\..\\windows\\evil.txt", "/abs/path/x.txt", "..txt"):
            text = f"标签测试文档 {name} 的内容。这是一段普通的中文。"
            response = client.post("/v1/documents", files={"file": (name, text.encode("utf-8"), "text/plain")})
            assert response.status_code in (201, 415, 422), response.text
            if response.status_code == 201:
                source = response.json()["document"]["source"]
                assert "/" not in source and "\\" not in source and not source.startswith(".")
    assert not outside.exists()
    assert {p for p in Path("/etc").iterdir()} == before if before else True
    # Everything written went into the index folder.
    assert not (index_copy.parent / "passwd.txt").exists()
    for root, _dirs, files in os.walk(index_copy):
        assert not any(f == "passwd.txt" for f in files), root


def test_an_upload_is_searchable_at_once_and_its_vectors_follow(make_client):
    """QA_EMBED_IN_BACKGROUND (the default of `qa serve`): the upload returns once its keyword index is saved."""
    text = "\n".join(f"第{i}条：全区新建口袋公园{i}处，由住建局牵头，十月底前完工。" for i in range(1, 41))
    with make_client(embed_in_background=True) as client:
        created = client.post("/v1/documents", json={"title": "口袋公园建设", "text": text})
        assert created.status_code == 201
        doc = created.json()["document"]
        assert 0 <= doc["passages_with_vectors"] <= doc["passage_count"]
        found = client.post("/v1/search", json={"query": "全区新建口袋公园多少处", "mode": "bm25"}).json()
        assert found["hits"][0]["doc_id"] == doc["id"]
        deadline = time.monotonic() + 60
        while client.get(f"/v1/documents/{doc['id']}").json()["passages_with_vectors"] < doc["passage_count"]:
            assert time.monotonic() < deadline, "the background embedding did not finish"
            time.sleep(0.05)
        health = client.get("/health").json()
        assert health["passages_with_vectors"] == health["passages"]
        dense = client.post("/v1/search", json={"query": "住建局牵头的口袋公园", "mode": "dense", "top_k": 20}).json()
        assert any(hit["doc_id"] == doc["id"] for hit in dense["hits"])
