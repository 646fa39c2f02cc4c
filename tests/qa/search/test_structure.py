"""Structure questions answered from the outline: detection, which document and section, headings with offsets."""

from __future__ import annotations

import pytest

from embeddings import HashingEmbedder
from qa.index.build import build_index
from qa.ingest.document import document_from_text
from qa.search.retriever import HybridRetriever
from qa.search.structure import (
    is_structure_question,
    names_part,
    outline_answer,
    question_terms,
    structure_phrase,
)
from tests.qa.search.documents import NEWS, SPEECH


@pytest.fixture(scope="module")
def index():
    docs = [document_from_text(SPEECH, "speech.md"), document_from_text(NEWS, "news.txt")]
    return build_index(docs, HashingEmbedder())


@pytest.fixture(scope="module")
def ask(index):
    retriever = HybridRetriever(index, HashingEmbedder())

    def run(question: str, top_k: int = 5):
        return outline_answer(question, retriever.search(question, top_k=top_k), index)

    return run


@pytest.mark.parametrize("question", [
    "这篇讲话讲了哪几点", "讲话分几个部分", "主要讲了哪些方面", "分为哪几个板块", "第二部分讲了哪几点",
    "讲话的结构是怎样的", "提出了哪三项措施", "第四部分包括哪些要求",
])
def test_structure_questions_are_detected(question):
    assert is_structure_question(question)


@pytest.mark.parametrize("question", [
    "会议几点开始", "今年有哪些项目开工", "粮食总产量达到多少", "城乡融合要推动哪几个一体化", "谁主持了会议",
    "要满足哪些条件",
])
def test_other_questions_are_not(question):
    assert not is_structure_question(question)


def test_structure_phrase_and_part_by_position():
    assert structure_phrase("宋晓东的讲话分为几个部分") == "几个部分"
    assert structure_phrase("粮食总产量达到多少") == ""
    assert names_part("第二部分呢？") and names_part("第3点讲了什么") and not names_part("第二季度工作")
    assert names_part("最后一部分呢") and names_part("最后党建那部分提了哪几条要求") and not names_part("最后一次会议")


def test_kind_vocabulary_is_not_matched_to_titles():
    assert question_terms("王建国的讲话分为几个部分") == {"王建", "建国"}
    assert question_terms("这篇讲话一共讲了哪几点") == set()


def _headings(answer):
    return [item.title for item in answer.outline]


def test_document_named_by_speaker_is_answered_with_its_top_level_headings(ask, index):
    answer = ask("王建国的讲话分为几个部分")
    assert answer is not None and answer.answerable
    assert _headings(answer) == ["一、提高认识，增强做好农业农村工作的责任感", "二、突出重点，全力抓好今年各项任务",
                                 "三、强化保障，确保各项任务落到实处"]
    assert answer.text.startswith("《在全县农业农村工作会议上的讲话》分为3个部分")
    assert all(title in answer.text for title in _headings(answer))
    doc = index.documents[answer.hits[0].passage.doc_id]
    for rank, item in enumerate(answer.outline):
        # Cited like a hit: offsets into the document, and the passage that opens the section ranked first.
        assert item.title in doc.text[item.heading_start:item.heading_end]
        assert item.hit == rank
        hit = answer.hits[item.hit]
        assert hit.passage.char_start <= item.heading_start < hit.passage.char_end
        assert item.title in hit.answer.text
    scores = [h.score for h in answer.hits]
    assert scores == sorted(scores, reverse=True)


def test_document_named_by_title_words(ask):
    answer = ask("农业农村工作会议上的讲话讲了哪几点")
    assert answer is not None and len(answer.outline) == 3


def test_section_named_by_its_heading_is_answered_with_its_children(ask):
    answer = ask("“突出重点”部分提出了哪几项任务")
    assert answer is not None
    assert _headings(answer) == ["（一）稳定粮食生产", "（二）发展特色产业", "（三）改善人居环境"]
    assert answer.text.startswith("“二、突出重点，全力抓好今年各项任务”分为3个部分")


