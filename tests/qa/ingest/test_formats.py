"""Word, PDF and web-page input: outline, boilerplate, pages, metadata, retrieval, and clear errors on bad files.

Every fixture is made here (python-docx, reportlab with its built-in `STSong-Light` CID font, pypdf, literal HTML):
no binary file is committed and nothing is downloaded. The acceptance check at the end converts the five sample
documents to .docx and .pdf with the converters of `bench/formats_eval.py` and compares the outlines with the .txt.
"""

from __future__ import annotations

import importlib.util
import io
import re
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import docx
import pypdf
import pytest
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml import parse_xml
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from embeddings import create_embedder
from qa.config import SAMPLE_CORPUS
from qa.errors import IngestError
from qa.ingest.chunking import cut_passages
from qa.ingest.reader import (
    FORMAT_SUFFIXES,
    SUPPORTED_SUFFIXES,
    document_from_bytes,
    find_files,
    load_document,
    load_documents,
    sniff,
)
from qa.service import QAService

ROOT = Path(__file__).resolve().parents[3]


def _load_bench():
    name = "bench_formats_eval"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "formats_eval.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

# --- fixtures: a Word document ----------------------------------------------------------------------------------

DOCX_HEADER = "页眉机密文件XYZ"
DOCX_FOOTER = "页脚版权声明第1页"
DOCX_TITLE = "全县防汛工作会议讲话"
DOCX_PARAGRAPHS = [
    ("Normal", "同志们："),
    ("Normal", "今天召开全县防汛工作会议，主要任务是部署今年的防汛抗旱工作。"),
    ("Heading 1", "总体要求"),
    ("Heading 2", "工作目标"),
    ("Normal", "一、提高思想认识"),
    ("Normal", ("（一）压实防汛责任。一是落实行政首长负责制，县长对全县防汛负总责。二是落实部门包保责任，"
                "每座水库明确一名县级领导。")),
    ("Normal", "（二）加强监测预警。气象部门要每日发布雨情通报。"),
    ("标题 1", "保障措施"),
    ("Normal", "一、加强物资储备"),
    ("Normal", "各乡镇要按照下表储备防汛物资，确保汛期随时调用。"),
    ("table", [["物资", "数量", "存放地点"], ["冲锋舟", "12艘", "县防汛物资仓库"], ["救生衣", "800件", "各乡镇应急站"]]),
    ("Normal", "散会后各单位立即传达会议精神。"),
]
DOCX_OUTLINE = [
    (1, "总体要求"),
    (2, "工作目标"),
    (3, "一、提高思想认识"),
    (4, "（一）压实防汛责任"),
    (5, "一是落实行政首长负责制，县长对全县防汛负总责"),
    (5, "二是落实部门包保责任，每座水库明确一名县级领导"),
    (4, "（二）加强监测预警"),
    (1, "保障措施"),
    (2, "一、加强物资储备"),
]


def make_docx(path: Path, paragraphs=DOCX_PARAGRAPHS, *, title: str | None = DOCX_TITLE,
              created: datetime | None = datetime(2021, 6, 18, 9, 30)) -> Path:
    document = docx.Document()
    chinese = document.styles.add_style("标题 1", WD_STYLE_TYPE.PARAGRAPH)  # as WPS names its heading style
    chinese.base_style = document.styles["Normal"]
    chinese.element.get_or_add_pPr().append(parse_xml(
        '<w:outlineLvl xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" w:val="0"/>'))
    section = document.sections[0]
    section.header.paragraphs[0].text = DOCX_HEADER
    section.footer.paragraphs[0].text = DOCX_FOOTER
    for style, content in paragraphs:
        if style == "table":
            table = document.add_table(rows=len(content), cols=len(content[0]))
            for r, row in enumerate(content):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
        else:
            document.add_paragraph(content, style=style)
    if title is not None:
        document.core_properties.title = title
    if created is not None:
        document.core_properties.created = created
    document.save(str(path))
    return path


# --- fixtures: a PDF --------------------------------------------------------------------------------------------

