"""The OpenAI-compatible endpoints, driven by the real `openai` client over HTTP (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import json
import re
import time

import httpx
import openai
import pytest

from api.main import create_app

QUESTION = "古塔区固定资产投资完成多少"
ANSWER = "10.4亿元"
CITATION_FIELDS = {"rank", "score", "dense_score", "keyword_score", "passage_id", "doc_id", "doc_title",
                   "section_path", "paragraph_index", "char_start", "char_end", "page", "text", "answer_span"}


@pytest.fixture(scope="module")
def oai(server_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="not-needed", max_retries=0, timeout=30)


def _extra(model, name):
    """An extension field of an openai response object (kept by the client as an extra attribute)."""
    value = getattr(model, name, None)
    if value is None and model.model_extra:
        value = model.model_extra.get(name)
    return value


def test_models(oai):
    models = oai.models.list()
    assert [m.id for m in models.data] == ["zhqa-retrieval"]
    assert oai.models.retrieve("zhqa-retrieval").owned_by == "zhqa"


def test_plain_completion_with_citations(oai, service):
    completion = oai.chat.completions.create(
        model="zhqa-retrieval", messages=[{"role": "user", "content": QUESTION}], temperature=0.3, max_tokens=200)
    assert completion.object == "chat.completion"
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", completion.id)
    assert abs(completion.created - time.time()) < 120  # seconds, not milliseconds
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    content = choice.message.content
    answer_line, sources = content.split("\n\n", 1)
    assert ANSWER in answer_line and answer_line.endswith(" [1]")
    first_source = sources.splitlines()[0]
    assert first_source.startswith("[1] 《在全区统筹推进疫情防控") and "一、提高政治站位" in first_source
    assert re.search(r"（第\d+段）$", first_source)
    citations = _extra(choice.message, "citations")
    assert citations == _extra(completion, "citations")
    assert CITATION_FIELDS <= set(citations[0]) and ANSWER in citations[0]["text"]
    doc = service.document(citations[0]["doc_id"])
    assert doc.text[citations[0]["char_start"]:citations[0]["char_end"]] == citations[0]["text"]
    assert len(sources.splitlines()) == len(citations) == 5
    assert completion.usage.completion_tokens > 0 and completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_streaming_completion(oai):
    stream = oai.chat.completions.create(
        model="zhqa-retrieval", messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    with_choices = [c for c in chunks if c.choices]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert with_choices[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in with_choices if c.choices[0].delta.content]
    assert len(pieces) >= 3
    text = "".join(pieces)
    assert ANSWER in text and "[1] 《" in text
    final = with_choices[-1]
    assert final.choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    citations = _extra(final, "citations")
    assert citations and CITATION_FIELDS <= set(citations[0]) and ANSWER in citations[0]["text"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_stream_wire_format(server_url):
    body = {"model": "zhqa-retrieval", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    with httpx.stream("POST", f"{server_url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    final = json.loads(events[-2][6:])
    assert final["choices"][0]["finish_reason"] == "stop" and final["choices"][0]["delta"] == {}
    assert final["citations"][0]["rank"] == 1 and final["retrieval"]["answerable"] is True


def test_multipart_content_and_unknown_fields(oai):
    completion = oai.chat.completions.create(
        model="gpt-4o-mini",  # any name is accepted; the reply names this server's model
        messages=[{"role": "system", "content": "你是助手"},
                  {"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
        extra_body={"top_k": 2, "some_future_field": True}, presence_penalty=0.1, n=1, user="u1")
    assert completion.model == "zhqa-retrieval"
    assert len(_extra(completion, "citations")) == 2
    assert ANSWER in completion.choices[0].message.content


def test_doc_ids_extension(oai, service):
    other = next(d for d in service.documents() if d.meta.place == "魏都区")
    completion = oai.chat.completions.create(
        model="zhqa-retrieval", messages=[{"role": "user", "content": "会议由谁主持"}],
        extra_body={"doc_ids": [other.doc_id]})
    assert {c["doc_id"] for c in _extra(completion, "citations")} == {other.doc_id}
    assert "魏少峰" in completion.choices[0].message.content


def test_unanswerable_reply_says_so_and_lists_closest(oai):
    completion = oai.chat.completions.create(
        model="zhqa-retrieval", messages=[{"role": "user", "content": "古塔区的GDP总量是多少亿元"}])
    content = completion.choices[0].message.content
    assert content.startswith("不知道")
    assert "最接近的内容" in content and "[1] 《" in content
    assert _extra(completion, "citations")
    assert _extra(completion, "retrieval")["answerable"] is False


def test_followup_through_the_client(oai):
    first = oai.chat.completions.create(model="zhqa-retrieval", messages=[{"role": "user", "content": QUESTION}])
    messages = [{"role": "user", "content": QUESTION},
                {"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": "那规模以上增加值呢"}]
    second = oai.chat.completions.create(model="zhqa-retrieval", messages=messages)
    assert "38.1亿元" in _extra(second, "citations")[0]["text"]
    retrieval = _extra(second, "retrieval")
    assert retrieval["followup"] is True and "规模以上增加值" in retrieval["query"]
    third = oai.chat.completions.create(
        model="zhqa-retrieval", stream=True,
        messages=[*messages, {"role": "assistant", "content": second.choices[0].message.content},
                  {"role": "user", "content": "增长了多少"}])
    final = [c for c in third if c.choices][-1]
    assert "增长21.6%" in _extra(final, "citations")[0]["text"]


def test_errors_reach_the_client(oai):
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        oai.chat.completions.create(model="zhqa-retrieval", messages=[{"role": "system", "content": "hi"}])
    assert "user message" in str(caught.value)
    with pytest.raises(openai.UnprocessableEntityError):
        oai.chat.completions.create(model="zhqa-retrieval", stream=True,
                                    messages=[{"role": "user", "content": "古" * 5000}])
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="zhqa-retrieval", messages=[{"role": "user", "content": QUESTION}],
                                    extra_body={"doc_ids": ["nope"]})


def test_api_key_with_the_client(settings, service, serve_app):
    keyed = settings.model_copy(update={"api_key": "k-123"})
    with serve_app(create_app(keyed, service=service)) as url:
        good = openai.OpenAI(base_url=f"{url}/v1", api_key="k-123", max_retries=0)
        assert good.models.list().data[0].id == "zhqa-retrieval"
        bad = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="zhqa-retrieval", messages=[{"role": "user", "content": QUESTION}])
        assert httpx.get(f"{url}/health").status_code == 200


def test_body_limit_on_a_real_server(settings, service, serve_app):
    small = settings.model_copy(update={"max_body_bytes": 5_000})

    def chunks():
        for _ in range(1_000):  # 1 MB if it were all read
            yield b" " * 1_000

    with serve_app(create_app(small, service=service)) as url:
        declared = httpx.post(f"{url}/v1/search", content=b"x" * 6_000, headers={"content-type": "application/json"})
        assert declared.status_code == 413
        streamed = httpx.post(f"{url}/v1/search", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert httpx.post(f"{url}/v1/search", json={"query": QUESTION}).status_code == 200
