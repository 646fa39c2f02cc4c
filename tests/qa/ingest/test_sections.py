"""Outline detection: the five sample documents' outlines, and heading forms users bring."""

from pathlib import Path

import pytest

from qa.config import SAMPLE_CORPUS
from qa.ingest.document import document_from_text
from qa.ingest.reader import load_documents
from qa.ingest.sections import format_outline, match_heading


@pytest.fixture(scope="module")
def corpus():
    return {Path(d.source).name[:3]: d for d in load_documents([SAMPLE_CORPUS]).documents}


def titles(doc, level):
    return [s.title for s in doc.sections if s.level == level]


def children(doc, parent_prefix):
    parent = next(s for s in doc.sections if s.title.startswith(parent_prefix))
    return [s.title for s in doc.sections if s.level == parent.level + 1 and s.path[: parent.level] == parent.path]


def test_000_levels_come_from_numbering_not_hash_count(corpus):
    doc = corpus["000"]  # the same level is written ##, ### and ####
    assert [t[:2] for t in titles(doc, 1)] == ["一、", "二、", "三、", "四、"]
    assert titles(doc, 1)[1] == "二、在常态化疫情防控的前提下积极加强经济运行调度，主动精准服务企业，全力推动企业和项目达产达效"
    assert [t[:2] for t in children(doc, "二、")] == ["一是", "二是", "三是", "四是"]
    assert children(doc, "二、")[0] == "一是狠抓常态化疫情防控工作不放松"
    assert [t[:2] for t in children(doc, "三、")] == ["一是", "二是", "三是", "四是"]
    assert [t[:2] for t in children(doc, "四、")] == ["一是", "二是", "三是"]
    assert not titles(doc, 3)  # the inline 第一/第二 inside 一是 paragraphs are not sections


def test_001_three_levels(corpus):
    doc = corpus["001"]
    assert [t[:2] for t in titles(doc, 1)] == ["一、", "二、", "三、"]
    assert [t[:3] for t in children(doc, "一、")] == ["（一）", "（二）", "（三）"]
    assert [t[:3] for t in children(doc, "二、")] == ["（一）", "（二）", "（三）", "（四）"]
    assert children(doc, "（一）要简化程序")[0] == "一是深入推进“放管服”改革"
    assert children(doc, "（二）要抓住重点") == ["一是加快处理秸秆离田", "二是加强农业生产指导", "三是强化农资监管"]
    assert [t[:2] for t in children(doc, "（三）要巩固成果")] == ["一要", "二要", "三要"]


def test_002_outline(corpus):
    doc = corpus["002"]
    assert [t[:2] for t in titles(doc, 1)] == ["一、", "二、", "三、", "四、"]
    assert [t[:2] for t in children(doc, "一、")] == ["一是", "二是", "三是", "四是"]
    assert [t[:2] for t in children(doc, "三、")] == ["一要", "二要", "三要", "四要", "五要", "六要", "七要"]


def test_003_news_article_has_no_outline(corpus):
    doc = corpus["003"]
    assert doc.sections == ()
    assert format_outline(doc.sections) == ["(no outline: the whole body is one section)"]


def test_004_outline(corpus):
    doc = corpus["004"]
    assert titles(doc, 1) == ["一、总结,我们要客观", "二、目标,我们要完成", "三、作风,我们要过硬"]
    assert children(doc, "一、") == ["(一)经济发展险中有进", "(二)重点工作攻坚有力", "(三)社会事业推进有序"]
    assert [t[:3] for t in children(doc, "二、")] == ["(一)", "(二)", "(三)"]
    assert children(doc, "三、") == ["第一,全", "第二,精", "第三,实"]


def test_section_spans_nest_and_start_at_their_heading(corpus):
    for doc in corpus.values():
        for s in doc.sections:
            assert s.start <= s.heading_start < s.heading_end <= s.end
            assert s.path[-1] == s.title and len(s.path) == s.level
            heading = doc.text[s.heading_start:s.heading_end].replace("**", "")
            assert s.title[:4] in heading


@pytest.mark.parametrize(
    ("line", "rank_order"),
    [("第一章 总则", 0), ("第二节 范围", 1), ("一、总体要求", 2), ("（一）主要目标", 3), ("(二)工作任务", 3),
     ("1. 加强领导", 4), ("2、明确责任", 4), ("（1）细化分工", 5)],
)
def test_heading_kinds_rank_coarse_to_fine(line, rank_order):
    ranks = [match_heading(x).rank for x in ["第一章 总则", "第二节 范围", "一、总体要求", "（一）主要目标",
                                              "1. 加强领导", "（1）细化分工"]]
    assert match_heading(line).rank == ranks[rank_order]


@pytest.mark.parametrize("line", ["1.5亿元资金已经到位。", "2020年全区经济平稳。", "一是", "统一是基础。"])
def test_body_text_is_not_a_heading(line):
    assert match_heading(line) is None


def test_markdown_and_numbered_outline_in_a_user_document():
    text = ("# 年度工作报告\n\n## 第一章 总体情况\n\n一、经济运行\n\n全年经济平稳。\n\n（一）工业\n\n工业增长5%。\n\n"
            "（二）农业\n\n粮食丰收。\n\n二、社会事业\n\n民生改善。\n\n## 第二章 下一步打算\n\n1. 稳增长\n\n继续努力。\n")
    doc = document_from_text(text, "report.md")
    assert doc.title == "年度工作报告"
    assert [(s.level, s.title) for s in doc.sections] == [
        (1, "第一章 总体情况"), (2, "一、经济运行"), (3, "（一）工业"), (3, "（二）农业"), (2, "二、社会事业"),
        (1, "第二章 下一步打算"), (2, "1. 稳增长")]
