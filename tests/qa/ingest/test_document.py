"""Ingestion: decoding, boilerplate, metadata and titles on the sample corpus and on bad input."""

from pathlib import Path

import pytest

from qa.config import SAMPLE_CORPUS
from qa.errors import IngestError, NoDocumentsError
from qa.ingest.chunking import cut_passages
from qa.ingest.document import document_from_text, document_id
from qa.ingest.plaintext import decode_bytes
from qa.ingest.reader import load_document, load_documents

TEXT = "一、总结\n今年以来，全区经济平稳增长。固定资产投资完成10.4亿元。\n"


@pytest.fixture(scope="module")
def corpus():
    report = load_documents([SAMPLE_CORPUS])
    return {Path(d.source).name[:3]: d for d in report.documents}


def test_all_five_sample_documents_are_read(corpus):
    assert sorted(corpus) == ["000", "001", "002", "003", "004"]


def test_metadata_of_the_speech_with_a_title_block(corpus):
    doc = corpus["000"]
    assert doc.title == "在全区统筹推进疫情防控和经济社会发展暨 “重强抓”专项行动调度会议上的讲话"
    assert doc.meta.speaker == "宋晓东"  # written spaced out as 宋 晓 东
    assert doc.meta.date == "2020年7月25日"
    assert doc.meta.place == "古塔区"


def test_metadata_of_the_news_page(corpus):
    doc = corpus["003"]
    assert doc.title == "我区召开全区领导干部会议"
    assert doc.meta.date == "2020-04-30 08:40"
    assert doc.meta.place == "魏都区"


def test_titles_of_documents_with_odd_headers(corpus):
    assert corpus["001"].title == "同心聚力 共克时艰 奋力夺取疫情防控和经济发展双胜利"
    assert corpus["002"].title == "县委扩大会议上的讲话"  # the scraped "5600字" word count is not part of it
    derived = corpus["004"].title  # starts with 同志们: and has no title line
    assert derived and "总结" in derived and "作风" in derived


@pytest.mark.parametrize("marker", ["当前位置", "我要打印", "字号", "阅读次数", "下一篇", "免责声明", "来源:网络整理"])
def test_boilerplate_never_reaches_a_passage(corpus, marker):
    for doc in corpus.values():
        for passage in cut_passages(doc):
            assert marker not in passage.text, (doc.source, passage.text)


def test_publish_time_stays_in_the_news_header_passage(corpus):
    doc = corpus["003"]
    header = cut_passages(doc)[0]
    assert "信息时间:2020-04-30 08:40" in header.text


def test_ids_are_stable_and_content_based(tmp_path):
    utf8 = tmp_path / "a.txt"
    gbk = tmp_path / "b.txt"
    utf8.write_text(TEXT, encoding="utf-8")
    gbk.write_bytes(TEXT.encode("gbk"))
    assert load_document(utf8).doc_id == load_document(utf8).doc_id == load_document(gbk).doc_id
    assert document_id(TEXT) != document_id(TEXT + "。")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk"])
def test_decodes_common_chinese_encodings(encoding):
    assert decode_bytes(TEXT.encode(encoding), "x.txt") == TEXT


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "empty"), (b"  \n\n ", "empty"), (b"\x00\x01\x02PK\x03\x04" * 20, "binary"),
     (bytes(range(0x80, 0x100)) * 8, "cannot decode")],
)
def test_bad_bytes_are_refused_with_the_reason(data, reason):
    with pytest.raises(IngestError, match=reason):
        decode_bytes(data, "bad.txt")


def test_a_bad_file_is_skipped_and_reported_not_fatal(tmp_path):
    (tmp_path / "good.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.md").write_bytes(b"\x00" * 100)
    report = load_documents([tmp_path])
    assert [Path(d.source).name for d in report.documents] == ["good.txt"]
    assert sorted(Path(f.source).name for f in report.failures) == ["binary.md", "empty.txt"]


def test_nothing_to_ingest_raises_with_every_reason(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(NoDocumentsError, match="empty"):
        load_documents([tmp_path / "empty.txt", tmp_path / "missing.txt"])
    with pytest.raises(NoDocumentsError, match="no supported files"):
        load_documents([tmp_path / "sub"] if (tmp_path / "sub").mkdir() is None else [])


def test_unsupported_suffix_names_the_supported_ones(tmp_path):
    path = tmp_path / "a.xyz"
    path.write_text(TEXT, encoding="utf-8")
    with pytest.raises(IngestError, match=r"\.txt"):
        load_document(path)


def test_text_with_only_boilerplate_is_refused():
    with pytest.raises(IngestError, match="no text content"):
        document_from_text("当前位置: 首页 > 新闻\n下一篇:某某讲话\n", "page.txt")


def test_a_given_title_wins():
    assert document_from_text(TEXT, "t.txt", title="我的标题").title == "我的标题"