PDF_HEADER = "某某市人民政府工作报告"
PDF_TITLE = "关于二〇二一年重点工作的报告"
PDF_DATE_LINE = "（2021年3月5日）"
PARA_A = "今年以来，全市经济运行总体平稳，主要指标好于预期，地区生产总值同比增长百分之六点五，城乡居民收入稳步提高。"
PARA_B = ("全市上下坚持稳中求进工作总基调，统筹推进疫情防控和经济社会发展，固定资产投资完成四百二十亿元，新开工亿元以上"
          "项目八十六个，社会消费品零售总额恢复到疫情前水平，外贸进出口逆势增长，市场主体活力持续增强，营商环境评价位居"
          "全省前列，为全年目标任务的完成打下了坚实基础。")
PARA_C = "加快新型基础设施建设，年内新增智慧停车泊位三千个，建成五G基站一千二百座，推动城市治理数字化转型。"
PARA_D = "健全应急管理体系，新建市级应急物资储备库两座，完善防汛抗旱和森林防火指挥调度机制。"
PDF_OUTLINE = [(1, "一、总体情况"), (1, "二、主要任务"), (2, "（一）建设新型基础设施"), (1, "三、保障措施")]


def _pdf_lines(text: str, *, size: float = 12.0, indent: bool = True) -> list[tuple[str, float, float]]:
    """(line, x offset, font size) of a paragraph wrapped to the text width, first line indented two characters."""
    width = A4[0] - 144
    lines = bench.wrap(text, width, size, 2 * size if indent else 0.0)
    return [(line, 2 * size if indent and i == 0 else 0.0, size) for i, line in enumerate(lines)]


def make_pdf(path: Path) -> Path:
    """Three pages; PARA_B starts on page 1 and ends on page 2; running header and `- n -` page numbers."""
    bench.register_font()
    para_b = _pdf_lines(PARA_B)
    pages = [
        [("title", PDF_TITLE), ("title", PDF_DATE_LINE), *[("line", x) for x in _pdf_lines("一、总体情况", size=14)],
         *[("line", x) for x in _pdf_lines(PARA_A)], *[("line", x) for x in para_b[:2]]],
        [*[("line", x) for x in para_b[2:]], *[("line", x) for x in _pdf_lines("二、主要任务", size=14)],
         *[("line", x) for x in _pdf_lines("（一）建设新型基础设施", size=14)], *[("line", x) for x in _pdf_lines(PARA_C)]],
        [*[("line", x) for x in _pdf_lines("三、保障措施", size=14)], *[("line", x) for x in _pdf_lines(PARA_D)]],
    ]
    page_w, page_h = A4
    c = canvas.Canvas(str(path), pagesize=A4)
    c.setTitle("Microsoft Word - 重点工作报告.docx")
    for number, lines in enumerate(pages, 1):
        c.setFont("STSong-Light", 9)
        c.drawCentredString(page_w / 2, page_h - 40, PDF_HEADER)
        c.drawCentredString(page_w / 2, 36, f"- {number} -")
        y = page_h - 72
        for kind, content in lines:
            if kind == "title":
                y -= 28
                c.setFont("STSong-Light", 16)
                c.drawCentredString(page_w / 2, y, content)
            else:
                line, x, size = content
                y -= size * 1.6
                c.setFont("STSong-Light", size)
                c.drawString(72 + x, y, line)
        c.showPage()
    c.save()
    return path


# --- fixtures: a web page ---------------------------------------------------------------------------------------

