"""What the Word, PDF and web-page readers return, and the text conventions they share.

Each reader turns the file's bytes into plain text in the project's text conventions, then hands it to
`qa.ingest.document.document_from_text`, so outline, boilerplate, metadata, chunking and citations work as for `.txt`:

- one paragraph per line; a table is its own block of lines (one row per line, cells joined by ` | `) between blank
  lines;
- headings that the format marks by style (Word `Heading 1`-`6`, `标题 1`-`6`, an outline level; HTML `<h1>`-`<h6>`)
  become Markdown lines, `#` count = level, so `qa.ingest.sections` ranks them; numbering written in the heading text
  (`一、`, `（一）`, ...) still decides its level, as it does for `.md` files;
- page furniture is not content: Word headers and footers are never read; PDF running headers/footers, page numbers
  and watermarks are removed; navigation, share/print links and footers of web pages are left out (a breadcrumb,
  `当前位置: 首页 > 政务信息 > 魏都要闻`, is kept as the first line, where `qa.ingest.document` marks it as boilerplate that no
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

import re
from dataclasses import dataclass
from datetime import datetime

from qa.ingest.sections import LEAD_RANK, match_heading

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


def wrap_joiner(left: str, right: str) -> str:
    """What goes between two pieces of one paragraph that a line wrap cut apart: nothing between Chinese characters
    (nor between the digits of a number cut in two), a space between two Latin words."""
    if left[-1:].isdigit() and right[:1].isdigit():
        return ""
    return " " if _LATIN.match(left[-1:]) and _LATIN.match(right[:1]) else ""


def join_wrapped(left: str, right: str) -> str:
    """Re-join two pieces of one paragraph (see `wrap_joiner`)."""
    return left + wrap_joiner(left, right) + right


def clean_inline(text: str) -> str:
    """One line: control characters out, tabs and runs of spaces to one space, trimmed."""
    text = "".join(" " if ch in "\t\r\n\x0b\x0c" else ch for ch in text if ch >= " " or ch in "\t\r\n\x0b\x0c")
    return re.sub(r"[ \xa0]{2,}", " ", text).strip(" \xa0\u3000")


def ends_sentence(line: str) -> bool:
    stripped = line.rstrip().rstrip(_CLOSERS)
    return bool(stripped) and stripped[-1] in _SENTENCE_END


def is_heading_line(line: str) -> bool:
    found = match_heading(line)
    return found is not None and found.rank < LEAD_RANK


def clean_title(title: str | None) -> str | None:
    if not title:
        return None
    title = _FILE_EXT.sub("", _WORD_PREFIX.sub("", re.sub(r"\s+", " ", title))).strip()
    if _JUNK_TITLE.match(title) or len(title) > 120 or re.match(r"^(?:当前位置|您(?:现在)?的位置)", title):
        return None
    return title


def date_of(value: datetime | None) -> str | None:
    if value is None:
        return None
    return f"{value.year}-{value.month:02d}-{value.day:02d}"


class TableBlock(str):
    """The rows of a table, one per line: a block that stands between blank lines."""

    __slots__ = ()


def join_blocks(blocks: list[str]) -> str:
    """Paragraphs one per line; a table stands between blank lines."""
    out: list[str] = []
    for i, block in enumerate(blocks):
        if out and (isinstance(block, TableBlock) or isinstance(blocks[i - 1], TableBlock)):
            out.append("")
        out.append(block)
    return "\n".join(out) + "\n" if out else ""
