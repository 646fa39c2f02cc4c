"""Outline detection for Chinese official documents and speeches.

A heading's level comes from its numbering kind, never from Markdown `#` counts (the same outline level is written
`##`, `###` or `####` in one sample document). Kinds rank from coarse to fine; a heading closes every open heading
of its own rank or finer, so levels follow the nesting the document actually uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.types import Section

_CN_NUM = "一二三四五六七八九十"
_MARKDOWN_PREFIX = re.compile(r"^\s*(#{1,6})\s+")
_BOLD = re.compile(r"^\*\*(.+?)\*\*")

# (rank, pattern) matched at the start of a line after `#` and `**` markup; lower rank = coarser.
_NUMBERED_KINDS: tuple[tuple[int, re.Pattern[str]], ...] = (
    (10, re.compile(rf"^第[{_CN_NUM}百零〇\d]+[编篇部分]")),
    (11, re.compile(rf"^第[{_CN_NUM}百零〇\d]+章")),
    (12, re.compile(rf"^第[{_CN_NUM}百零〇\d]+节")),
    (13, re.compile(rf"^[{_CN_NUM}]+[、．.]")),                    # 一、
    (14, re.compile(rf"^[（(][{_CN_NUM}]+[）)]")),                  # （一） (一)
    (15, re.compile(r"^\d{1,2}(?:[、．]|\.(?!\d))")),                # 1.  1、  (not 1.5亿)
    (16, re.compile(r"^[（(]\d{1,2}[）)]")),                        # （1）
    (17, re.compile(r"^[①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳]")),
    # Inline leads that enumerate points in speeches: 一是… 二要… 第一，… (often bold: **第一**，).
    (18, re.compile(rf"^(?:[{_CN_NUM}]+[是要](?=[^，,。、])|第[{_CN_NUM}]+(?:\*\*)?[，,、：:])")),
)
LEAD_RANK = 18
_PAREN_RANK = 14
# An inline lead inside a paragraph follows the end of a sentence or clause: `…思想之弦。一是在思想上要再重视。`
_INLINE_LEAD = re.compile(rf"(?<=[。；;：:！!])\s*(?:\*\*)?([{_CN_NUM}])([是要])(?=[^，,。、])")
_TITLE_END = "。！？!?；;："
_MAX_TITLE = 40
_MAX_WHOLE_TITLE = 80


@dataclass(frozen=True, slots=True)
class HeadingMatch:
    """A heading found at the start of a line: its rank and where its title text sits in the line."""

    rank: int
    title: str
    title_end: int  # offset in the line just past the title (and its closing markup/punctuation)


def strip_heading_markup(line: str) -> str:
    """Drop Markdown heading hashes and emphasis markers: `## **一、提高…**` -> `一、提高…`."""
    return _MARKDOWN_PREFIX.sub("", line).replace("**", "").strip()


def _cn_value(numeral: str) -> int:
    return _CN_NUM.index(numeral) + 1


def _title_from(body: str, bold_end: int | None) -> tuple[str, int]:
    """Title text and its end in `body` (a line without `#` prefix).

    A bold run or a whole short line is the title as written; otherwise the first sentence, or its first clause
    when that sentence is long.
    """
    if bold_end is not None:  # the bold run is the title: `**一是狠抓…不放松。**当前…`
        title, end = body[:bold_end].replace("**", ""), bold_end
        # `**第一**，改变文风`: the bold part is only the number; take the clause after it too.
        if len(title.strip()) <= 4:
            rest = re.match(rf"[^{_TITLE_END}]*", body[bold_end:]).group(0)
            title, end = title + rest.replace("**", ""), bold_end + len(rest)
    else:
        cut = next((i for i, ch in enumerate(body) if ch in _TITLE_END), None)
        end = len(body) if cut is None else cut + 1
        title = body[:end]
    title = title.strip().rstrip(_TITLE_END).strip()
    whole = bold_end is not None or end >= len(body.rstrip())
    if len(title) > (_MAX_WHOLE_TITLE if whole else _MAX_TITLE):  # a long first sentence: keep its first clause
        clause = re.match(r"(.{6,}?)[，,]", title)
        title = clause.group(1) if clause and len(clause.group(1)) <= _MAX_TITLE else title[: _MAX_TITLE - 1] + "…"
    return title, end


def match_heading(line: str) -> HeadingMatch | None:
    """Return the heading at the start of `line`, or None when the line is body text."""
    prefix = _MARKDOWN_PREFIX.match(line)
    offset = prefix.end() if prefix else 0
    body = line[offset:]
    bold = _BOLD.match(body)
    plain = body.replace("**", "") if bold else body
    for rank, pattern in _NUMBERED_KINDS:
        if pattern.match(plain.lstrip()):
            title, end = _title_from(body, bold.end() if bold else None)
            if rank < LEAD_RANK and len(title) < 2:
                return None
            return HeadingMatch(rank, title, offset + end)
    if prefix:  # an unnumbered Markdown heading ranks above every numbering kind, by its hash count
        title = strip_heading_markup(line)
        if title:
            return HeadingMatch(len(prefix.group(1)) - 1, title, len(line))
    return None


def _inline_leads(line: str, after: int) -> list[tuple[int, HeadingMatch]]:
    """Leads `一是/二是…` or `一要/二要…` in `line` past `after`, kept only when they count up from 一 in order."""
    found: list[tuple[int, HeadingMatch]] = []
    expected, word = 1, None
    for m in _INLINE_LEAD.finditer(line, after):
        value = _cn_value(m.group(1))
        if value != expected or (word and m.group(2) != word):
            continue
        word = m.group(2)
        start = m.start(1) - (2 if line[max(0, m.start(1) - 2):m.start(1)] == "**" else 0)
        body = line[start:]
        bold = _BOLD.match(body)
        title, end = _title_from(body, bold.end() if bold else None)
        found.append((start, HeadingMatch(LEAD_RANK, title, start + end)))
        expected += 1
    return found if len(found) >= 2 else []


def detect_sections(
    text: str,
    lines: list[tuple[int, int]],
    body_start: int = 0,
    boilerplate: list[tuple[int, int]] | tuple = (),
) -> list[Section]:
    """Find the outline of a document.

    Args:
        text: the original document text.
        lines: (start, end) of each non-empty content line, in order.
        body_start: headings before this offset (the title block) are not sections.
        boilerplate: spans that are not content.

    Returns:
        Sections in document order, each with its level (1 = top), path and spans; empty when there is no outline.
    """
    headings: list[tuple[int, int, HeadingMatch]] = []  # (start, heading_end, match)
    for start, end in lines:
        if start < body_start or any(s <= start < e for s, e in boilerplate):
            continue
        line = text[start:end]
        found = match_heading(line)
        if found is None:
            continue
        headings.append((start, start + found.title_end, found))
        # Points `一是…二是…` inside a paragraph that opens with a numbered heading are its subsections.
        if _PAREN_RANK - 1 <= found.rank <= _PAREN_RANK + 2 and found.rank != LEAD_RANK:
            for offset, lead in _inline_leads(line, found.title_end):
                headings.append((start + offset, start + lead.title_end, lead))
    # Leads only count where they enumerate (at least 一 and 二 in one section); a lone `一是` is body text.
    headings = _drop_lone_leads(headings)

    doc_end = lines[-1][1] if lines else len(text)
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []  # open (rank, title)
    opened: list[tuple[int, int, int, int, str, tuple[str, ...]]] = []
    for start, heading_end, found in headings:
        while stack and stack[-1][0] >= found.rank:
            stack.pop()
        stack.append((found.rank, found.title))
        path = tuple(title for _, title in stack)
        opened.append((len(stack), start, heading_end, found.rank, found.title, path))
    for i, (level, start, heading_end, _rank, title, path) in enumerate(opened):
        end = next((o[1] for o in opened[i + 1:] if o[0] <= level), doc_end)
        sections.append(Section(level, title, path, start, heading_end, start, end))
    return sections


def _drop_lone_leads(headings: list[tuple[int, int, HeadingMatch]]) -> list[tuple[int, int, HeadingMatch]]:
    kept: list[tuple[int, int, HeadingMatch]] = []
    run: list[tuple[int, int, HeadingMatch]] = []

    def flush() -> None:
        if len(run) >= 2:
            kept.extend(run)
        run.clear()

    for item in headings:
        if item[2].rank == LEAD_RANK:
            run.append(item)
        else:
            flush()
            kept.append(item)
    flush()
    return sorted(kept, key=lambda h: h[0])


def format_outline(sections: list[Section] | tuple[Section, ...]) -> list[str]:
    """Indented outline lines for a person to check at a glance."""
    if not sections:
        return ["(no outline: the whole body is one section)"]
    return [f"{'  ' * (s.level - 1)}{s.title}" for s in sections]
