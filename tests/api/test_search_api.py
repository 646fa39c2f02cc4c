"""POST /v1/search: ranking, exact citation offsets, filters, and the published schema."""

from __future__ import annotations

import pytest

QUESTION = "古塔区固定资产投资完成多少"
ANSWER = "10.4亿元"


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_question_finds_the_figure_first(client, mode):
    response = client.post("/v1/search", json={"query": QUESTION, "mode": mode, "top_k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == QUESTION
    assert ANSWER in body["hits"][0]["text"]
    assert ANSWER in body["answer"]["text"]
    assert body["answer"]["answerable"] is True
    assert [h["rank"] for h in body["hits"]] == [1, 2, 3]
    assert body["took_ms"] >= 0


def test_scores_follow_the_mode(client):
    bm25 = client.post("/v1/search", json={"query": QUESTION, "mode": "bm25"}).json()["hits"][0]
    assert bm25["dense_score"] is None and bm25["keyword_score"] > 0
    dense = client.post("/v1/search", json={"query": QUESTION, "mode": "dense"}).json()["hits"][0]
    assert dense["keyword_score"] is None and -1 <= dense["dense_score"] <= 1
    hybrid = client.post("/v1/search", json={"query": QUESTION, "mode": "hybrid"}).json()["hits"][0]
    assert hybrid["keyword_score"] is not None and hybrid["dense_score"] is not None


def test_citation_offsets_point_into_the_document(client, service):
    hits = client.post("/v1/search", json={"query": QUESTION, "top_k": 5}).json()["hits"]
    assert len(hits) == 5
    for hit in hits:
        document = service.document(hit["doc_id"])
        assert document.text[hit["char_start"]:hit["char_end"]] == hit["text"]
        assert hit["passage_id"] == f"{hit['doc_id']}:{hit['char_start']}-{hit['char_end']}"
        assert hit["doc_title"] == document.title
        span = hit["answer_span"]
        assert span is not None and hit["text"][span["start"]:span["end"]] == span["text"]
        assert hit["page"] is None  # text files have no pages
    top = hits[0]
    assert top["section_path"][0].startswith("一、提高政治站位")
    assert ANSWER in top["answer_span"]["text"]


def test_default_top_k_and_mode_come_from_settings(client, settings):
    body = client.post("/v1/search", json={"query": QUESTION}).json()
    assert len(body["hits"]) == settings.default_top_k


def test_doc_ids_restrict_the_search(client, service):
    other = next(d for d in service.documents() if d.meta.place != "古塔区")
    hits = client.post("/v1/search", json={"query": QUESTION, "doc_ids": [other.doc_id]}).json()["hits"]
    assert hits and {h["doc_id"] for h in hits} == {other.doc_id}


def test_unanswerable_question_says_so_and_still_cites(client):
    body = client.post("/v1/search", json={"query": "古塔区的GDP总量是多少亿元"}).json()
    assert body["answer"]["answerable"] is False
    assert body["answer"]["text"].startswith("不知道")
    assert body["hits"]


def test_openapi_publishes_the_schemas(client, settings):
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for name in ("SearchRequest", "SearchResponse", "HitOut", "AnswerSpanOut", "DocumentOut", "DocumentDetail",
                 "DocumentCreate", "DocumentCreated", "ChatCompletionRequest", "ChatCompletion", "ModelList",
                 "Health", "ErrorOut"):
        assert name in components, name
    hit_fields = set(components["HitOut"]["properties"])
    assert {"rank", "score", "dense_score", "keyword_score", "passage_id", "doc_id", "doc_title", "section_path",
            "paragraph_index", "char_start", "char_end", "page", "text", "answer_span"} <= hit_fields
    request = components["SearchRequest"]["properties"]
    assert request["top_k"]["maximum"] == settings.max_top_k and request["top_k"]["minimum"] == 1
    assert request["query"]["maxLength"] == settings.max_query_chars
    paths = schema["paths"]
    for path in ("/health", "/v1/search", "/v1/documents", "/v1/documents/{doc_id}", "/v1/models",
                 "/v1/chat/completions"):
        assert path in paths, path
    upload = paths["/v1/documents"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(upload)


def test_docs_page_is_served(client):
    assert client.get("/docs").status_code == 200


def test_answer_gives_its_source_rank_and_the_exact_value(client):
    body = client.post("/v1/search", json={"query": QUESTION, "top_k": 5}).json()
    answer = body["answer"]
    assert answer["source_rank"] is not None and answer["text"]
    exact = answer["exact"]
    assert exact is not None and exact["text"] == ANSWER
    hit = body["hits"][exact["rank"] - 1]
    assert hit["text"][exact["start"]:exact["end"]] == ANSWER
    assert ANSWER in hit["answer_span"]["text"]


def test_unanswerable_answer_has_no_source_or_exact_value(client):
    answer = client.post("/v1/search", json={"query": "古塔区的GDP总量是多少亿元"}).json()["answer"]
    assert answer["source_rank"] is None and answer["exact"] is None
