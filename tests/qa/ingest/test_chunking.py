"""Passages: exact offsets for every passage of the sample corpus, sizes, section boundaries, page-break joins."""

from pathlib import Path

import pytest

from qa.config import SAMPLE_CORPUS
from qa.ingest.chunking import ChunkingConfig, cut_passages, paragraphs
from qa.ingest.document import document_from_text
from qa.ingest.reader import load_documents
from qa.types import Passage


@pytest.fixture(scope="module")
def corpus():
    return {Path(d.source).name[:3]: d for d in load_documents([SAMPLE_CORPUS]).documents}


@pytest.fixture(scope="module")
def passages(corpus):
    return {key: cut_passages(doc) for key, doc in corpus.items()}


def test_offsets_are_exact_for_every_passage(corpus, passages):
    for key, doc in corpus.items():
        for p in passages[key]:
            assert doc.text[p.char_start:p.char_end] == p.text
            assert p.doc_id == doc.doc_id and p.doc_title == doc.title
            assert p.passage_id == f"{doc.doc_id}:{p.char_start}-{p.char_end}"


def test_offsets_survive_a_bom_crlf_file(tmp_path):
    from qa.ingest.reader import load_document

    path = tmp_path / "crlf.txt"
    path.write_bytes("\ufeff标题\r\n\r\n一、总结\r\n今年经济平稳。投资增长。\r\n二、目标\r\n明年更好。\r\n".encode("utf-8"))
    doc = load_document(path)
    for p in cut_passages(doc):
        assert doc.text[p.char_start:p.char_end] == p.text
        assert "\r" not in p.text[-1:]


def test_passages_are_sized_and_never_cross_sections(corpus, passages):
    config = ChunkingConfig()
    for key, doc in corpus.items():
        for p in passages[key]:
            assert len(p.text) <= config.max_chars * 1.5
            inside = [s for s in doc.sections if s.start <= p.char_start < s.end]
            deepest = max(inside, key=lambda s: s.level, default=None)
            if deepest is not None:
                assert p.char_end <= deepest.end, (key, p.text[:30])
    sizes = sorted(len(p.text) for ps in passages.values() for p in ps)
    assert 120 <= sizes[len(sizes) // 2] <= 300


def test_each_heading_opens_a_passage(corpus, passages):
    for key, doc in corpus.items():
        section_starts = {s.start for s in doc.sections}
        for s in doc.sections:
            holder = next(p for p in passages[key] if p.char_start <= s.heading_start < p.char_end)
            assert s.heading_end <= holder.char_end, (key, s.title)
            # it opens the passage, or follows a parent heading that has no text of its own
            assert holder.char_start == s.start or holder.char_start in section_starts, (key, s.title)


def test_section_paths_and_header_passage(corpus, passages):
    first = passages["000"][0]
    assert first.section_path == () and "宋 晓 东" in first.text and "2020年7月25日" in first.text
    hit = next(p for p in passages["000"] if "10.4亿元" in p.text)
    assert hit.section_path == ("一、提高政治站位，强化责任担当，切实增强抓好全年目标任务的紧迫感和责任感",)
    lead = next(p for p in passages["004"] if p.text.startswith("第一,全"))
    assert lead.section_path == ("三、作风,我们要过硬", "第一,全")


def test_page_break_inside_a_sentence_is_joined(corpus, passages):
    doc = corpus["000"]
    paras = [doc.text[s:e] for s, e in paragraphs(doc)]
    joined = next(p for p in paras if "严峻形势和风险" in p)
    assert "挑战显著增多的复杂局面" in joined
    passage = next(p for p in passages["000"] if "严峻形势和风险" in p.text)
    assert "挑战显著增多的复杂局面" in passage.text


def test_passages_round_trip_through_json(passages):
    import json

    p = passages["001"][5]
    data = json.loads(json.dumps(p.to_dict(), ensure_ascii=False))
    assert Passage.from_dict(data) == p
    assert "\\u" not in json.dumps(p.to_dict(), ensure_ascii=False)


def test_a_long_sentence_is_cut_at_clause_breaks():
    sentence = "，".join(f"第{i}项工作要抓紧落实到位" for i in range(60)) + "。"
    doc = document_from_text("一、要求\n" + sentence + "\n二、其他\n结束。\n", "long.txt")
    pieces = cut_passages(doc, ChunkingConfig(max_chars=120, min_chars=60))
    assert all(len(p.text) <= 120 for p in pieces)
    assert all(doc.text[p.char_start:p.char_end] == p.text for p in pieces)


@pytest.mark.parametrize(("max_chars", "min_chars"), [(10, 5), (300, 400), (6000, 100)])
def test_bad_sizes_name_the_allowed_range(max_chars, min_chars):
    with pytest.raises(ValueError, match=r"must be in \["):
        ChunkingConfig(max_chars=max_chars, min_chars=min_chars)