HTML_PAGE = """<!DOCTYPE html>
<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">
<title>我区召开全区领导干部会议_魏都区人民政府</title>
<meta name="keywords" content="魏都区,领导干部会议">
</head><body>
<div class="top"><ul class="nav"><li><a href="/">首页</a></li><li><a href="/zwgk/">政务公开</a></li>
<li><a href="/zwxx/">政务信息</a></li><li><a href="/hdjl/">互动交流</a></li><li><a href="/bsfw/">办事服务</a></li></ul></div>
<div class="location">当前位置: <a href="/">首页</a> &gt; <a href="/zwxx/">政务信息</a> &gt; <a href="/wdyw/">魏都要闻</a></div>
<div class="main"><div class="article">
<h1>我区召开全区领导干部会议</h1>
<div class="info">【信息来源:【信息时间:2020-04-30 08:40 阅读次数: 】【字号 <a href="#">大</a> <a href="#">中</a>
<a href="#">小</a>】【<a href="javascript:window.print()">我要打印</a>】【<a href="javascript:window.close()">关闭</a>】</div>
<div class="content">
<p>4月29日,全区领导干部会议召开,会议学习贯彻习近平总书记重要讲话精神,贯彻全市领导干部会议精神,总结2019年全区经济社会发展工作,
深入分析当前经济形势,对今年一季度全区经济社会发展各项工作进行盘点。</p>
<p>区委书记张书杰、区政府区长李朝锋分别讲话。区委副书记魏少峰主持会议。</p>
<p>张书杰同志分析了新冠肺炎疫情带来的影响及当前经济发展面临的形势、机遇,并就做好下一步工作提出明确要求。他指出,五大园区从无到有、欣欣向荣。</p>
<p>会上,苏凯强同志通报了2019年度全区经济社会发展考评排名和十项重点工作排名。相关街道办事处主要负责同志分别作了典型发言和表态发言。</p>
</div>
<div class="share">分享到: <a href="#">微信</a> <a href="#">微博</a></div>
</div></div>
<div class="footer"><p>版权所有:许昌市魏都区人民政府 地址:许昌市魏都区 邮编:461000</p>
<p>备案号:豫ICP备12345678号 网站标识码:4110020001</p></div>
</body></html>"""
HTML_FURNITURE = ["首页", "政务公开", "互动交流", "办事服务", "当前位置", "魏都要闻", "我要打印", "关闭", "字号", "阅读次数",
                  "分享到", "版权所有", "备案号", "网站标识码"]


def make_html(path: Path) -> Path:
    path.write_bytes(HTML_PAGE.encode("gb18030"))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("formats")
    return {"docx": make_docx(folder / "防汛讲话.docx"), "pdf": make_pdf(folder / "工作报告.pdf"),
            "html": make_html(folder / "news.html")}


@pytest.fixture(scope="module")
def docs(files):
    return {kind: load_document(path) for kind, path in files.items()}


def _outline(doc):
    return [(s.level, s.title) for s in doc.sections]


# --- Word -------------------------------------------------------------------------------------------------------


def test_docx_outline_from_heading_styles_and_numbering(docs):
    assert _outline(docs["docx"]) == DOCX_OUTLINE


def test_docx_text_is_body_in_order_with_a_readable_table(docs):
    text = docs["docx"].text
    assert text.startswith("同志们：\n今天召开全县防汛工作会议")
    assert "\n# 总体要求\n## 工作目标\n一、提高思想认识\n" in text
    assert "\n# 保障措施\n" in text  # the Chinese-named style 标题 1 is a level-1 heading
    assert "\n\n物资 | 数量 | 存放地点\n冲锋舟 | 12艘 | 县防汛物资仓库\n救生衣 | 800件 | 各乡镇应急站\n\n" in text


def test_docx_header_and_footer_are_not_content(docs):
    doc = docs["docx"]
    assert DOCX_HEADER not in doc.text and DOCX_FOOTER not in doc.text
    for passage in cut_passages(doc):
        assert "页眉" not in passage.text and "页脚" not in passage.text


def test_docx_core_properties_fill_in_title_and_date(docs):
    doc = docs["docx"]
    assert doc.title == DOCX_TITLE  # the text opens with 同志们： and has no title line of its own
    assert doc.meta.date == "2021-06-18"


def test_docx_title_line_in_the_text_wins_over_the_properties(tmp_path):
    paragraphs = [("Title", "在全县防汛工作会议上的讲话"), ("Normal", "（2021年6月18日）"), *DOCX_PARAGRAPHS]
    doc = load_document(make_docx(tmp_path / "t.docx", paragraphs, title="Word 文档模板", created=None))
    assert doc.title == "在全县防汛工作会议上的讲话"
    assert doc.meta.date == "2021年6月18日"


