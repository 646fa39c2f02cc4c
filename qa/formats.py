"""Read Word (.docx), PDF (.pdf, with a text layer) and web pages (.html/.htm) into `Document`s.

Each reader turns the file's bytes into plain text in the project's text conventions, then hands it to
`qa.ingest.document_from_text`, so outline, boilerplate, metadata, chunking and citations work as for `.txt`:

- one paragraph per line; a table is its own block of lines (one row per line, cells joined by ` | `) between blank
  lines;
- headings that the format marks by style (Word `Heading 1`-`6`, `标题 1`-`6`, an outline level; HTML `<h1>`-`<h6>`)
  become Markdown lines, `#` count = level, so `qa.sections` ranks them; numbering written in the heading text
  (`一、`, `（一）`, ...) still decides its level, as it does for `.md` files;
- page furniture is not content: Word headers and footers are never read; PDF running headers/footers, page numbers
  and watermarks are removed; navigation, share/print links and footers of web pages are left out (a breadcrumb,
  `当前位置: 首页 > 政务信息 > 魏都要闻`, is kept as the first line, where `qa.ingest` marks it as boilerplate that no
  passage holds, because it names the site's district).

**The original text of a Document read from these formats is this extracted text**: `Document.text` is what the reader
produced (not the file's bytes), and every offset (passages, sections, boilerplate spans, `page_starts`) points into
it, so ``document.text[p.char_start:p.char_end] == p.text`` holds here too. For a PDF, `page_starts` gives the offsets
in that text where pages 2, 3, ... begin, so each passage knows its page.

Metadata the format carries (Word core properties, PDF info, web-page `<title>`/`<h1>`/meta tags/`发布时间:` lines)
is passed as hints: the text's own title line and date win; the hints fill in what the text does not say.

A file whose content is not what its extension says gets an `IngestError` naming what it looks like.
"""

from __future__ import annotations

import io
import math
import re
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import ClassVar

from qa.errors import IngestError
from qa.ingest import TEXT_SUFFIXES, decode_bytes, document_from_text
from qa.sections import LEAD_RANK, match_heading
from qa.types import Document

# suffix -> reader kind; `qa.ingest.SUPPORTED_SUFFIXES` lists these too.
FORMAT_SUFFIXES = {".docx": "docx", ".pdf": "pdf", ".html": "html", ".htm": "html"}

_KIND_WORDS = {
    "empty": "an empty file",
    "pdf": "a PDF document",
    "docx": "a Word .docx document",
    "xlsx": "an Excel workbook (.xlsx)",
    "pptx": "a PowerPoint presentation (.pptx)",
    "odf": "an OpenDocument file (.odt/.ods/.odp)",
    "ooxml": "an Office Open XML package that is not a Word document",
    "zip": "a ZIP archive",
    "badzip": "a damaged ZIP archive",
    "ole2": "a legacy Office 97-2003 file (.doc/.xls/.ppt)",
    "rtf": "an RTF document",
    "image": "an image",
    "html": "an HTML page",
    "text": "plain text",
    "binary": "binary data",
}
# What each kind of file would have to be named to be read as what it is.
_RIGHT_SUFFIX = {"pdf": ".pdf", "docx": ".docx", "html": ".html", "text": ".txt"}
# Contents that a text file (.txt/.md) must not have: reading them as text would index garbage.
_NOT_TEXT = {"pdf", "docx", "xlsx", "pptx", "odf", "ooxml", "zip", "badzip", "ole2", "rtf", "image"}

_HTML_MARKERS = re.compile(rb"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]|<meta\s|<title>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<(?:p|div|br|span|table|h[1-6]|article|section|a)\b[^>]*>", re.IGNORECASE)
_SENTENCE_END = "。！？；：!?;:…"
_CLOSERS = "”’」』)）\"'"
_LATIN = re.compile(r"[A-Za-z0-9]")

# Generic titles that tools write into file properties; they say nothing about the document.
_JUNK_TITLE = re.compile(r"^(?:untitled|无标题|document|文档\d*|word document|新建\s*microsoft word 文档|"
                         r"powerpoint presentation|slide \d+|首页|主页|正文|详情|内容页|文章详情|\s*)$", re.IGNORECASE)
_WORD_PREFIX = re.compile(r"^microsoft\s+(?:word|powerpoint)\s*-\s*", re.IGNORECASE)
_FILE_EXT = re.compile(r"\.(?:docx?|wps|pdf|txt)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Extracted:
    """What a reader got out of a file: the text (the Document's original text), page starts and metadata hints."""

    text: str
    page_starts: tuple[int, ...] = ()
    paged: bool = False
    title: str | None = None
    date: str | None = None


# --- entry points -----------------------------------------------------------------------------------------------


def document_from_bytes(data: bytes, source: str, suffix: str | None = None, title: str | None = None) -> Document:
    """Read a file's bytes into a `Document`, by its suffix (taken from `source` when not given).

    This is the one path for files on disk (`qa.ingest.load_document`) and for uploads.

    Raises:
        IngestError: empty file, unsupported suffix, content that is not what the suffix says, damaged, encrypted or
            scanned (no text layer) file.
    """
    suffix = (suffix if suffix is not None else _suffix_of(source)).lower()
    if not data.strip():
        raise IngestError(source, "file is empty")
    kind = sniff(data)
    if suffix in TEXT_SUFFIXES:
        if kind in _NOT_TEXT:
            raise IngestError(source, _mismatch(suffix, kind))
        return document_from_text(decode_bytes(data, source), source, title)
    reader = FORMAT_SUFFIXES.get(suffix)
    if reader is None:
        raise IngestError(source, f"unsupported file type {suffix or '(none)'!r}")
    extracted = extract(data, source, reader, kind)
    return document_from_text(extracted.text, source, title, page_starts=extracted.page_starts,
                              paged=extracted.paged, title_hint=extracted.title, date_hint=extracted.date)


def extract(data: bytes, source: str, reader: str, kind: str | None = None) -> Extracted:
    """Run the `reader` ("docx", "pdf" or "html") on `data` after checking that the content is of that kind."""
    kind = kind or sniff(data)
    if reader == "docx":
        if kind != "docx":
            raise IngestError(source, _mismatch(".docx", kind))
        return read_docx(data, source)
    if reader == "pdf":
        if kind != "pdf":
            raise IngestError(source, _mismatch(".pdf", kind))
        return read_pdf(data, source)
    if reader == "html":
        if kind != "html" and not (kind == "text" and _HTML_TAG.search(_peek_text(data))):
            raise IngestError(source, _mismatch(".html", kind))
        return read_html(data, source)
    raise ValueError(f"unknown reader {reader!r}")


def _suffix_of(source: str) -> str:
    name = source.replace("\\", "/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


# --- sniffing ---------------------------------------------------------------------------------------------------


def sniff(data: bytes) -> str:
    """What the bytes look like, from magic numbers and markup: a key of `_KIND_WORDS`."""
    if not data.strip():
        return "empty"
    head = data[:4096]
    if data.lstrip(b"\xef\xbb\xbf\x00\t\r\n ").startswith(b"%PDF-") or (b"%PDF-" in data[:1024]
                                                                      and b"%%EOF" in data[-4096:]):
        return "pdf"  # readers accept the header anywhere in the first 1024 bytes
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(data)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole2"
    if head.startswith(b"{\\rtf"):
        return "rtf"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")) or (
            head.startswith(b"BM") and head[6:10] == b"\x00\x00\x00\x00"):
        return "image"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text: look at it as text
        head = head.decode("utf-16", errors="ignore").encode("utf-8")
    elif b"\x00" in head[:1024]:
        return "binary"
    if _HTML_MARKERS.search(head):
        return "html"
    return "text"


def _zip_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = set(z.namelist())
            if "word/document.xml" in names:
                return "docx"
            if "xl/workbook.xml" in names:
                return "xlsx"
            if "ppt/presentation.xml" in names:
                return "pptx"
            if "mimetype" in names and z.read("mimetype").startswith(b"application/vnd.oasis.opendocument"):
                return "odf"
            return "ooxml" if "[Content_Types].xml" in names else "zip"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError):
        return "badzip"


