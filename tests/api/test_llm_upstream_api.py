"""The optional upstream LLM: used when QA_LLM_BASE_URL is set, with a fallback to the extractive reply.

The upstream is a fake OpenAI-compatible FastAPI app served by uvicorn on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from api.main import create_app

QUESTION = "古塔区固定资产投资完成多少"
LLM_TEXT = "古塔区固定资产投资完成10.4亿元，增速居全市第2位 [1]。"


def fake_upstream(calls: list[dict]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        body = await request.json()
        calls.append({"body": body, "auth": request.headers.get("authorization")})
        question = body["messages"][-1]["content"]
        if "慢一点" in question:
            await asyncio.sleep(2)
        if "出错" in question:
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if "怪" in question:
            return {"choices": []}
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": LLM_TEXT},
                             "finish_reason": "stop"}]}

    return app


@pytest.fixture(scope="module")
def upstream(serve_app):
    calls: list[dict] = []
    with serve_app(fake_upstream(calls)) as url:
        yield url, calls


def _chat(client, question: str, **extra) -> dict:
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": question}], **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_llm_words_the_reply_and_citations_stay(settings, service, upstream):
    url, calls = upstream
    configured = settings.model_copy(update={"llm_base_url": f"{url}/v1", "llm_model": "fake-llm",
                                             "llm_api_key": "up-key", "llm_timeout_s": 5.0})
    with TestClient(create_app(configured, service=service)) as client:
        body = _chat(client, QUESTION)
        content = body["choices"][0]["message"]["content"]
        assert content.startswith(LLM_TEXT) and "\n\n[1] 《" in content
        assert body["retrieval"]["answer_source"] == "llm"
        assert "10.4亿元" in body["citations"][0]["text"]
        sent = calls[-1]
        assert sent["auth"] == "Bearer up-key" and sent["body"]["model"] == "fake-llm"
        prompt = sent["body"]["messages"][-1]["content"]
        assert QUESTION in prompt and "[1] 《" in prompt and "10.4亿元" in prompt

        streamed = client.post("/v1/chat/completions", json={
            "stream": True, "messages": [{"role": "user", "content": QUESTION}]}).text
        events = [json.loads(line[6:]) for line in streamed.splitlines()
                  if line.startswith("data: {")]
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
        assert text.startswith(LLM_TEXT)
        assert events[-1]["retrieval"]["answer_source"] == "llm" and events[-1]["citations"]


@pytest.mark.parametrize("question", [QUESTION + "（出错）", QUESTION + "（怪）", QUESTION + "（慢一点）"])
def test_upstream_failure_falls_back_to_the_extractive_reply(settings, service, upstream, question):
    url, _calls = upstream
    configured = settings.model_copy(update={"llm_base_url": f"{url}/v1", "llm_timeout_s": 0.5})
    with TestClient(create_app(configured, service=service)) as client:
        body = _chat(client, question)
        assert body["retrieval"]["answer_source"] == "extractive"
        assert "10.4亿元" in body["choices"][0]["message"]["content"]


def test_unreachable_upstream_falls_back(settings, service):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configured = settings.model_copy(update={"llm_base_url": f"http://127.0.0.1:{port}/v1", "llm_timeout_s": 2.0})
    with TestClient(create_app(configured, service=service)) as client:
        body = _chat(client, QUESTION)
        assert body["retrieval"]["answer_source"] == "extractive"
        assert body["choices"][0]["message"]["content"].split("\n\n")[0].endswith(" [1]")


def test_llm_is_off_by_default(client):
    assert _chat(client, QUESTION)["retrieval"]["answer_source"] == "extractive"