def test_docx_table_is_one_passage_block(docs):
    passages = [p for p in cut_passages(docs["docx"]) if "冲锋舟" in p.text]
    assert len(passages) == 1
    assert "冲锋舟 | 12艘 | 县防汛物资仓库" in passages[0].text
    assert passages[0].section_path == ("保障措施", "一、加强物资储备")


def test_docx_tracked_changes_and_line_breaks(tmp_path):
    document = docx.Document()
    p = document.add_paragraph("全县共有水库")
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    p._p.append(parse_xml(f'<w:ins xmlns:w="{w}" w:id="1" w:author="a"><w:r><w:t>三十六座，</w:t></w:r></w:ins>'))
    p._p.append(parse_xml(f'<w:del xmlns:w="{w}" w:id="2" w:author="a"><w:r><w:delText>删掉的字</w:delText></w:r></w:del>'))
    run = p.add_run("其中中型水库")
    run.add_break()
    p.add_run("四座。")
    document.add_paragraph("第二段。")
    path = tmp_path / "changes.docx"
    document.save(str(path))
    doc = load_document(path)
    assert doc.text == "全县共有水库三十六座，其中中型水库四座。\n第二段。\n"


def test_docx_text_inside_a_one_column_layout_table_is_body(tmp_path):
    """Some templates put the whole document in a one-cell table; its paragraphs are still paragraphs."""
    document = docx.Document()
    cell = document.add_table(rows=1, cols=1).cell(0, 0)
    cell.paragraphs[0].text = "一、总体要求"
    cell.add_paragraph("坚持稳中求进工作总基调。")
    cell.add_paragraph("二、重点任务")
    cell.add_paragraph("扩大有效投资，新开工项目八十个。")
    path = tmp_path / "boxed.docx"
    document.save(str(path))
    doc = load_document(path)
    assert _outline(doc) == [(1, "一、总体要求"), (1, "二、重点任务")]
    assert "|" not in doc.text


def test_docx_word_automatic_numbering_is_written_out(tmp_path):
    """Headings numbered by Word's list numbering (not typed) still give the outline."""
    document = docx.Document()
    numbering = document.part.numbering_part.element
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    numbering.append(parse_xml(
        f'<w:abstractNum xmlns:w="{w}" w:abstractNumId="90">'
        '<w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="chineseCounting"/><w:lvlText w:val="%1、"/></w:lvl>'
        '<w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="chineseCounting"/><w:lvlText w:val="（%2）"/></w:lvl>'
        '</w:abstractNum>'))
    numbering.append(parse_xml(f'<w:num xmlns:w="{w}" w:numId="90"><w:abstractNumId w:val="90"/></w:num>'))

    def numbered(text: str, level: int) -> None:
        p = document.add_paragraph(text)
        p._p.get_or_add_pPr().append(parse_xml(
            f'<w:numPr xmlns:w="{w}"><w:ilvl w:val="{level}"/><w:numId w:val="90"/></w:numPr>'))

    numbered("总体要求", 0)
    numbered("指导思想", 1)
    document.add_paragraph("坚持稳中求进工作总基调。")
    numbered("主要目标", 1)
    document.add_paragraph("全年增长百分之六。")
    numbered("重点任务", 0)
    numbered("扩大有效投资", 1)
    document.add_paragraph("新开工项目八十个。")
    path = tmp_path / "numbered.docx"
    document.save(str(path))
    assert _outline(load_document(path)) == [(1, "一、总体要求"), (2, "（一）指导思想"), (2, "（二）主要目标"),
                                              (1, "二、重点任务"), (2, "（一）扩大有效投资")]


# --- PDF --------------------------------------------------------------------------------------------------------


def test_pdf_outline_and_header_block(docs):
    doc = docs["pdf"]
    assert _outline(doc) == PDF_OUTLINE
    assert doc.title == PDF_TITLE  # the title line, not the info dictionary's `Microsoft Word - …`
    assert doc.meta.date == "2021年3月5日"


def test_pdf_lines_rejoined_without_spaces_across_wraps_and_pages(docs):
    lines = docs["pdf"].text.splitlines()
    assert PARA_A in lines and PARA_B in lines and PARA_C in lines and PARA_D in lines
    assert lines[:3] == [PDF_TITLE, PDF_DATE_LINE, "一、总体情况"]


