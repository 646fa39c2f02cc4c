"""Text -> `Document`: boilerplate spans, the title block and its metadata (title, speaker, date, place), outline.

The original text is kept exactly as decoded (only a UTF-8 BOM is dropped) so that every citation offset points
into what the user's file says. Boilerplate is recorded as spans to skip, never cut out of the text.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

from qa.errors import IngestError
from qa.ingest.sections import HeadingMatch, detect_sections, match_heading, strip_heading_markup
from qa.types import Document, DocumentMeta

# Whole lines that are web-page furniture, never content.
_BOILERPLATE_LINE = re.compile(
    r"""^\s*(?:
        当前位置\s*[:：]                                  # breadcrumb: 当前位置: 首页 > 政务信息 > ...
      | 您(?:现在)?的位置\s*[:：]
      | (?:上一篇|下一篇|上一条|下一条)\s*[:：]           # article navigation
      | 来源\s*[:：]\s*网络整理                           # scraped-site disclaimer
      | 免责声明\s*[:：]
      | (?:责任编辑|编辑|审核|校对)\s*[:：]\s*\S{0,12}\s*$  # editor credits
      | (?:分享到|扫一扫|返回顶部|打印本页|关闭窗口)
      | (?:【\s*(?:字号|我要打印|打印|关闭|大|中|小)\s*】\s*)+$
    )""",
    re.VERBOSE,
)


# Inside a metadata line such as `【信息来源:【信息时间:2020-04-30 08:40 阅读次数: 】【字号 】【我要打印】【关闭`, the
# page controls start at the first of these markers; the date before them is content (people ask when it was published).
_INLINE_CONTROLS = re.compile(r"阅读次数|浏览次数|点击数|【\s*字号|【\s*我要打印|【\s*打印|【\s*关闭|【\s*分享")


_DATE_PATTERNS = (
    re.compile(r"(?:信息时间|发布时间|发布日期|时间|日期)\s*[:：]\s*(\d{4}-\d{1,2}-\d{1,2}(?:\s+\d{1,2}:\d{2})?)"),
    re.compile(r"(\d{4}年\d{1,2}月\d{1,2}日)"),
    re.compile(r"(\d{4}-\d{1,2}-\d{1,2}(?:\s+\d{1,2}:\d{2})?)"),
)


# A speaker line is a bare 2-4 character Chinese name, often spaced out for layout: `宋 晓 东`.
_SPEAKER_LINE = re.compile(r"^[\u4e00-\u9fff](?:[ \u3000\xa0]*[\u4e00-\u9fff]){1,3}$")


_SALUTATION = re.compile(r"^(?:各位)?(?:同志们|同事们|各位代表|各位领导|女士们|先生们)[，,：:！!]?")


_SENTENCE_END_CHARS = "。！？!?；;…"


# `县委扩大会议上的讲话5600字`: a scraped listing title with its word count appended.
_WORD_COUNT_SUFFIX = re.compile(r"\s*\d{3,6}\s*字$")


# A district or county name: two characters + 区/县, not the start of 县城/区域/区委… and not 全区/我区/本县….
_DOC_KIND_SUFFIX = re.compile(r"(?:讲话|报告|发言|致辞|通知|意见|决定|纪要|方案|总结|公告|通报)$")


_PLACE = re.compile(r"([\u4e00-\u9fff]{2}[区县])(?![城域级委政间划内外])")


_NOT_PLACE_CHARS = set("全我本该各每城园社疫示合街辖地山市省")


_NO_MATCH = HeadingMatch(99, "", 0)


def document_id(text: str) -> str:
    """Stable id from the content: the same text gives the same id wherever and however encoded."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def document_from_text(
    text: str,
    source: str,
    title: str | None = None,
    *,
    page_starts: tuple[int, ...] | list[int] = (),
    paged: bool = False,
    title_hint: str | None = None,
    date_hint: str | None = None,
) -> Document:
    """Build a `Document` from decoded text: boilerplate spans, header metadata, title and outline.

    Args:
        title: the title to use, whatever the text says.
        page_starts: offsets in `text` where pages 2, 3, ... start (PDF).
        paged: the format has pages (PDF), so every passage gets a page number, 1 for a one-page file.
        title_hint / date_hint: what a file's properties say (Word core properties, PDF info, a web page's
            <title>/meta tags); used only where the text itself gives no title line / no date.

    Raises:
        IngestError: the text has no content left after boilerplate is set aside.
    """
    boilerplate = _boilerplate_spans(text, list(_iter_lines(text)))
    lines = content_lines(text, boilerplate)
    if not lines:
        raise IngestError(source, "no text content (empty or only page furniture)")

    header = _header_lines(text, lines)
    meta = _read_meta(text, header, lines)
    derived_title = _title_from_header(text, header)
    header_end = header[-1][1] if header else None
    sections = detect_sections(text, lines, body_start=header_end or 0, boilerplate=boilerplate)
    doc_title = ((title or "").strip() or derived_title or (title_hint or "").strip()
                 or _derive_title(text, sections, lines, source))
    if meta.date is None and date_hint:
        meta = DocumentMeta(speaker=meta.speaker, date=date_hint, place=meta.place)
    return Document(
        doc_id=document_id(text),
        title=doc_title,
        text=text,
        source=source,
        meta=meta,
        sections=tuple(sections),
        boilerplate=tuple(boilerplate),
        header_span=(header[0][0], header[-1][1]) if header else None,
        page_starts=tuple(sorted(min(max(0, p), len(text)) for p in page_starts)),
        paged=paged or bool(page_starts),
    )