def test_section_named_by_its_position(ask):
    answer = ask("王建国讲话的第二部分讲了哪几点")
    assert answer is not None and [i.level for i in answer.outline] == [2, 2, 2]
    assert answer.outline[0].section_path[0] == "二、突出重点，全力抓好今年各项任务"
    assert ask("王建国讲话的第五部分讲了哪几点") is None  # there is no fifth part
    assert _headings(ask("王建国讲话的第二部分包括哪些任务")) == _headings(answer)


def test_the_last_part_named_as_such(index):
    from qa.search.structure import choose_scope

    for question in ("王建国讲话的最后一部分讲了哪几点", "王建国讲话最后保障那部分提了哪几条要求"):
        scope = choose_scope(question, [], index.documents)
        assert scope is not None and scope.section is not None, question
        assert scope.section.title.startswith("三、强化保障"), question  # the third and last part


def test_documents_outside_the_search_filter_are_not_answered(index):
    retriever = HybridRetriever(index, HashingEmbedder())
    news = next(doc_id for doc_id, doc in index.documents.items() if not doc.sections)
    question = "王建国的讲话分为几个部分"
    hits = retriever.search(question, top_k=5, doc_ids=[news])
    assert outline_answer(question, hits, index, doc_ids=[news]) is None
    assert outline_answer(question, hits, index) is not None  # unrestricted, the speech named by its speaker


def test_hits_keep_their_number(ask):
    answer = ask("王建国的讲话分为几个部分", top_k=2)
    assert len(answer.hits) == 2
    assert [item.hit for item in answer.outline] == [0, 1, None]


def test_questions_the_outline_does_not_answer(ask):
    assert ask("粮食总产量达到多少") is None  # not a structure question
    assert ask("全县安全生产工作会议讲了哪几点") is None  # that document has no outline
    assert ask("招商引资有哪几个方面") is None  # names nothing an outline or title holds
    # No document named: the one retrieval ranks first (the speech, by its title's 讲话).
    assert len(ask("这篇讲话讲了哪几点").outline) == 3


THEMED = """# 在全县经济工作会议上的讲话

李 明

(2022年1月5日)

## 一、抓好经济工作

一要扩大有效投资，夯实乡村振兴的产业基础。今年安排项目120个。

二要改善农村基础设施，补齐乡村振兴的短板。新建农村公路80公里。

三要加强人才培养，增强乡村振兴的内生动力。培训高素质农民3000人。

四要做好安全生产工作。开展隐患排查整治。

## 二、加强作风建设

各级干部要转变作风，狠抓落实。
"""


@pytest.fixture(scope="module")
def ask_themed():
    index = build_index([document_from_text(THEMED, "themed.md"), document_from_text(NEWS, "news.txt")],
                        HashingEmbedder())
    retriever = HybridRetriever(index, HashingEmbedder())
    return lambda question: outline_answer(question, retriever.search(question, top_k=5), index)


def test_points_sharing_the_asked_theme_are_listed(ask_themed):
    """Matched to one of several points that all name 乡村振兴: the answer is those points, not one or all four."""
    answer = ask_themed("乡村振兴讲了哪几个方面")
    assert answer is not None
    assert [item.title for item in answer.outline] == [
        "一要扩大有效投资，夯实乡村振兴的产业基础", "二要改善农村基础设施，补齐乡村振兴的短板",
        "三要加强人才培养，增强乡村振兴的内生动力"]
    assert answer.text.startswith("“一、抓好经济工作”中讲到这方面的有3点")
    for item in answer.outline:
        hit = answer.hits[item.hit]
        assert hit.passage.text[hit.answer.start:hit.answer.end].startswith(item.title)


def test_a_point_of_its_own_is_not_a_theme(ask_themed):
    """One point names 安全生产, no other: nothing to list."""
    assert ask_themed("安全生产讲了哪几个方面") is None