def _peek_text(data: bytes) -> str:
    """The start of the file as text, good enough to look for ASCII markup."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data[:8192].decode("utf-16", errors="ignore")
    return data[:8192].decode("latin-1")


def _mismatch(suffix: str, kind: str) -> str:
    if kind == "empty":
        return "file is empty"
    words = _KIND_WORDS.get(kind, kind)
    if suffix == ".docx" and kind == "badzip":
        return "damaged Word document: the file starts like a .docx (ZIP) package but cannot be opened as one"
    if suffix == ".docx" and kind == "ole2":
        return ("not a .docx: it looks like a legacy Word 97-2003 .doc file (OLE2), which is not supported; "
                "save it as .docx")
    hint = _RIGHT_SUFFIX.get(kind)
    advice = f"; rename it to {hint}" if hint and hint != suffix else ""
    return f"named {suffix} but it looks like {words}, not {_KIND_WORDS[_EXPECTED[suffix]]}{advice}"


_EXPECTED = {".docx": "docx", ".pdf": "pdf", ".html": "html", ".htm": "html",
             **{s: "text" for s in TEXT_SUFFIXES}}


# --- shared helpers ---------------------------------------------------------------------------------------------


def _wrap_joiner(left: str, right: str) -> str:
    """What goes between two pieces of one paragraph that a line wrap cut apart: nothing between Chinese characters
    (nor between the digits of a number cut in two), a space between two Latin words."""
    if left[-1:].isdigit() and right[:1].isdigit():
        return ""
    return " " if _LATIN.match(left[-1:]) and _LATIN.match(right[:1]) else ""


def _join_wrapped(left: str, right: str) -> str:
    """Re-join two pieces of one paragraph (see `_wrap_joiner`)."""
    return left + _wrap_joiner(left, right) + right


def _clean_inline(text: str) -> str:
    """One line: control characters out, tabs and runs of spaces to one space, trimmed."""
    text = "".join(" " if ch in "\t\r\n\x0b\x0c" else ch for ch in text if ch >= " " or ch in "\t\r\n\x0b\x0c")
    return re.sub(r"[ \xa0]{2,}", " ", text).strip(" \xa0\u3000")


def _ends_sentence(line: str) -> bool:
    stripped = line.rstrip().rstrip(_CLOSERS)
    return bool(stripped) and stripped[-1] in _SENTENCE_END


def _is_heading(line: str) -> bool:
    found = match_heading(line)
    return found is not None and found.rank < LEAD_RANK


def _clean_title(title: str | None) -> str | None:
    if not title:
        return None
    title = _FILE_EXT.sub("", _WORD_PREFIX.sub("", re.sub(r"\s+", " ", title))).strip()
    if _JUNK_TITLE.match(title) or len(title) > 120 or re.match(r"^(?:当前位置|您(?:现在)?的位置)", title):
        return None
    return title


def _date_of(value: datetime | None) -> str | None:
    if value is None:
        return None
    return f"{value.year}-{value.month:02d}-{value.day:02d}"


# --- .docx ------------------------------------------------------------------------------------------------------

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)
_TOC_STYLE = re.compile(r"^(?:toc|目录)\s*(?:\d|heading|标题)", re.IGNORECASE)
# python-docx's built-in template stamps this creation time on every document it makes: not the document's date.
_TEMPLATE_STAMP = datetime(2013, 12, 23, 23, 15)


def read_docx(data: bytes, source: str) -> Extracted:
    """Word document body in order: paragraphs (styled headings as `#` lines) and tables; headers/footers left out.

    Raises:
        IngestError: not a Word document, or damaged.
    """
    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph
    except ImportError as e:  # pragma: no cover - dependency missing
        raise IngestError(source, "reading .docx needs the python-docx package") from e
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as e:  # python-docx raises KeyError, ValueError, lxml errors, PackageNotFoundError...
        raise IngestError(source, f"damaged or not a Word document: {type(e).__name__}: {e}") from e

    numbering = _Numbering(document)
    try:
        blocks = _docx_blocks(document.element.body, document, numbering, Paragraph, Table)
    except IngestError:
        raise
    except Exception as e:
        raise IngestError(source, f"damaged Word document: {type(e).__name__}: {e}") from e

    text = _join_blocks(blocks)
    if not text.strip():
        raise IngestError(source, "Word document has no text")
    try:
        props = document.core_properties
        title, created = props.title, props.created
    except Exception:  # noqa: BLE001 - unreadable core properties are no reason to lose the document
        title = created = None
    if created is not None and created.replace(tzinfo=None) == _TEMPLATE_STAMP:
        created = None
    return Extracted(text, title=_clean_title(title), date=_date_of(created))


def _docx_blocks(container, document, numbering, Paragraph, Table) -> list[str]:
    """Text blocks of a body or table cell in order: paragraphs (styled headings as `#` lines) and tables.

    A one-column table is a layout box (some templates put the whole text in one): its cells are read as body.
    """
    blocks: list[str] = []
    for element in _body_blocks(container):
        if element.tag == f"{{{_W}}}tbl":
            table = Table(element, document)
            if _one_column(table):
                for row in table.rows:
                    blocks += _docx_blocks(row.cells[0]._tc, document, numbering, Paragraph, Table)
                continue
            rows = _table_rows(table)
            if rows:
                blocks.append(_TableBlock("\n".join(rows)))
            continue
        paragraph = Paragraph(element, document)
        style = _style_name(paragraph)
        if _TOC_STYLE.match(style):
            continue  # a table of contents repeats the headings, with page numbers
        text = _paragraph_text(element)
        label = numbering.label(paragraph)
        if label and text:
            text = label + text
        if not text:
            continue
        level = _heading_level(paragraph, style)
        blocks.append(f"{'#' * min(level, 6)} {text}" if level else text)
    return blocks


def _one_column(table) -> bool:
    rows = list(table.rows)
    for row in rows:
        cells = row.cells
        if not cells or any(cell._tc is not cells[0]._tc for cell in cells):
            return False
    return bool(rows)


class _TableBlock(str):
    """The rows of a table, one per line: a block that stands between blank lines."""

    __slots__ = ()


def _join_blocks(blocks: list[str]) -> str:
    """Paragraphs one per line; a table stands between blank lines."""
    out: list[str] = []
    for i, block in enumerate(blocks):
        if out and (isinstance(block, _TableBlock) or isinstance(blocks[i - 1], _TableBlock)):
            out.append("")
        out.append(block)
    return "\n".join(out) + "\n" if out else ""


def _body_blocks(body):
    """Paragraph and table elements of a body or cell in order, looking inside content controls (w:sdt)."""
    for child in body.iterchildren():
        if child.tag in (f"{{{_W}}}p", f"{{{_W}}}tbl"):
            yield child
        elif child.tag == f"{{{_W}}}sdt":
            content = child.find(f"{{{_W}}}sdtContent")
            if content is not None:
                yield from _body_blocks(content)


_RUN_TEXT_TAGS = {f"{{{_W}}}{t}" for t in ("t", "tab", "br", "cr", "noBreakHyphen", "softHyphen", "sym")}
_SKIP_INSIDE = {f"{{{_W}}}{t}" for t in ("txbxContent", "del", "moveFrom", "pPr", "rPr")} | {
    "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"}


def _paragraph_text(p) -> str:
    """Text of a paragraph as Word shows it: runs, hyperlinks, tracked insertions, fields' results; no deletions."""
    parts: list[str] = []

    def walk(node) -> None:
        for child in node.iterchildren():
            tag = child.tag
            if not isinstance(tag, str) or tag in _SKIP_INSIDE:
                continue
            if tag in _RUN_TEXT_TAGS:
                local = tag.rsplit("}", 1)[1]
                if local == "t":
                    parts.append(child.text or "")
                elif local == "tab":
                    parts.append(" ")
                elif local in ("br", "cr"):
                    parts.append("\n")
                elif local == "noBreakHyphen":
                    parts.append("-")
                continue
            walk(child)

    walk(p)
    lines = [_clean_inline(line) for line in "".join(parts).split("\n")]
    text = ""
    for line in lines:  # a manual line break inside a paragraph is layout, not a new paragraph
        if line:
            text = _join_wrapped(text, line)
    return text


