"""Who chaired / who spoke / when held: the body sentence that states it over the title block."""

from __future__ import annotations

import pytest

from embeddings import HashingEmbedder
from qa.index.build import build_index
from qa.index.segments import is_title_block
from qa.ingest.document import document_from_text
from qa.search.answer import Evidence, TermWeights, build_answer
from qa.search.retriever import HybridRetriever
from qa.search.roles import (
    AskedRole,
    asked_metadata,
    asked_role,
    asks_publication,
    header_answers,
    header_holds,
    states_role,
)
from qa.types import DocumentMeta
from tests.qa.search.documents import NEWS, SPEECH


@pytest.mark.parametrize(("question", "expected"), [
    ("会议由谁主持", AskedRole("who", "主持")),
    ("谁主持了会议？", AskedRole("who", "主持")),
    ("哪位领导通报了检查情况", AskedRole("who", "通报")),
    ("会上谁讲了话", AskedRole("who", "讲话")),
    ("会议是哪天召开的", AskedRole("when")),
    ("会议什么时候举行", AskedRole("when")),
    ("那次全区领导干部会议是几号开的", AskedRole("when")),  # the meeting `开`, no 召开/举行 said
    ("这条新闻是什么时候发布的", None),  # publication, not an event
    ("谁负责商业门店复业", None),
    ("要落实哪两位领导的讲话精神", None),
    ("主持会议的是谁", AskedRole("who", "主持")),
    ("在会上讲话的领导是哪位", AskedRole("who", "讲话")),
    # A role word that names the document is not the role asked: who is to take charge, not who spoke.
    ("县委讲话要求安全隐患由谁来抓", None),
    ("会议通报的问题，由谁负责整改", None),
])
def test_asked_role(question, expected):
    assert asked_role(question) == expected


def test_states_role():
    assert states_role("县委副书记孙伟主持会议。", AskedRole("who", "主持"))
    assert states_role("县委书记李明、县长赵刚分别讲话。", AskedRole("who", "讲话"))
    assert not states_role("会议学习贯彻了总书记重要讲话精神。", AskedRole("who", "讲话"))
    when = AskedRole("when")
    assert states_role("5月11日,全县安全生产工作会议召开,会议传达了…", when)
    assert states_role("会议于2021年5月11日在县政府召开。", when)
    # The date of another meeting further on in the sentence is not the date this one was held.
    assert not states_role("今天我们召开这次调度会，主要任务是落实7月20日市委调度会精神。", when)


def test_header_holds_only_what_it_prints():
    meta = DocumentMeta(speaker="王建国", date="2021年3月2日")
    assert header_holds(AskedRole("who", "讲话"), meta)
    assert not header_holds(AskedRole("who", "主持"), meta)
    assert header_holds(AskedRole("when"), meta)
    assert not header_holds(AskedRole("when"), DocumentMeta())


@pytest.mark.parametrize(("question", "expected"), [
    ("这篇讲话的作者是谁", {"speaker"}),
    ("这篇讲话是谁讲的", {"speaker"}),
    ("这条新闻是什么时候发布的", {"date"}),
    ("会议地点在哪", {"place"}),
    ("这篇文章的标题是什么", {"document"}),
    ("黑石岭之战发生于什么时候", {"date"}),
    ("教堂是由谁设计的", set()),  # a title block names a speaker or author, not a designer
    ("商业门店复业由谁负责", set()),
])
def test_asked_metadata(question, expected):
    assert asked_metadata(question) == expected


def test_header_answers_only_what_it_holds():
    meta = DocumentMeta(speaker="王建国", date="2021年3月2日")
    assert header_answers(frozenset({"speaker"}), meta)
    assert header_answers(frozenset({"date"}), meta)
    assert not header_answers(frozenset({"place"}), meta)
    assert not header_answers(frozenset(), meta)
    assert not header_answers(frozenset({"date"}), DocumentMeta())  # a bare title
    assert header_answers(frozenset({"document"}), DocumentMeta())


