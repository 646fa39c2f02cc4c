"""Bad input always gets a 4xx with a readable message, never a 500."""

from __future__ import annotations

import pytest

SEARCH_CASES = [
    ({"query": ""}, 422, "empty"),
    ({"query": "   \n\t "}, 422, "empty"),
    ({"query": "古" * 10_000}, 422, "limit is 2000"),
    ({"query": "古塔区", "top_k": 0}, 422, "[1, 100]"),
    ({"query": "古塔区", "top_k": 10_000}, 422, "[1, 100]"),
    ({"query": "古塔区", "top_k": -3}, 422, "[1, 100]"),
    ({"query": "古塔区", "top_k": "many"}, 422, "top_k"),
    ({"query": "古塔区", "mode": "fuzzy"}, 422, "'hybrid', 'dense' or 'bm25'"),
    ({"query": "古塔区", "doc_ids": ["no-such-doc"]}, 404, "no-such-doc"),
    ({"query": "古塔区", "doc_ids": "e47fa82f02a25274"}, 422, "doc_ids"),
    ({"query": 42}, 422, "query"),
    ({"query": None}, 422, "query"),
    ({}, 422, "query: field required"),
    ({"query": "古塔区", "topk": 3}, 422, "topk: unknown field"),
]


@pytest.mark.parametrize(("body", "status", "message"), SEARCH_CASES, ids=[str(c[0])[:40] for c in SEARCH_CASES])
def test_bad_search_requests(client, body, status, message):
    response = client.post("/v1/search", json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert message in error["detail"], error
    assert error["type"]


def test_punctuation_only_query_is_refused_or_unanswered(client):
    # The core refuses a query with nothing searchable (422), or, in older cores, answers 不知道; never a 500.
    response = client.post("/v1/search", json={"query": "？？！！。。"})
    assert response.status_code in (200, 422)
    if response.status_code == 422:
        assert "searchable" in response.json()["detail"]
    else:
        assert response.json()["answer"]["answerable"] is False


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        ('{"query": "古塔区"'.encode(), "application/json", 400),
        (b"not json at all", "application/json", 400),
        (b"[1, 2, 3]", "application/json", 422),
        (b'"just a string"', "application/json", 422),
        ("古塔区固定资产投资完成多少".encode(), "text/plain", 415),
        (b"query=abc", "application/x-www-form-urlencoded", 415),
        ('{"query": "古塔区"}'.encode(), "", 415),
        (b"\xff\xfe\x00garbage", "application/json", 400),
    ],
)
def test_unparseable_bodies(client, content, content_type, status):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/v1/search", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str)


def test_invalid_json_message_says_where(client):
    response = client.post("/v1/search", content=b'{"query": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("invalid JSON body")


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "system", "content": "你是助手"}]},
        {"messages": [{"role": "user", "content": ""}]},
        {"messages": [{"role": "user", "content": "   "}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        {"messages": [{"role": "assistant", "content": "古塔区固定资产投资完成10.4亿元"}]},
        {"messages": "古塔区"},
        {},
    ],
)
def test_chat_without_a_user_question_is_422(client, body):
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 422, response.text
    assert "messages" in response.json()["detail"]


@pytest.mark.parametrize(
    ("extra", "status"),
    [({"top_k": 0}, 422), ({"top_k": 5000}, 422), ({"doc_ids": ["nope"]}, 404), ({"mode": "x"}, 422)],
)
def test_chat_with_bad_options(client, extra, status):
    body = {"messages": [{"role": "user", "content": "古塔区固定资产投资完成多少"}], **extra}
    assert client.post("/v1/chat/completions", json=body).status_code == status
    assert client.post("/v1/chat/completions", json={**body, "stream": True}).status_code == status


def test_chat_question_too_long_is_422(client):
    body = {"messages": [{"role": "user", "content": "古" * 10_000}], "stream": True}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 422 and "limit" in response.json()["detail"]


def test_unknown_routes_and_methods(client):
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/v1/search").status_code == 405
    assert client.put("/v1/documents").status_code == 405
    assert client.get("/v1/models/gpt-4").status_code == 404