def test_pdf_running_header_and_page_numbers_are_removed(docs):
    doc = docs["pdf"]
    assert PDF_HEADER not in doc.text
    assert not re.search(r"-\s*\d\s*-", doc.text)
    for passage in cut_passages(doc):
        assert PDF_HEADER not in passage.text


def test_pdf_passages_know_their_pages(docs):
    doc = docs["pdf"]
    assert len(doc.page_starts) == 2
    assert doc.text[doc.page_starts[0]:].startswith(bench.wrap(PARA_B, A4[0] - 144, 12.0, 24.0)[2])
    assert doc.text[doc.page_starts[1]:].startswith("三、保障措施")
    passages = cut_passages(doc)
    assert all(p.page is not None for p in passages)
    assert all(doc.text[p.char_start:p.char_end] == p.text for p in passages)
    page_of = {phrase: next(p.page for p in passages if phrase in p.text)
               for phrase in ("地区生产总值", "智慧停车泊位", "应急物资储备库")}
    assert page_of == {"地区生产总值": 1, "智慧停车泊位": 2, "应急物资储备库": 3}


def test_pdf_with_owner_password_only_opens(tmp_path, files):
    pytest.importorskip("cryptography")  # AES needs it
    writer = pypdf.PdfWriter(clone_from=str(files["pdf"]))
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-128")
    path = tmp_path / "restricted.pdf"
    writer.write(str(path))
    assert _outline(load_document(path)) == PDF_OUTLINE


def test_pdf_title_that_repeats_the_running_header_is_kept(tmp_path):
    """A work report whose running head is its own title: the big title on page 1 is content, the small heads not."""
    bench.register_font()
    path = tmp_path / "report.pdf"
    page_w, page_h = A4
    c = canvas.Canvas(str(path), pagesize=A4)
    for number in (1, 2, 3):
        c.setFont("STSong-Light", 9)
        if number > 1:
            c.drawCentredString(page_w / 2, page_h - 40, "政府工作报告")
        c.drawCentredString(page_w / 2, 36, f"第{number}页")
        y = page_h - 90
        if number == 1:
            c.setFont("STSong-Light", 20)
            c.drawCentredString(page_w / 2, y, "政府工作报告")
            y -= 40
        c.setFont("STSong-Light", 12)
        c.drawString(96, y, f"{'一二三'[number - 1]}、第{number}部分的标题")
        c.drawString(96, y - 20, f"这是第{number}页的正文内容。")
        c.showPage()
    c.save()
    doc = load_document(path)
    assert doc.title == "政府工作报告"
    assert doc.text.count("政府工作报告") == 1
    assert doc.text.splitlines() == ["政府工作报告", "一、第1部分的标题", "这是第1页的正文内容。", "二、第2部分的标题",
                                     "这是第2页的正文内容。", "三、第3部分的标题", "这是第3页的正文内容。"]
    assert [p.page for p in cut_passages(doc) if "正文内容" in p.text] == [1, 2, 3]


def test_pdf_drawn_character_by_character_under_a_watermark(tmp_path):
    """Some producers draw every character as its own text object; a diagonal watermark is no content."""
    bench.register_font()
    from reportlab.pdfbase.pdfmetrics import stringWidth

    path = tmp_path / "glyphs.pdf"
    page_w, page_h = A4
    c = canvas.Canvas(str(path), pagesize=A4)
    c.saveState()
    c.setFont("STSong-Light", 40)
    c.translate(page_w / 2, page_h / 2)
    c.rotate(45)
    c.drawCentredString(0, 0, "内部资料严禁外传")
    c.restoreState()
    y = page_h - 72
    for text, size in (("一、总体情况", 14), (PARA_A, 12), ("二、主要任务", 14), (PARA_C, 12)):
        for i, line in enumerate(bench.wrap(text, page_w - 144, size, 2 * size)):
            y -= size * 1.6
            x = 72 + (2 * size if i == 0 else 0)
            c.setFont("STSong-Light", size)
            for ch in line:
                c.drawString(x, y, ch)
                x += stringWidth(ch, "STSong-Light", size)
    c.showPage()
    c.save()
    doc = load_document(path)
    assert doc.text.splitlines() == ["一、总体情况", PARA_A, "二、主要任务", PARA_C]