def _style_name(paragraph) -> str:
    try:
        return (paragraph.style.name or "") if paragraph.style is not None else ""
    except (KeyError, ValueError, AttributeError):
        return ""


def _heading_level(paragraph, style_name: str) -> int:
    """1-9 for a heading paragraph (by style name, else outline level), 0 for body text."""
    found = _HEADING_STYLE.match(style_name.strip())
    if found:
        return int(found.group(1))
    level = _outline_level(paragraph._p.pPr)
    style = paragraph.style
    depth = 0
    while level is None and style is not None and depth < 10:
        found = _HEADING_STYLE.match((style.name or "").strip())
        if found:
            return int(found.group(1))
        level = _outline_level(style.element.pPr)
        style = style.base_style
        depth += 1
    return level + 1 if level is not None and level < 9 else 0


def _outline_level(ppr) -> int | None:
    if ppr is None:
        return None
    node = ppr.find(f"{{{_W}}}outlineLvl")
    if node is None:
        return None
    try:
        return int(node.get(f"{{{_W}}}val"))
    except (TypeError, ValueError):
        return None


def _table_rows(table) -> list[str]:
    """Each row as `cell | cell`, merged cells once, empty rows dropped."""
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if previous is not None and cell._tc is previous:
                continue  # a horizontally merged cell is listed once per grid column
            previous = cell._tc
            text = " ".join(t for t in (_paragraph_text(p._p) for p in cell.paragraphs) if t)
            cells.append(text)
        if any(cells):
            rows.append(" | ".join(cells).strip())
    return rows


