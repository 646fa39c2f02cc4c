"""Multi-turn follow-ups without an LLM: `qa.search.conversation` rewriting and the chat endpoint that uses it.

tests/api/multiturn.jsonl holds 18 conversations over qa/resources/corpus, every kind of follow-up over two or more
speeches (a new topic with 那/还有/呢, a bare topic, a who/when question after another, another person, "具体有哪些措施",
"谁负责", a part after a structure question, three turns); `evidence` is copied from the document (`doc`) that answers the last turn and must be in the
first cited passage (its text or its section headings).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.search.conversation import FollowUp, contextualize, is_elliptical, plan_followup, previous_document

CASES = [json.loads(line) for line in (Path(__file__).parent / "multiturn.jsonl").read_text("utf-8").splitlines()
         if line.strip()]


def _messages(turns: list[str]) -> list[dict[str, str]]:
    """The turns as an OpenAI conversation; earlier assistant replies are placeholders (they are not read)."""
    messages = []
    for turn in turns[:-1]:
        messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": "（上一轮的回答）"}]
    return [*messages, {"role": "user", "content": turns[-1]}]


def _cites_evidence(citation: dict, case: dict, service) -> bool:
    source = service.document(citation["doc_id"]).source
    where = [citation["text"], *citation["section_path"]]
    return Path(source).name == case["doc"] and any(case["evidence"] in text for text in where)


# --- the rewriting rules (pure) ----------------------------------------------------------------------------------


def test_contextualize_carries_place_and_question():
    turns = [("user", "古塔区固定资产投资完成多少"), ("assistant", "同时，固定资产投资完成10.4亿元…"),
             ("user", "那社会消费品零售总额呢？")]
    assert contextualize(turns) == "古塔区 社会消费品零售总额 完成多少"


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        (["X区讲话中春耕有哪些要求", "还有脱贫方面呢"], "x区 脱贫方面 有哪些要求"),
        (["古塔区固定资产投资完成多少", "魏都区呢"], "魏都区 固定资产投资 完成多少"),
        (["古塔区固定资产投资完成多少", "那规模以上增加值呢", "增长了多少"], "古塔区 规模以上增加值 增长了多少"),
        (["张书杰同志强调了什么", "李朝锋同志呢？"], "李朝锋同志 强调了什么"),
        (["张书杰同志对项目建设有什么要求", "李朝锋同志呢？"], "李朝锋同志 项目建设 有什么要求"),
        (["宋晓东的讲话分为几个部分", "第二部分呢？"], "宋晓东 第二部分 几个部分"),
    ],
)
def test_contextualize_examples(turns, expected):
    assert contextualize([("user", t) for t in turns]) == expected


@pytest.mark.parametrize(
    "turns",
    [
        ["古塔区固定资产投资完成多少"],
        ["古塔区固定资产投资完成多少", "魏都区全区领导干部会议由谁主持"],
        ["县委扩大会议上的讲话提出了哪些要求", "同心聚力共克时艰的讲话对春耕生产有什么要求"],
    ],
)
def test_standalone_questions_are_left_alone(turns):
    plan = plan_followup([("user", t) for t in turns])
    assert plan.elliptical is False and plan.query == plan.focused == turns[-1]


def test_elliptical_signals():
    assert is_elliptical("那社会消费品零售总额呢？", "古塔区固定资产投资完成多少")
    assert is_elliptical("还有脱贫方面呢", "X区讲话中春耕有哪些要求")
    assert is_elliptical("增长了多少", "古塔区规模以上增加值完成多少")
    assert is_elliptical("疫情防控方面提出了哪些具体措施", "古塔区固定资产投资完成多少")  # drops the place
    assert is_elliptical("第三部分具体讲了什么", "县委扩大会议上的讲话讲了哪几点")  # a part of no document named
    assert not is_elliptical("魏都区全区领导干部会议由谁主持", "古塔区固定资产投资完成多少")
    assert not is_elliptical("那社会消费品零售总额呢？", None)


def test_plan_ignores_assistant_and_system_text_and_needs_a_user_turn():
    plan = plan_followup([("system", "你是助手"), ("user", "古塔区固定资产投资完成多少"),
                          ("assistant", "魏都区 完成10.4亿元"), ("user", "那社会消费品零售总额呢？")])
    assert plan == FollowUp("古塔区 社会消费品零售总额 完成多少", "那社会消费品零售总额呢？", "古塔区固定资产投资完成多少",
                            True, "社会消费品零售总额 完成多少", "古塔区固定资产投资完成多少")
    with pytest.raises(ValueError, match="no user message"):
        plan_followup([("system", "x"), ("user", "  ")])


def test_a_chain_of_followups_keeps_the_question_that_chose_the_document():
    # The second turn's rewrite drops `上半年总结讲话`; the third searches the first turn's question for its document.
    turns = ["X区上半年总结讲话对农业提出了什么要求", "那工业呢", "具体有哪些措施"]
    plan = plan_followup([("user", t) for t in turns])
    assert plan.elliptical and plan.previous != turns[0] and plan.anchor == turns[0]
    searched = []
    previous_document(plan, lambda q: searched.append(q) or [])
    assert searched == [turns[0]]
    # A follow-up that names its own place chooses the document for the turns after it.
    swapped = plan_followup([("user", t) for t in ("古塔区固定资产投资完成多少", "魏都区呢", "增长了多少")])
    assert swapped.anchor is not None and "魏都区" in swapped.anchor


def test_previous_document_only_for_followups_without_their_own_names():
    calls = []

    def search(query):
        calls.append(query)
        return []

    assert previous_document(plan_followup([("user", "古塔区固定资产投资完成多少")]), search) is None
    swap = plan_followup([("user", "古塔区固定资产投资完成多少"), ("user", "魏都区呢")])
    assert previous_document(swap, search) is None
    follow = plan_followup([("user", "古塔区固定资产投资完成多少"), ("user", "那社会消费品零售总额呢")])
    assert previous_document(follow, search) is None and calls == ["古塔区固定资产投资完成多少"]


# --- the multi-turn set through the chat endpoint ------------------------------------------------------------------


def test_multiturn_set_is_well_formed(service):
    assert len(CASES) >= 18
    sources = {Path(d.source).name: d for d in service.documents()}
    for case in CASES:
        assert len(case["turns"]) >= 2
        document = sources[case["doc"]]
        in_text = case["evidence"] in document.text
        in_headings = any(case["evidence"] in s.title for s in document.sections)
        assert in_text or in_headings, case["id"]


@pytest.mark.parametrize("mode", ["hybrid", "bm25"])
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_followup_first_citation_holds_the_evidence(client, service, case, mode):
    response = client.post("/v1/chat/completions", json={"messages": _messages(case["turns"]), "mode": mode})
    assert response.status_code == 200
    body = response.json()
    assert body["retrieval"]["followup"] is True, body["retrieval"]
    first = body["citations"][0]
    assert _cites_evidence(first, case, service), (body["retrieval"], first["doc_title"], first["text"][:80])


@pytest.mark.parametrize("mode", ["hybrid", "bm25"])
def test_contextualization_beats_the_bare_followup(client, service, mode):
    """The bare last question (no context) finds the evidence less often than the contextualized chat."""
    bare = sum(
        _cites_evidence(client.post("/v1/search", json={"query": c["turns"][-1], "mode": mode, "top_k": 1})
                        .json()["hits"][0], c, service)
        for c in CASES)
    chat = sum(
        _cites_evidence(client.post("/v1/chat/completions", json={"messages": _messages(c["turns"]), "mode": mode})
                        .json()["citations"][0], c, service)
        for c in CASES)
    assert chat == len(CASES)
    assert bare < chat