@pytest.mark.parametrize("line, expected", [
    ("3", True), ("- 3 -", True), ("— 12 —", True), ("第3页", True), ("第 3 页 共 10 页", True), ("3/10", True),
    ("Page 3 of 10", True), ("2020", False), ("一、总体情况", False), ("3月5日", False),
])
def test_page_number_shapes(line, expected):
    from qa.ingest.pdf import _is_page_number

    assert _is_page_number(line, page_count=10) is expected


# --- HTML -------------------------------------------------------------------------------------------------------


def test_html_keeps_the_article_and_drops_the_page_furniture(docs):
    doc = docs["html"]
    lines = doc.text.splitlines()
    # The breadcrumb is kept as the first line, marked as boilerplate (no passage holds it), for the place.
    assert lines[0] == "当前位置: 首页 > 政务信息 > 魏都要闻"
    assert doc.boilerplate[0] == (0, len(lines[0]))
    assert lines[1] == "我区召开全区领导干部会议"
    assert lines[2] == "信息时间:2020-04-30 08:40"
    assert "苏凯强同志通报了2019年度全区经济社会发展考评排名" in doc.text
    for passage in cut_passages(doc):
        for furniture in HTML_FURNITURE:
            assert furniture not in passage.text, (furniture, passage.text)


def test_html_title_and_date(docs):
    doc = docs["html"]
    assert doc.title == "我区召开全区领导干部会议"
    assert doc.meta.date == "2020-04-30 08:40"
    assert doc.meta.place == "魏都区"  # from the breadcrumb, as for the .txt copy of this page


def test_html_date_from_meta_tag_and_headings_as_levels():
    page = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><meta charset="utf-8"/>
<title>关于印发工作方案的通知 - 某某市人民政府</title>
<meta property="article:published_time" content="2021-03-05T10:20:00+08:00"/></head><body>
<nav><a href="/">首页</a> <a href="/jg/">机构设置</a></nav>
<article><h1>关于印发工作方案的通知</h1>
<p>各乡镇人民政府，区直各单位：现将工作方案印发给你们，请认真贯彻执行。</p>
<h2>一、总体要求</h2><p>坚持以人民为中心的发展思想，<br/>统筹推进各项工作，确保各项任务落到实处。</p>
<h3>（一）主要目标</h3><p>到2021年底，全区新建五G基站一千二百个，重点场所实现全覆盖。</p>
<h2>保障措施</h2><p>各单位要明确责任分工，加强督促检查，确保取得实效。</p>
</article><footer>版权所有 某某市人民政府</footer></body></html>"""
    doc = document_from_bytes(page.encode(), "notice.htm")
    assert doc.title == "关于印发工作方案的通知"
    assert doc.meta.date == "2021-03-05 10:20"
    assert _outline(doc) == [(1, "一、总体要求"), (2, "（一）主要目标"), (1, "保障措施")]
    assert "坚持以人民为中心的发展思想，统筹推进各项工作" in doc.text  # <br/> inside a paragraph is no break
    assert "机构设置" not in doc.text and "版权所有" not in doc.text


def test_html_site_logo_clock_and_meta_title():
    page = """<html><head><meta charset="utf-8"><title>首页_某某县人民政府门户网站</title>