class _Numbering:
    """Word's automatic list numbering (`一、`, `（一）`, `1.` made by Word, not typed): the label of a paragraph."""

    _FORMATS: ClassVar[dict] = {
        "decimal": lambda n: str(n),
        "decimalZero": lambda n: f"{n:02d}",
        "chineseCounting": lambda n: _chinese_number(n),
        "chineseCountingThousand": lambda n: _chinese_number(n),
        "ideographTraditional": lambda n: "甲乙丙丁戊己庚辛壬癸"[(n - 1) % 10],
        "ideographZodiac": lambda n: "子丑寅卯辰巳午未申酉戌亥"[(n - 1) % 12],
        "decimalEnclosedCircle": lambda n: chr(0x2460 + n - 1) if 1 <= n <= 20 else str(n),
        "decimalEnclosedCircleChinese": lambda n: chr(0x2460 + n - 1) if 1 <= n <= 20 else str(n),
        "decimalFullWidth": lambda n: "".join(chr(ord(c) + 0xFEE0) for c in str(n)),
        "lowerLetter": lambda n: chr(ord("a") + (n - 1) % 26),
        "upperLetter": lambda n: chr(ord("A") + (n - 1) % 26),
        "lowerRoman": lambda n: _roman(n).lower(),
        "upperRoman": lambda n: _roman(n),
    }

    def __init__(self, document):
        self.levels: dict[str, dict[int, tuple[str, str, int]]] = {}  # numId -> ilvl -> (fmt, lvlText, start)
        self.abstract_of: dict[str, str] = {}
        self.counters: dict[str, list[int]] = {}
        try:
            root = document.part.numbering_part.element
        except (NotImplementedError, KeyError, AttributeError):
            return
        abstract: dict[str, dict[int, tuple[str, str, int]]] = {}
        for node in root.findall(f"{{{_W}}}abstractNum"):
            levels = {}
            for lvl in node.findall(f"{{{_W}}}lvl"):
                fmt = lvl.find(f"{{{_W}}}numFmt")
                text = lvl.find(f"{{{_W}}}lvlText")
                start = lvl.find(f"{{{_W}}}start")
                levels[int(lvl.get(f"{{{_W}}}ilvl", "0"))] = (
                    fmt.get(f"{{{_W}}}val", "decimal") if fmt is not None else "decimal",
                    text.get(f"{{{_W}}}val", "") if text is not None else "",
                    int(start.get(f"{{{_W}}}val", "1")) if start is not None else 1,
                )
            abstract[node.get(f"{{{_W}}}abstractNumId")] = levels
        for num in root.findall(f"{{{_W}}}num"):
            ref = num.find(f"{{{_W}}}abstractNumId")
            if ref is not None and ref.get(f"{{{_W}}}val") in abstract:
                num_id = num.get(f"{{{_W}}}numId")
                self.abstract_of[num_id] = ref.get(f"{{{_W}}}val")
                self.levels[num_id] = abstract[ref.get(f"{{{_W}}}val")]

    def label(self, paragraph) -> str:
        num_id, ilvl = self._num_pr(paragraph)
        if num_id is None or num_id not in self.levels or ilvl not in self.levels[num_id]:
            return ""
        counters = self.counters.setdefault(self.abstract_of[num_id], [0] * 9)
        for deeper in range(ilvl + 1, 9):
            counters[deeper] = 0
        fmt, template, start = self.levels[num_id][ilvl]
        counters[ilvl] = counters[ilvl] + 1 if counters[ilvl] else start
        if fmt in ("bullet", "none") or not template:
            return ""

        def number(match: re.Match) -> str:
            level = int(match.group(1)) - 1
            level_fmt = self.levels[num_id].get(level, ("decimal", "", 1))[0]
            value = counters[level] or self.levels[num_id].get(level, ("", "", 1))[2]
            return self._FORMATS.get(level_fmt, str)(value)

        return re.sub(r"%([1-9])", number, template)

    @staticmethod
    def _num_pr(paragraph) -> tuple[str | None, int]:
        sources = [paragraph._p.pPr]
        style = paragraph.style
        depth = 0
        while style is not None and depth < 10:
            sources.append(style.element.pPr)
            style = style.base_style
            depth += 1
        num_id, ilvl = None, None
        for ppr in sources:
            if ppr is None:
                continue
            num_pr = ppr.find(f"{{{_W}}}numPr")
            if num_pr is None:
                continue
            id_node = num_pr.find(f"{{{_W}}}numId")
            lvl_node = num_pr.find(f"{{{_W}}}ilvl")
            if num_id is None and id_node is not None:
                num_id = id_node.get(f"{{{_W}}}val")
            if ilvl is None and lvl_node is not None:
                ilvl = int(lvl_node.get(f"{{{_W}}}val", "0"))
        if num_id == "0":  # numId 0 switches numbering off
            num_id = None
        return num_id, ilvl or 0


