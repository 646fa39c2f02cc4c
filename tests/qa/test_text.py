"""Tests for qa.text: normalisation, the evaluation's evidence normalisation, sentence spans."""

from __future__ import annotations

import pytest

from qa.text import SENTENCE_END, evidence_norm, is_cjk, normalize, split_sentences


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＧＤＰ增长１０．４％", "gdp增长10.4%"),  # full-width -> half-width, ASCII lower-cased
        ("宋 晓 东", "宋晓东"),  # spaces between CJK chars are extraction artefacts
        ("**一是狠抓**常态化", "一是狠抓常态化"),  # markdown emphasis removed
        ("GDP  growth\n\t10.4", "gdp growth 10.4"),  # other whitespace runs collapse to one space
        ("增长 10.4 亿元", "增长 10.4 亿元"),  # CJK next to a number keeps one space
        ("  前后空白  ", "前后空白"),
        ("零\u200b宽", "零宽"),
        ("", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_is_idempotent() -> None:
    text = "  **一、提高政治站位** ，Ｘ区 “六稳”\n\n“六保”  GDP 10.4%  "
    assert normalize(normalize(text)) == normalize(text)


def test_normalize_keeps_non_ascii_case() -> None:
    assert normalize("ΣGDP") == "Σgdp"


def test_evidence_norm_matches_eval_rule() -> None:
    assert evidence_norm("巡视反馈的 22 个\n问题") == "巡视反馈的22个问题"
    assert evidence_norm("落实＂两个责任＂，") == '落实"两个责任",'


def test_is_cjk() -> None:
    assert is_cjk("中") and is_cjk("。") and is_cjk("“")
    assert not is_cjk("a") and not is_cjk("1") and not is_cjk(",")


def test_sentence_end_constant() -> None:
    assert SENTENCE_END == "。！？；!?;"


def test_split_sentences_spans_are_in_original_text() -> None:
    text = "同志们：\n今天开会。下面讲三点！  第一，全。\n\n第二，精"
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == ["同志们：", "今天开会。", "下面讲三点！", "第一，全。", "第二，精"]


def test_split_sentences_keeps_closing_quotes_and_brackets() -> None:
    text = "他说：“好。”然后（走了。）再见!?下一句"
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == ["他说：“好。”", "然后（走了。）", "再见!?", "下一句"]


def test_split_sentences_straight_quotes_only_when_closing() -> None:
    text = '他说"好。"下一句。"引号开头"结束。'
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == ['他说"好。"', "下一句。", '"引号开头"结束。']


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "。", " \n 。\n"])
def test_split_sentences_never_returns_empty_or_blank(text: str) -> None:
    for start, end in split_sentences(text):
        assert end > start
        assert text[start:end].strip()


def test_split_sentences_no_end_punctuation() -> None:
    assert split_sentences("没有句号的一段话") == [(0, 8)]


def test_split_sentences_half_width_punctuation() -> None:
    text = "要抓好营商环境;要抓好招商引资?是的"
    assert [text[s:e] for s, e in split_sentences(text)] == ["要抓好营商环境;", "要抓好招商引资?", "是的"]
