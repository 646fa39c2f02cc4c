"""Who chaired / who spoke / when held: the body sentence that states it over the title block."""

from __future__ import annotations

import pytest

from embeddings import HashingEmbedder
from qa.index.build import build_index
from qa.index.segments import is_title_block
from qa.ingest.document import document_from_text
from qa.search.answer import Evidence, TermWeights, build_answer
from qa.search.retriever import HybridRetriever
from qa.search.roles import AskedRole, asked_role, header_holds, states_role
from qa.types import DocumentMeta
from tests.qa.search.documents import NEWS, SPEECH


@pytest.mark.parametrize(("question", "expected"), [
    ("会议由谁主持", AskedRole("who", "主持")),
    ("谁主持了会议？", AskedRole("who", "主持")),
    ("哪位领导通报了检查情况", AskedRole("who", "通报")),
    ("会上谁讲了话", AskedRole("who", "讲话")),
    ("会议是哪天召开的", AskedRole("when")),
    ("会议什么时候举行", AskedRole("when")),
    ("这条新闻是什么时候发布的", None),  # publication, not an event
    ("谁负责商业门店复业", None),
    ("要落实哪两位领导的讲话精神", None),
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


@pytest.fixture(scope="module")
def ask():
    index = build_index([document_from_text(SPEECH, "speech.md"), document_from_text(NEWS, "news.txt")],
                        HashingEmbedder())
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