def _chinese_number(n: int) -> str:
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    if n < 20:
        return "十" + (digits[n % 10] if n % 10 else "")
    if n < 100:
        return digits[n // 10] + "十" + (digits[n % 10] if n % 10 else "")
    return str(n)


def _roman(n: int) -> str:
    out = ""
    for value, numeral in ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"),
                           (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")):
        while n >= value:
            out, n = out + numeral, n - value
    return out


# --- .pdf -------------------------------------------------------------------------------------------------------

# A page number alone on a line at the top or bottom of a page: `3`, `- 3 -`, `— 3 —`, `第3页`, `第 3 页 共 10 页`,
# `3/10`, `Page 3 of 10`.
_PAGE_NUMBER = re.compile(
    r"""^(?:
        [-—–－~·•]\s*\d{1,4}\s*[-—–－~·•]
      | 第\s*\d{1,4}\s*页(?:\s*[,，/]?\s*共\s*\d{1,4}\s*页)?
      | 共\s*\d{1,4}\s*页\s*[,，]?\s*第\s*\d{1,4}\s*页
      | \d{1,4}\s*/\s*\d{1,4}
      | (?:page|p\.)\s*\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?
    )$""",
    re.VERBOSE | re.IGNORECASE,
)
_BARE_NUMBER = re.compile(r"^\d{1,4}$")


@dataclass(slots=True)
class _Line:
    text: str  # as extracted, leading spaces kept (they are an indent)
    x: float | None  # where the line starts (None: not known)
    y: float | None  # its baseline
    size: float  # font size in page units (0: not known)
    end: float | None = None  # where its last piece of text ends (estimated from character widths)

    @property
    def stripped(self) -> str:
        return _clean_inline(self.text)

    def right(self) -> float | None:
        return self.end if self.x is not None and self.size else None


def _text_width(text: str) -> float:
    """Width of `text` in ems: Chinese characters (and “”…— among them) are one em, Latin ones about half."""
    cjk = any(unicodedata.east_asian_width(ch) in "WF" for ch in text)
    wide = "WFA" if cjk else "WF"
    return sum(1.0 if unicodedata.east_asian_width(ch) in wide else 0.3 if ch == " " else 0.5 for ch in text)


def read_pdf(data: bytes, source: str) -> Extracted:
    """Text of every page in reading order, lines re-joined into paragraphs, page furniture removed.

    Raises:
        IngestError: damaged PDF, encrypted PDF that needs a password, or no text layer (scanned pages).
    """
    try:
        from pypdf import PasswordType, PdfReader
        from pypdf.errors import DependencyError, PdfReadError
    except ImportError as e:  # pragma: no cover - dependency missing
        raise IngestError(source, "reading .pdf needs the pypdf package") from e
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as e:
                raise IngestError(source, f"encrypted PDF that needs the cryptography package to open: {e}") from e
            if opened == PasswordType.NOT_DECRYPTED:
                raise IngestError(source, "encrypted PDF: it needs a password to open; save an unprotected copy")
        pages = list(reader.pages)
    except IngestError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as e:
        raise IngestError(source, f"damaged PDF: {type(e).__name__}: {e}") from e
    if not pages:
        raise IngestError(source, "PDF has no pages")

    page_lines: list[list[_Line]] = []
    errors: list[str] = []
    for number, page in enumerate(pages, 1):
        try:
            page_lines.append(_pdf_page_lines(page))
        except Exception as e:  # noqa: BLE001 - one bad page (odd font, broken stream) must not lose the rest
            errors.append(f"page {number}: {type(e).__name__}: {e}")
            page_lines.append([])
    if not any(line.stripped for lines in page_lines for line in lines):
        if errors:
            raise IngestError(source, f"no text could be read from the PDF ({errors[0]})")
        raise IngestError(source, "no text layer: needs OCR (the PDF pages are images, e.g. a scan)")

    body = _drop_page_furniture(page_lines)
    try:
        page_width = float(pages[0].mediabox.width)
    except (KeyError, TypeError, ValueError, AttributeError):
        page_width = None
    text, page_starts = _assemble_pdf_text(body, page_width)
    # The info dictionary's creation date is when the file was exported, not when the speech was given: no date hint.
    return Extracted(text, page_starts=page_starts, title=_pdf_info(reader, "title"), paged=True)


def _pdf_info(reader, key: str) -> str | None:
    """The title from the PDF's info dictionary, None when missing or malformed."""
    try:
        info = reader.metadata
        if info is None:
            return None
        return _clean_title(info.title) if key == "title" else None
    except Exception:  # noqa: BLE001 - a malformed info dictionary or date string: no hint, the text stays
        return None


def _pdf_page_lines(page) -> list[_Line]:
    """Lines of one page in pypdf's reading order, each with its start, end, baseline and font size.

    Lines are rebuilt from the positions of the pieces of text, not from pypdf's line breaks: some producers draw
    every character (or word) as a text object of its own, which pypdf puts on lines of their own. Text set at
    another angle than most of the page's (a diagonal watermark, a stamp) is left out.
    """
    pieces: list[tuple[str, float, float, float, int]] = []

    def visit(text, cm, tm, _font, font_size) -> None:
        if not text:
            return
        a = tm[0] * cm[0] + tm[1] * cm[2]
        b = tm[0] * cm[1] + tm[1] * cm[3]
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        scale = math.hypot(tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3])
        angle = round(math.degrees(math.atan2(b, a)) / 5) * 5 % 360 if (a or b) else 0
        pieces.append((text, x, y, abs(font_size * scale) if scale else abs(font_size), angle))

    plain = page.extract_text(visitor_text=visit) or ""
    weights: Counter[int] = Counter()
    for text, *_rest, angle in pieces:
        weights[angle] += len(text.strip())
    if not pieces or not weights or weights.most_common(1)[0][0] != 0:
        # No positions, or a page whose text runs sideways: pypdf's own lines, without geometry.
        return [_Line(t, None, None, 0.0) for t in plain.split("\n") if t.strip()]

    lines: list[_Line] = []
    current: _Line | None = None
    for text, x, y, size, angle in pieces:
        if angle != 0:
            continue
        parts = text.split("\n")
        first = True  # the piece's position is where its first part starts
        for i, part in enumerate(parts):
            if not part.strip() and not (first and part):
                if i < len(parts) - 1 and not first and current is not None:
                    lines.append(current)  # an empty line inside a piece
                    current = None
                continue
            if first:
                same_line = (current is not None and current.y is not None and current.end is not None
                             and abs(y - current.y) <= 0.5 * max(size, current.size)
                             and x >= current.end - 1.5 * size)
                if same_line:
                    gap = x - current.end
                    # A word space between Latin letters; digits of one number and Chinese characters stay together
                    # even when justified text spreads them out.
                    letters = re.match(r"[A-Za-z]", current.text[-1:]) and re.match(r"[A-Za-z]", part[:1])
                    digits = current.text[-1:].isdigit() and part[:1].isdigit()
                    joiner = " " if gap > (1.5 if digits else 0.8) * size or (letters and gap > 0.4 * size) else ""
                    if current.text.endswith(" ") or part.startswith(" "):
                        joiner = ""
                    current.text += joiner + part
                    current.end = x + _text_width(part) * size
                else:
                    if current is not None:
                        lines.append(current)
                    current = _Line(part, x, y, size, x + _text_width(part.rstrip()) * size)
                first = False
            else:
                # A second line inside one piece: its start is not known; its baseline is guessed.
                if current is not None:
                    lines.append(current)
                current = _Line(part, None, y - i * size * 1.2, size)
    if current is not None:
        lines.append(current)
    return [line for line in lines if line.stripped]


def _furniture_key(text: str) -> str:
    return re.sub(r"\d+", "#", re.sub(r"\s+", "", text))


def _is_page_number(text: str, page_count: int) -> bool:
    text = re.sub(r"\s+", " ", text).strip()
    if _BARE_NUMBER.match(text):
        return 0 < int(text) <= page_count + 20
    return bool(_PAGE_NUMBER.match(text))


def _drop_page_furniture(pages: list[list[_Line]]) -> list[list[_Line]]:
    """Remove running headers/footers (the same line at the top or bottom of most pages) and page numbers."""
    count = len(pages)
    edge = 3  # lines looked at from each end of a page

    def order(lines: list[_Line]) -> list[int]:  # top of the page first
        if all(line.y is not None for line in lines):
            return sorted(range(len(lines)), key=lambda i: -lines[i].y)
        return list(range(len(lines)))

    orders = [order(lines) for lines in pages]
    seen: Counter[str] = Counter()
    for lines, idx in zip(pages, orders):
        seen.update({_furniture_key(lines[i].stripped) for i in idx[:edge] + idx[-edge:]})
    # Odd and even pages may carry different running heads, and a title page none: 40% of the pages is enough.
    threshold = max(2, math.ceil(count * 0.4)) if count >= 2 else math.inf
    sizes = Counter(round(line.size) for lines in pages for line in lines if line.size)
    body_size = sizes.most_common(1)[0][0] if sizes else 0.0

    def furniture(line: _Line) -> bool:
        if _is_page_number(line.stripped, count):
            return True
        # A running head is not set larger than the body (a big title on page 1 that repeats it is content), and
        # it is no sentence.
        return (seen[_furniture_key(line.stripped)] >= threshold and not (body_size and line.size > 1.1 * body_size)
                and not line.stripped.endswith(("。", "！", "？", ".")))

    kept_pages = []
    for lines, idx in zip(pages, orders):
        drop: set[int] = set()
        for sequence in (idx[:edge], list(reversed(idx))[:edge]):
            for i in sequence:
                if i in drop:
                    continue
                if not furniture(lines[i]):
                    break
                drop.add(i)
        kept_pages.append([line for i, line in enumerate(lines) if i not in drop])
    return kept_pages


def _assemble_pdf_text(pages: list[list[_Line]], page_width: float | None = None) -> tuple[str, tuple[int, ...]]:
    """Join lines into paragraphs across line wraps and page breaks; offsets where pages 2, 3, ... start.

    A line ends its paragraph when it stops short of the right margin, when the next line is indented, centred on its
    own, further down than the line pitch or a heading (`一、`, `（一）`...), or when it ends a sentence (。！？；：) in a
    document whose paragraphs are not marked by indents. Without positions only the last two rules apply.
    """
    layout = _Layout([line for lines in pages for line in lines], page_width)
    parts: list[str] = []
    length = 0
    page_starts: list[int] = []
    pending = 0  # pages whose start is not placed yet (the page just begun, and empty pages before it)
    previous: _Line | None = None
    previous_page = -1
    paragraph = ""  # the current paragraph's text so far
    for page_index, lines in enumerate(pages):
        if page_index > 0:
            pending += 1
        for line in lines:
            text = line.stripped
            if previous is None:
                sep = ""
            elif layout.new_paragraph(previous, line, paragraph, same_page=previous_page == page_index):
                sep = "\n"
            else:
                sep = _wrap_joiner(paragraph[-1:], text[:1])
            parts.append(sep)
            length += len(sep)
            page_starts.extend([length] * pending)
            pending = 0
            parts.append(text)
            length += len(text)
            paragraph = text if sep == "\n" or previous is None else paragraph + sep + text
            previous, previous_page = line, page_index
    parts.append("\n")
    length += 1
    page_starts.extend([length - 1] * pending)
    return "".join(parts), tuple(page_starts)


class _Layout:
    """Margins, line pitch and paragraph conventions of a PDF's text, from the positions of its lines."""

    def __init__(self, lines: list[_Line], page_width: float | None = None):
        placed = [line for line in lines if line.x is not None and line.size]
        self.left = self.right = self.pitch = None
        self.uses_indent = False
        if not placed:
            return
        self.left = Counter(round(line.x) for line in placed).most_common(1)[0][0]
        rights = sorted(line.right() for line in placed)
        self.right = rights[int(0.9 * (len(rights) - 1))]
        if len(rights) < 20 and page_width:  # too few lines to see the margin: assume margins of equal width
            self.right = max(self.right, page_width - self.left)
        steps = Counter(round(a.y - b.y) for a, b in pairwise(placed)
                        if a.y is not None and b.y is not None and 0 < a.y - b.y < 4 * a.size)
        self.pitch = steps.most_common(1)[0][0] if steps else None
        # Do paragraphs start indented? Look at the lines that follow a clearly short (paragraph-ending) line.
        after_short = [b for a, b in pairwise(placed) if self.short(a, generous=True) and not self.centred(a)]
        indented = sum(1 for b in after_short if self.indented(b))
        self.uses_indent = len(after_short) >= 2 and indented >= 0.5 * len(after_short)

    def slack(self, line: _Line) -> float:
        return max(2.0 * line.size, 0.06 * (self.right - self.left)) if self.left is not None else 2.0 * line.size

    def full(self, line: _Line) -> bool:
        """The line runs to the right margin, so its paragraph may go on in the next line."""
        end = line.right()
        if end is None or self.right is None:
            return True
        return end >= self.right - self.slack(line)

    def indented(self, line: _Line) -> bool:
        if re.match(r"^(?:\u3000|[ \xa0]{2,})", line.text):
            return True
        return line.x is not None and self.left is not None and line.x > self.left + 1.5 * line.size

    def centred(self, line: _Line) -> bool:
        """Set in the middle of the line with space on both sides (a title), not a full line that is indented."""
        end = line.right()
        if end is None or self.left is None or line.x <= self.left + 1.5 * line.size:
            return False
        if end >= self.right - 1.5 * line.size:
            return False
        return abs((line.x + end) / 2 - (self.left + self.right) / 2) <= line.size

    def short(self, line: _Line, generous: bool = False) -> bool:
        """The line stops before the right margin: `generous` allows for a misjudged width (mixed fonts)."""
        end = line.right()
        if end is None or self.right is None:
            return False
        slack = self.slack(line)
        if generous:
            slack = max(2 * slack, 0.15 * (self.right - self.left))
        return end < self.right - slack

    def new_paragraph(self, previous: _Line, line: _Line, paragraph: str, same_page: bool) -> bool:
        text = line.stripped
        if _is_heading(text):
            return True
        ends = _ends_sentence(paragraph)
        if self.left is None or previous.x is None or line.x is None:  # no positions: the text alone decides
            return ends
        if (same_page and self.pitch and previous.y is not None and line.y is not None
                and previous.y - line.y > 1.45 * max(self.pitch, 1.2 * line.size)):
            return True  # paragraph spacing
        if self.centred(line):  # goes on a title that filled its line, else starts a centred block
            return self.short(previous) or ends
        if self.indented(line):
            return True
        if ends and (not self.uses_indent or self.short(previous)):
            return True
        return self.short(previous, generous=True)


# --- .html ------------------------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_\-]+)""", re.IGNORECASE)
_GB_ALIASES = {"gb2312", "gbk", "gb_2312-80", "gb_2312", "x-gbk", "cp936", "euc-cn", "gb18030", "hz-gb-2312"}
_DATE_VALUE = r"\d{4}(?:-|/|\.|年)\d{1,2}(?:-|/|\.|月)\d{1,2}日?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?"
_DATE_LINES = (
    re.compile(rf"(?:发布时间|信息时间|发布日期|发文日期|成文日期|更新时间)\s*[:：]\s*({_DATE_VALUE})"),
    re.compile(rf"(?<!当前)(?:时间|日期)\s*[:：]\s*({_DATE_VALUE})"),
)
_META_DATE_NAMES = ("article:published_time", "pubdate", "publishdate", "publish_date", "publishtime",
                    "datepublished", "dc.date", "dc.date.issued", "dcterms.issued", "dcterms.created",
                    "og:published_time", "firstpublishedtime", "created")
_META_TITLE_NAMES = ("articletitle", "og:title", "dc.title")
_TITLE_SITE_SUFFIX = re.compile(r"\s*(?:[_|｜]|\s[-–—]\s).*$")


def decode_html(data: bytes, source: str) -> str:
    """Decode a web page by its BOM, its declared charset (meta/XML declaration), else UTF-8 or GB18030.

    Raises:
        IngestError: the bytes decode as none of them.
    """
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            return data[len(bom):].decode(encoding, errors="replace")
    head = data[:4096]
    declared = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    candidates: list[str] = []
    if declared:
        name = declared.group(1).decode("ascii", "ignore").lower()
        candidates.append("gb18030" if name in _GB_ALIASES else name)
    candidates += ["utf-8", "gb18030"]
    for encoding in candidates:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is not None:
            return str(best)
    except ImportError:  # pragma: no cover
        pass
    raise IngestError(source, "cannot decode the web page (no usable charset declared; not UTF-8 or GB18030)")


def read_html(data: bytes, source: str) -> Extracted:
    """Main content of a web page as text: its title and publish date first, then the article body.

    Raises:
        IngestError: undecodable page, or no main content.
    """
    try:
        import trafilatura
        from lxml import html as lxml_html
    except ImportError as e:  # pragma: no cover - dependency missing
        raise IngestError(source, "reading .html needs the trafilatura package") from e
    markup = decode_html(data, source)
    markup = re.sub(r"^\s*<\?xml[^>]*>", "", markup)
    try:
        tree = lxml_html.fromstring(markup)
    except Exception as e:
        raise IngestError(source, f"cannot parse the web page: {type(e).__name__}: {e}") from e
    page_title, page_date, date_line = _html_metadata(tree)
    crumb = _breadcrumb(tree)

    body = None
    meta_title = meta_date = None
    for recall in (False, True):
        try:
            result = trafilatura.bare_extraction(
                markup, with_metadata=True, include_tables=True, include_comments=False, include_images=False,
                include_links=False, include_formatting=False, deduplicate=False, favor_recall=recall,
                output_format="python", date_extraction_params={"extensive_search": False, "original_date": True},
                config=_trafilatura_config())
        except Exception:  # noqa: BLE001 - trafilatura gives up on some broken pages
            result = None
        if result is not None and result.body is not None and "".join(result.body.itertext()).strip():
            body, meta_title, meta_date = result.body, result.title, result.date
            break
    if body is None:
        raise IngestError(source, "no main content found in the web page")

    blocks = _trafilatura_blocks(body)
    # trafilatura drops <h1>-<h6> when it finds the article by its fallbacks (a `<div id="zoom">` of many government
    # sites): where its text sits in one element of the page, that element is read instead, headings and all.
    container = _main_container(tree, blocks)
    if container is not None:
        own = _html_blocks(container)
        if _similar_content(own, blocks):
            blocks = own
    # A breadcrumb inside the article box goes first too, out of the title block (see below).
    inside = [b for b in blocks[:5] if _CRUMB.match(b)]
    if inside:
        crumb = inside[0]
        blocks = [b for b in blocks if b not in inside]
    first_heading = match_heading(blocks[0]) if blocks and blocks[0].startswith("#") else None
    article_heading = re.sub(r"^#+\s*", "", blocks[0]) if first_heading and first_heading.rank < 10 else None
    title = _clean_title(page_title or article_heading or _clean_title(_strip_site(meta_title))
                         or _fallback_title(tree))
    date = page_date or meta_date
    lines: list[str] = []
    first = re.sub(r"^#+\s*", "", blocks[0]) if blocks else ""
    if title and first.strip() == title:
        lines.append(blocks.pop(0))
    elif title and _squeeze(title) not in _squeeze("".join(blocks[:3])):  # else the article opens with it already
        lines.append(title)
    opening = "\n".join(blocks[:3])
    if date and date not in opening and (not date_line or date_line not in opening):
        lines.append(date_line or f"发布时间：{date}")
    if not blocks and not lines:
        raise IngestError(source, "no main content found in the web page")
    # The breadcrumb goes first: `qa.ingest` marks it as page furniture (no passage holds it), and it names the site's
    # district or county (`当前位置: 首页 > 政务信息 > 魏都要闻`), which the document's place is read from.
    text = _join_blocks(([crumb] if crumb else []) + lines + blocks)
    return Extracted(text, title=title, date=date)


_TRAFILATURA_CONFIG = None


def _trafilatura_config():
    """trafilatura's defaults, except that a short notice (under 250 characters) is still an article: below that size
    trafilatura would otherwise fall back to the text of the whole page, navigation included."""
    global _TRAFILATURA_CONFIG
    if _TRAFILATURA_CONFIG is None:
        from trafilatura.settings import use_config

        config = use_config()
        config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "40")
        _TRAFILATURA_CONFIG = config
    return _TRAFILATURA_CONFIG