<meta name="ArticleTitle" content="某某县召开安全生产工作会议"></head><body>
<div class="head"><h1 class="logo">某某县人民政府门户网站</h1><span>当前时间：2024-01-01</span></div>
<div class="article"><h1>某某县召开安全生产工作会议</h1><div class="info">发布日期：2021-05-06 来源：县应急局</div>
<p>5月6日，全县安全生产工作会议召开，会议传达了全省安全生产电视电话会议精神，部署了安全生产大检查工作。</p>
<p>会议要求，各乡镇各部门要严格落实安全生产责任制，坚决遏制重特大事故发生。</p></div></body></html>"""
    doc = document_from_bytes(page.encode(), "safety.html")
    assert doc.title == "某某县召开安全生产工作会议"
    assert doc.meta.date == "2021-05-06"
    assert "门户网站" not in doc.text and "2024-01-01" not in doc.text


def test_html_charset_detected_without_declaration():
    page = ("<html><body><article><h1>全市春耕生产工作会议召开</h1><p>会议要求，各地要抓好春耕备耕，确保粮食播种面积稳定在"
            "八百万亩以上，切实做好农资供应和技术服务。</p><p>会议强调，要加强农田水利建设，提高农业综合生产能力。</p>"
            "</article></body></html>")
    doc = document_from_bytes(page.encode("gb18030"), "spring.html")
    assert "八百万亩" in doc.text and doc.title == "全市春耕生产工作会议召开"


# --- retrieval through the service ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_questions_find_the_passage_in_each_format(files, tmp_path, mode):
    service = QAService(tmp_path / "index", create_embedder("hashing"))
    report = service.index_paths([files["docx"].parent])
    assert report.documents == 3 and not report.failures
    cases = [
        ("防汛仓库里存放的冲锋舟有多少艘", "docx", "冲锋舟 | 12艘"),
        ("今年新增多少个智慧停车泊位", "pdf", "智慧停车泊位三千个"),
        ("谁通报了2019年度全区经济社会发展考评排名", "html", "苏凯强同志通报了2019年度"),
    ]
    for question, kind, phrase in cases:
        top = service.ask(question, top_k=5, mode=mode).hits[0].passage
        assert phrase in top.text, (question, top.text)
        assert service.document(top.doc_id).source == str(files[kind])
    pdf_hit = service.ask("今年新增多少个智慧停车泊位", mode=mode).hits[0].passage
    assert pdf_hit.page == 2


def test_cli_ingest_outline_reads_the_new_formats(files, qa_env, run_cli):
    code, out, _err = run_cli("ingest", "--outline", files["docx"], files["pdf"], files["html"])
    assert code == 0
    assert "（一）压实防汛责任" in out and "（一）建设新型基础设施" in out and "我区召开全区领导干部会议" in out


def test_find_files_picks_up_the_new_suffixes_and_skips_lock_files(files, tmp_path):
    assert set(FORMAT_SUFFIXES) <= set(SUPPORTED_SUFFIXES)
    (tmp_path / "a.DOCX").write_bytes(files["docx"].read_bytes())
    (tmp_path / "b.htm").write_bytes(b"<html><body><p>x</p></body></html>")
    (tmp_path / "c.pdf").write_bytes(files["pdf"].read_bytes())
    (tmp_path / "~$a.DOCX").write_bytes(b"\x05owner\x00" * 20)  # Word's lock file beside an open document
    (tmp_path / "d.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    found, problems = find_files([tmp_path])
    assert sorted(p.name for p in found) == ["a.DOCX", "b.htm", "c.pdf"] and not problems


# --- bad input --------------------------------------------------------------------------------------------------


def _zip_with(names: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in names.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _encrypted_pdf(source: Path) -> bytes:
    writer = pypdf.PdfWriter(clone_from=str(source))
    writer.encrypt(user_password="secret", owner_password="owner")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _scanned_pdf() -> bytes:
    buffer = io.BytesIO()
    c = canvas.Canvas(buffer, pagesize=A4)
    c.rect(72, 72, 300, 500, fill=1)  # a picture of a page, no text
    c.showPage()
    c.rect(100, 100, 200, 200)
    c.showPage()
    c.save()
    return buffer.getvalue()


def _broken_docx(good: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        parts = {name: z.read(name) for name in z.namelist()}
    parts["word/document.xml"] = parts["word/document.xml"][:300]  # cut off mid-element
    return _zip_with(parts)


@pytest.fixture(scope="module")
def bad_files(files) -> dict[str, tuple[bytes, str]]:
    """file name -> (content, what the error must say)."""
    good_docx = files["docx"].read_bytes()
    return {
        "not_a_zip.docx": ("这不是一个Word文件，只是一段文字。".encode(), "looks like plain text"),
        "other_zip.docx": (_zip_with({"hello.txt": b"hi"}), "looks like a ZIP archive"),
        "spreadsheet.docx": (_zip_with({"[Content_Types].xml": b"<x/>", "xl/workbook.xml": b"<x/>"}),
                             "Excel workbook"),
        "truncated.docx": (good_docx[: len(good_docx) // 2], "damaged"),
        "broken_xml.docx": (_broken_docx(good_docx), "damaged"),
        "old_word.docx": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "legacy Word 97-2003"),
        "locked.pdf": (_encrypted_pdf(files["pdf"]), "encrypted"),
        "scanned.pdf": (_scanned_pdf(), "no text layer: needs OCR"),
        "empty.pdf": (b"", "file is empty"),
        "empty.docx": (b"", "file is empty"),
        "empty.html": (b"", "file is empty"),
        "text_named.pdf": ("一、总体要求\n今年以来经济平稳增长。\n".encode(), "looks like plain text"),
        "page_named.docx": (HTML_PAGE.encode("gb18030"), "looks like an HTML page"),
        "word_named.pdf": (good_docx, "looks like a Word .docx document"),
        "pdf_named.txt": (files["pdf"].read_bytes(), "looks like a PDF document"),
        "pdf_named.html": (files["pdf"].read_bytes(), "looks like a PDF document"),
        "damaged.pdf": (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n<<>>\n%%EOF", "PDF"),
    }


def test_each_bad_file_gives_a_clear_error(bad_files, tmp_path):
    for name, (data, reason) in bad_files.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(IngestError) as caught:
            load_document(path)
        assert reason in caught.value.reason, (name, caught.value.reason)
        assert caught.value.source == str(path)


def test_wrong_extension_error_says_what_to_rename_to(tmp_path, files):
    path = tmp_path / "report.docx"
    path.write_bytes(files["pdf"].read_bytes())
    with pytest.raises(IngestError, match=r"named \.docx but it looks like a PDF document.*rename it to \.pdf"):
        load_document(path)


def test_a_batch_keeps_the_good_file_and_lists_every_failure(bad_files, files, tmp_path):
    for name, (data, _reason) in bad_files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "good.docx").write_bytes(files["docx"].read_bytes())
    report = load_documents([tmp_path])
    assert [Path(d.source).name for d in report.documents] == ["good.docx"]
    assert sorted(Path(f.source).name for f in report.failures) == sorted(bad_files)
    for failure in report.failures:
        assert bad_files[Path(failure.source).name][1] in failure.reason


def test_sniffing():
    assert sniff(b"%PDF-1.7\n...") == "pdf"
    assert sniff(b"\n\n<!DOCTYPE html><html>") == "html"
    assert sniff("一段文字".encode("gb18030")) == "text"
    assert sniff(b"\x89PNG\r\n\x1a\n\x00\x00") == "image"
    assert sniff(b"PK\x03\x04garbage") == "badzip"


# --- acceptance: the five sample documents as .docx and .pdf give the .txt outline ------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    return bench.convert_corpus(SAMPLE_CORPUS, tmp_path_factory.mktemp("converted"), ("txt", "docx", "pdf", "html"))


@pytest.mark.parametrize("kind", ["docx", "pdf", "html"])
def test_sample_documents_keep_their_outline_and_title(converted, kind):
    for txt in sorted(converted["txt"].glob("*.txt")):
        original = load_document(txt)
        other = load_document(converted[kind] / f"{txt.stem}.{kind}")
        assert _outline(other) == _outline(original), txt.name
        assert other.title == original.title, txt.name
        if kind == "html":
            for passage in cut_passages(other):
                assert not any(w in passage.text for w in ("首页", "政务公开", "分享到", "打印本页", "版权所有", "备案号"))
            continue
        # Same words, nothing lost and no page furniture added (markup and spacing aside).
        assert re.sub(r"[\s#*]", "", other.text) == re.sub(r"[\s#*]", "", txt.read_text(encoding="utf-8-sig"))
        if kind == "pdf":
            passages = cut_passages(other)
            assert len(other.page_starts) >= 2 and all(p.page for p in passages)
