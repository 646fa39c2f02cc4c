"""Outline answers and who/when answers through the API: /v1/search and the chat reply."""

from __future__ import annotations

import re

import pytest

STRUCTURE_QUESTION = "宋晓东的讲话分为几个部分"
HEADINGS = ["一、提高政治站位，强化责任担当，切实增强抓好全年目标任务的紧迫感和责任感",
            "二、在常态化疫情防控的前提下积极加强经济运行调度，主动精准服务企业，全力推动企业和项目达产达效",
            "三、坚决贯彻落实上级重大决策部署，切实守土尽责，扎实推进各项重点工作",
            "四、驰而不息加强党的建设，转变工作作风，推进从严治党向纵深发展"]


@pytest.mark.parametrize("mode", ["hybrid", "bm25"])
def test_search_answers_a_structure_question_with_cited_headings(client, service, mode):
    body = client.post("/v1/search", json={"query": STRUCTURE_QUESTION, "mode": mode, "top_k": 5}).json()
    answer = body["answer"]
    assert answer["answerable"] is True
    assert [item["title"] for item in answer["outline"]] == HEADINGS
    assert all(title in answer["text"] for title in HEADINGS)
    for item in answer["outline"]:
        hit = body["hits"][item["rank"] - 1]
        document = service.document(hit["doc_id"])
        # The heading's offsets point into the document, inside the cited passage that opens its section.
        assert document.text[item["char_start"]:item["char_end"]].replace("*", "").strip("# ") == item["title"]
        assert hit["char_start"] <= item["char_start"] < hit["char_end"]
        assert hit["section_path"][0] == item["title"]
    assert [item["rank"] for item in answer["outline"]] == [1, 2, 3, 4]


def test_other_answers_have_no_outline(client):
    assert client.post("/v1/search", json={"query": "古塔区固定资产投资完成多少"}).json()["answer"]["outline"] == []


def test_chat_lists_the_headings_with_their_citations(client):
    body = client.post("/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": STRUCTURE_QUESTION}]}).json()
    content = body["choices"][0]["message"]["content"]
    for number, title in enumerate(HEADINGS, start=1):
        assert re.search(rf"^{re.escape(title)} \[{number}\]$", content, re.MULTILINE), content
    assert body["citations"][0]["section_path"][0] == HEADINGS[0]


@pytest.mark.parametrize(("question", "evidence"), [
    ("魏都区全区领导干部会议由谁主持", "区委副书记魏少峰主持会议"),
    ("魏都区全区领导干部会议是哪天召开的", "4月29日,全区领导干部会议召开"),
])
def test_who_and_when_cite_the_body_sentence_first(client, question, evidence):
    body = client.post("/v1/search", json={"query": question, "mode": "hybrid"}).json()
    assert evidence in body["answer"]["text"]
    assert evidence in body["hits"][0]["text"]