def _html_metadata(tree) -> tuple[str | None, str | None, str | None]:
    """Title (from meta tags), publish date and the page's own date line (`信息时间:2020-04-30 08:40`)."""
    metas: dict[str, str] = {}
    for meta in tree.iter("meta"):
        name = (meta.get("name") or meta.get("property") or meta.get("itemprop") or "").strip().lower()
        content = (meta.get("content") or "").strip()
        if name and content and name not in metas:
            metas[name] = content
    title = next((metas[n] for n in _META_TITLE_NAMES if metas.get(n)), None)
    date = date_line = None
    for name in _META_DATE_NAMES:
        if metas.get(name):
            date = _normalize_date(metas[name])
            if date:
                break
    visible = _visible_text_lines(next(iter(tree.iter("body")), tree))
    for pattern in _DATE_LINES:
        found = next((m for m in map(pattern.search, visible) if m), None)
        if found:
            date_line = found.group(0).strip()
            date = date or _normalize_date(found.group(1))
            break
    return _one_line(title), date, date_line


_CRUMB = re.compile(r"^\s*(?:当前位置|您(?:现在)?的位置)\s*[:：]")  # as qa.ingest marks it


def _breadcrumb(tree) -> str | None:
    """`当前位置: 首页 > 政务信息 > 魏都要闻` as one line, when the page has one."""
    for el in next(iter(tree.iter("body")), tree).iter():
        if isinstance(el.tag, str) and el.text and _CRUMB.match(el.text):
            line = _clean_inline(re.sub(r"\s+", " ", el.text_content()))
            return line if len(line) <= 120 else None
    return None