# An encyclopedia article: its title block is the bare title, which holds no date, place or author.
BATTLE = """黑石岭之战

黑石岭之战，又名青河之战，发生于天正5年（1577年），是山田家统一北郡的关键战役。山田义和带领2000人攻打河谷，原本预期秋收期间对方无力应战，结果遭到伏击。

战后，山田家控制了整个北郡，并在黑石岭修筑城砦。此战被后世视为北郡格局转变的开端，由大将森川忠次指挥的伏兵起了决定作用。
"""


@pytest.fixture(scope="module")
def ask():
    index = build_index([document_from_text(SPEECH, "speech.md"), document_from_text(NEWS, "news.txt"),
                         document_from_text(BATTLE, "battle.txt")], HashingEmbedder())
    retriever = HybridRetriever(index, HashingEmbedder())
    weights = TermWeights(p.text for p in index.passages)

    def title_block(passage):
        doc = index.documents[passage.doc_id]
        return doc.meta if is_title_block(passage, doc) else None

    def run(question: str):
        hits = retriever.search(question, top_k=5)
        return build_answer(question, hits, Evidence(weights, lambda p: p.text, title_block=title_block)), title_block

    return run


@pytest.mark.parametrize(("question", "expected"), [
    ("全县安全生产工作会议由谁主持", "县委副书记孙伟主持会议"),
    ("全县安全生产工作会议上谁讲了话", "县委书记李明、县长赵刚分别讲话"),
    ("谁通报了安全生产检查情况", "副县长周涛通报了一季度全县安全生产检查情况"),
    # The title block's time is the publication time; the body gives the day the meeting was held.
    ("全县安全生产工作会议是哪天召开的", "5月11日,全县安全生产工作会议召开"),
])
def test_body_sentence_answers_and_ranks_first(ask, question, expected):
    answer, title_block = ask(question)
    assert answer.answerable and expected in answer.text
    assert title_block(answer.hits[0].passage) is None and expected in answer.hits[0].passage.text


def test_title_block_answers_what_it_holds(ask):
    answer, title_block = ask("农业农村工作会议上谁讲话")
    assert title_block(answer.hits[answer.source].passage) is not None
    assert "王 建 国" in answer.hits[answer.source].answer.text


def test_a_role_the_document_never_names_is_unanswerable(ask):
    # The speech says nothing of who chaired its meeting; the news item's chair must not answer for it.
    answer, _ = ask("农业农村工作会议由谁主持")
    assert answer.hits[0].passage.doc_title == "在全县农业农村工作会议上的讲话"
    assert not answer.answerable and answer.text == "不知道：文档中没有说明由谁主持。"
    assert answer.hits  # the closest passages are still returned


@pytest.mark.parametrize(("question", "expected"), [
    ("黑石岭之战发生于什么时候", "发生于天正5年"),
    ("黑石岭之战的伏兵由谁指挥", "由大将森川忠次指挥的伏兵"),
])
def test_a_bare_title_does_not_answer_when_or_who(ask, question, expected):
    answer, title_block = ask(question)
    assert title_block(answer.hits[0].passage) is None
    assert expected in answer.hits[0].passage.text


def test_asks_publication():
    assert asks_publication("这条魏都要闻是什么时候发布的") and asks_publication("这篇报道是哪天刊发的")
    assert not asks_publication("全县安全生产工作会议是哪天召开的") and not asks_publication("会议由谁主持")
    assert not asks_publication("这个名字的来源是什么") and not asks_publication("这本书是哪一年出版的")


def test_a_title_block_still_answers_what_it_holds(ask):
    # Its date is the publication time, which no body sentence gives: it goes first even when a body passage with
    # the meeting's date scores as high.
    answer, title_block = ask("安全生产工作会议这条新闻是什么时候发布的")
    assert title_block(answer.hits[0].passage) is not None


def test_a_speech_named_in_a_who_question_is_not_its_speaker_answer(ask):
    # `讲话` names the document here; the question asks who is to carry out a task, which the body says.
    answer, title_block = ask("农业农村工作会议讲话要求主体责任由谁来落实")
    assert title_block(answer.hits[answer.source].passage) is None
    assert "各乡镇要落实主体责任" in answer.text