def _iter_lines(text: str):
    """Yield (start, end) of every line, end excluding the newline and a trailing carriage return."""
    start = 0
    for match in re.finditer(r"\n", text):
        end = match.start()
        yield start, end - 1 if end > start and text[end - 1] == "\r" else end
        start = match.end()
    if start < len(text):
        yield start, len(text)


def content_lines(text: str, boilerplate: list[tuple[int, int]] | tuple = ()) -> list[tuple[int, int]]:
    """Spans of the non-empty content lines of `text`, trimmed of surrounding spaces.

    Lines wholly inside a boilerplate span are dropped; a line whose tail is page controls is cut before them.
    """
    kept = []
    for start, end in _iter_lines(text):
        for b_start, b_end in boilerplate:
            if b_start <= start and end <= b_end:
                end = start
            elif start < b_start < end <= b_end:
                end = b_start
        while end > start and text[end - 1].isspace():
            end -= 1
        while start < end and text[start].isspace():
            start += 1
        if end > start:
            kept.append((start, end))
    return kept


def _boilerplate_spans(text: str, lines: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for start, end in lines:
        line = text[start:end]
        if _BOILERPLATE_LINE.match(line):
            spans.append((start, end))
            continue
        control = _INLINE_CONTROLS.search(line)
        if control:
            before = line[: control.start()]
            has_content = any(p.search(before) for p in _DATE_PATTERNS) or len(before.strip("【】 \t\xa0")) > 20
            cut = start + control.start() if has_content else start
            # Keep the kept part's trailing spaces out of the content.
            while cut > start and text[cut - 1] in " \t\xa0\u3000":
                cut -= 1
            spans.append((cut, end))
    return spans


def _is_body_line(line: str) -> bool:
    stripped = strip_heading_markup(line)
    if _SALUTATION.match(stripped):
        return True
    if len(stripped) > 40:
        return True
    if stripped and stripped[-1] in _SENTENCE_END_CHARS:
        return True
    return match_heading(line) is not None


def _header_lines(text: str, content_lines: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Leading short lines before the body: title, subtitle, speaker, date, metadata (at most 6)."""
    header = []
    for start, end in content_lines[:6]:
        line = text[start:end].strip()
        # `# 标题` opening the file is the title; a numbered Markdown heading (`## 第一章`) starts the body.
        markdown_title = line.startswith("#") and not header and (match_heading(line) or _NO_MATCH).rank < 10
        if _is_body_line(line) and not markdown_title:
            break
        header.append((start, end))
    else:
        if len(content_lines) <= 6:
            return []  # a tiny document of short lines has no header, it is all body
    return header


def _clean_title_line(line: str) -> str:
    line = strip_heading_markup(line)
    line = _WORD_COUNT_SUFFIX.sub("", line)
    line = re.sub(r"^[-—－]+\s*", "", line)
    return re.sub(r"\s+", " ", line).strip()


def _title_from_header(text: str, header: list[tuple[int, int]]) -> str | None:
    titles = []
    for start, end in header:
        raw = text[start:end].strip()
        if (_SPEAKER_LINE.match(raw) or any(p.search(raw) for p in _DATE_PATTERNS)
                or raw.startswith(("--", "——", "【"))):
            if titles:
                break
            continue
        titles.append(_clean_title_line(raw))
        # A short title line is often the first half of a two-line title (`同心聚力  共克时艰` / `奋力夺取…`),
        # unless it already names the kind of document (`县委扩大会议上的讲话`).
        if len(titles[-1]) >= 12 or len(titles) == 2 or _DOC_KIND_SUFFIX.search(titles[-1]):
            break
    return " ".join(titles) if titles else None


def _read_meta(text: str, header: list[tuple[int, int]], content_lines: list[tuple[int, int]]) -> DocumentMeta:
    speaker = date = None
    for start, end in header:
        raw = text[start:end].strip()
        if speaker is None and _SPEAKER_LINE.match(raw) and " " in raw or (
                speaker is None and _SPEAKER_LINE.match(raw) and len(raw) <= 3):
            speaker = re.sub(r"[ \u3000\xa0]+", "", raw)
        for pattern in _DATE_PATTERNS:
            found = pattern.search(raw)
            if date is None and found:
                date = found.group(1)
    return DocumentMeta(speaker=speaker, date=date, place=_read_place(text, content_lines))


def _read_place(text: str, content_lines: list[tuple[int, int]]) -> str | None:
    counts = Counter(m for m in _PLACE.findall(text) if not _NOT_PLACE_CHARS & set(m[:2]))
    if counts:
        place, n = counts.most_common(1)[0]
        if n >= 3:
            return place
    # A local news page names its own district only in its breadcrumb: `当前位置: 首页 > 政务信息 > 魏都要闻`
    # plus `我区`/`全区` in the body.
    crumb = re.search(r"当前位置\s*[:：].*?([\u4e00-\u9fff]{2})(?:要闻|新闻|动态)", text)
    if crumb:
        for unit in "区县市":
            if f"我{unit}" in text or f"全{unit}" in text:
                return crumb.group(1) + unit
    return None


def _derive_title(text: str, sections, content_lines: list[tuple[int, int]], source: str) -> str:
    """A title for a document that has no title line: its top-level headings, else its first sentence."""
    top = [re.sub(r"^[一二三四五六七八九十]+[、.．]\s*", "", s.title) for s in sections if s.level == 1]
    if len(top) >= 2:
        joined = "；".join(top)
        return joined if len(joined) <= 40 else joined[:39] + "…"
    for start, end in content_lines:
        line = strip_heading_markup(text[start:end])
        if _SALUTATION.fullmatch(line.strip()):
            continue
        first = re.split(f"[{_SENTENCE_END_CHARS}]", line, maxsplit=1)[0].strip()
        if first:
            return first if len(first) <= 30 else first[:29] + "…"
    return Path(source).stem