def _fallback_title(tree) -> str | None:
    """The page's <h1> when it has exactly one, else its <title> without the site name."""
    h1s = [el.text_content().strip() for el in tree.iter("h1") if el.text_content().strip()]
    if len(h1s) == 1 and len(h1s[0]) <= 80:
        return _one_line(h1s[0])
    title_el = next(iter(tree.iter("title")), None)
    if title_el is not None and title_el.text_content().strip():
        return _strip_site(title_el.text_content().strip())
    return _one_line(h1s[0]) if h1s else None


def _strip_site(title: str | None) -> str | None:
    """`我区召开全区领导干部会议_魏都区人民政府` -> `我区召开全区领导干部会议`."""
    return _one_line(_TITLE_SITE_SUFFIX.sub("", title)) if title else None


def _one_line(text: str | None) -> str | None:
    return re.sub(r"\s+", " ", text).strip() or None if text else None


def _visible_text_lines(body) -> list[str]:
    lines = []
    for el in body.iter():
        if el.tag in ("script", "style", "noscript") or not isinstance(el.tag, str):
            continue
        for piece in (el.text, el.tail):
            if piece and piece.strip():
                lines.append(piece.strip())
    return lines


def _normalize_date(value: str) -> str | None:
    """`2020-04-30T08:40:00+08:00` -> `2020-04-30 08:40`; `2020/4/30` -> `2020-04-30`; `2020年4月30日` kept."""
    value = value.strip()
    if re.match(r"^\d{4}年\d{1,2}月\d{1,2}日", value):
        return re.match(r"^\d{4}年\d{1,2}月\d{1,2}日", value).group(0)
    found = re.match(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T\s]+(\d{1,2}):(\d{2}))?", value)
    if not found:
        return None
    year, month, day, hour, minute = found.groups()
    date = f"{year}-{int(month):02d}-{int(day):02d}"
    if hour is not None and not (hour in ("0", "00") and minute == "00"):
        date += f" {int(hour):02d}:{minute}"
    return date


