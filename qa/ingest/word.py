"""Word (.docx) reader: paragraphs in order, heading styles and list numbering as outline, tables as rows.

Headers and footers are never read. See `qa.ingest.extracted` for the text conventions every reader follows.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import ClassVar

from qa.errors import IngestError
from qa.ingest.extracted import (
    Extracted,
    TableBlock,
    clean_inline,
    clean_title,
    date_of,
    join_blocks,
    join_wrapped,
)

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

    text = join_blocks(blocks)
    if not text.strip():
        raise IngestError(source, "Word document has no text")
    try:
        props = document.core_properties
        title, created = props.title, props.created
    except Exception:  # noqa: BLE001 - unreadable core properties are no reason to lose the document
        title = created = None
    if created is not None and created.replace(tzinfo=None) == _TEMPLATE_STAMP:
        created = None
    return Extracted(text, title=clean_title(title), date=date_of(created))


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
                blocks.append(TableBlock("\n".join(rows)))
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
    lines = [clean_inline(line) for line in "".join(parts).split("\n")]
    text = ""
    for line in lines:  # a manual line break inside a paragraph is layout, not a new paragraph
        if line:
            text = join_wrapped(text, line)
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