def _trafilatura_blocks(body) -> list[str]:
    """trafilatura's main-content tree as text blocks: headings as `#` lines, list items, tables as row lines."""
    blocks: list[str] = []

    def text_of(el) -> str:
        pieces: list[str] = []

        def walk(node) -> None:
            if node.text:
                pieces.append(node.text)
            for child in node:
                if child.tag == "lb":
                    pieces.append("\n")
                elif child.tag not in ("table", "list"):
                    walk(child)
                if child.tail:
                    pieces.append(child.tail)

        walk(el)
        text = ""
        for line in "".join(pieces).split("\n"):
            line = _clean_inline(line)
            if line:
                text = _join_wrapped(text, line)
        return text

    def visit(el) -> None:
        tag = el.tag
        if tag == "head":
            text = text_of(el)
            level = re.match(r"h([1-6])", el.get("rend") or "")
            if text:
                blocks.append(f"{'#' * (int(level.group(1)) if level else 2)} {text}")
        elif tag == "table":
            rows = []
            for row in el.iter("row"):
                cells = [text_of(cell) for cell in row if cell.tag == "cell"]
                if any(cells):
                    rows.append(" | ".join(cells).strip())
            if rows:
                blocks.append(_TableBlock("\n".join(rows)))
        elif tag == "list":
            for item in el:
                if item.tag == "item":
                    text = text_of(item)
                    if text:
                        blocks.append(text)
                    for nested in item:
                        if nested.tag in ("list", "table"):
                            visit(nested)
        elif tag in ("p", "quote", "code", "item", "cell"):
            text = text_of(el)
            if text:
                blocks.append(text)
            for nested in el:
                if nested.tag in ("list", "table"):
                    visit(nested)
        else:
            if el.text and el.text.strip():
                blocks.append(_clean_inline(el.text))
            for child in el:
                visit(child)
                if child.tail and child.tail.strip():
                    blocks.append(_clean_inline(child.tail))

    for child in body:
        visit(child)
        if child.tail and child.tail.strip():
            blocks.append(_clean_inline(child.tail))
    return [b for b in blocks if b]


# --- main content as the page has it --------------------------------------------------------------------------

_SKIP_TAGS = {"script", "style", "noscript", "nav", "footer", "form", "button", "select", "option", "iframe",
              "object", "svg", "input", "textarea", "template", "head", "title"}
_BLOCK_TAGS = {"p", "div", "section", "article", "main", "header", "blockquote", "pre", "ul", "ol", "li", "dl", "dt",
               "dd", "center", "figure", "figcaption", "address", "hr", "table", "tr", "td", "th", "tbody", "thead",
               "h1", "h2", "h3", "h4", "h5", "h6"}
_HIDDEN = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _main_container(tree, blocks: list[str]):
    """The deepest element of the page that holds (nearly) every paragraph trafilatura kept, or None."""
    keys = [_squeeze(re.sub(r"^#+\s*", "", b.split("\n")[0]))[:24] for b in blocks]
    keys = [k for k in keys if len(k) >= 6]
    if len(keys) < 2:
        return None
    body = next(iter(tree.iter("body")), None)
    if body is None:
        return None
    scored = []
    for el in body.iter():
        if not isinstance(el.tag, str) or el.tag in _SKIP_TAGS or el.tag in ("p", "span", "a", "br"):
            continue
        text = _squeeze(el.text_content())
        hits = sum(1 for k in keys if k in text)
        if hits >= 2:
            scored.append((hits, len(text), el))
    if not scored:
        return None
    best = max(h for h, _, _ in scored)
    allowed = best // 10  # a stray paragraph (a title above the article box) may sit outside it
    return min((item for item in scored if item[0] >= max(2, best - allowed)), key=lambda item: item[1])[2]


def _similar_content(own: list[str], blocks: list[str]) -> bool:
    """The element's own text is trafilatura's text plus little more (headings, a date line), not a page of links."""
    mine, theirs = sum(len(_squeeze(b)) for b in own), sum(len(_squeeze(b)) for b in blocks)
    return theirs > 0 and theirs * 0.9 <= mine <= theirs * 1.3 + 150


def _html_blocks(container) -> list[str]:
    """Text blocks of a page element in order: paragraphs, headings as `#` lines, list items, tables as row lines."""
    blocks: list[str] = []
    line: list[str] = []

    def flush() -> None:
        text = ""
        for piece in "".join(line).split("\n"):
            piece = _clean_inline(piece)
            if piece:
                text = _join_wrapped(text, piece)
        if text:
            blocks.append(text)
        line.clear()

    def visit(el) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if not tag or tag in _SKIP_TAGS or _HIDDEN.search(el.get("style") or ""):
            return
        if re.fullmatch(r"h[1-6]", tag):
            flush()
            text = _clean_inline(re.sub(r"\s+", " ", el.text_content()))
            if text:
                blocks.append(f"{'#' * int(tag[1])} {text}")
            return
        if tag == "table" and _data_table(el):
            flush()
            rows = []
            for tr in el.iter("tr"):
                cells = [_clean_inline(re.sub(r"\s+", " ", c.text_content())) for c in tr if c.tag in ("td", "th")]
                if any(cells):
                    rows.append(" | ".join(cells).strip())
            if rows:
                blocks.append(_TableBlock("\n".join(rows)))
            return
        if tag == "br":
            line.append("\n")
            return
        block = tag in _BLOCK_TAGS
        if block:
            flush()
        if el.text:
            line.append(re.sub(r"\s+", " ", el.text))
        for child in el:
            visit(child)
            if child.tail:
                line.append(re.sub(r"\s+", " ", child.tail))
        if block:
            flush()

    visit(container)
    flush()
    return blocks


def _data_table(table) -> bool:
    """A table of data (short cells in several columns), not a layout grid holding the page's paragraphs."""
    cells = [c for tr in table.iter("tr") for c in tr if c.tag in ("td", "th")]
    if not cells or all(len(tr.findall("td")) + len(tr.findall("th")) <= 1 for tr in table.iter("tr")):
        return False
    return sum(1 for c in cells if len(_squeeze(c.text_content())) <= 80) >= 0.8 * len(cells)
