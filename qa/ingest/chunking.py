"""Cut documents into passages on paragraph and sentence boundaries, never across a section boundary.

Every passage is an exact slice of the original text, so its citation offsets can be checked by anyone:
``document.text[p.char_start:p.char_end] == p.text``.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from qa.ingest.document import content_lines
from qa.ingest.sections import match_heading
from qa.text import split_sentences
from qa.types import Document, Passage

_CLAUSE_BREAK = re.compile(r"[，,、：:]")
_SENTENCE_END_CHARS = "。！？!?；;…：:”」』）)"


@dataclass(frozen=True, slots=True)
class ChunkingConfig:
    """How big passages are, in characters.

    Attributes:
        max_chars: a passage never exceeds this unless a single clause does (then it is cut hard).
        min_chars: a passage this long may end at a paragraph break instead of filling up to `max_chars`.
    """

    max_chars: int = 300
    min_chars: int = 150

    def __post_init__(self) -> None:
        if not 50 <= self.max_chars <= 5000:
            raise ValueError(f"max_chars must be in [50, 5000], got {self.max_chars}")
        if not 0 <= self.min_chars <= self.max_chars:
            raise ValueError(f"min_chars must be in [0, max_chars={self.max_chars}], got {self.min_chars}")


def paragraphs(doc: Document) -> list[tuple[int, int]]:
    """Paragraph spans: non-empty content lines, re-joined where a page break cut a sentence in two.

    A line that is not a heading, does not end a sentence and is followed by a line that is not a heading was cut
    by a page break (`…严峻形势和风险` / blank / `挑战显著增多…`): both lines are one paragraph.
    """
    spans: list[tuple[int, int]] = []
    joinable = False
    for start, end in content_lines(doc.text, doc.boilerplate):
        line = doc.text[start:end]
        is_heading = match_heading(line) is not None
        if spans and joinable and not is_heading:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
        stripped = line.rstrip().replace("**", "")
        # Table rows (`单元格 | 单元格`, as Word tables are read) end without punctuation but are complete lines.
        joinable = (not is_heading and len(stripped) >= 10 and not _in_header(doc, start)
                    and stripped[-1] not in _SENTENCE_END_CHARS and " | " not in stripped)
    return spans


def _in_header(doc: Document, offset: int) -> bool:
    return doc.header_span is not None and doc.header_span[0] <= offset < doc.header_span[1]


def _segments(doc: Document, paras: list[tuple[int, int]]) -> list[tuple[int, int, tuple[str, ...]]]:
    """Spans between consecutive section starts, each with the section path it belongs to.

    A heading with no text of its own before its first subsection (`（二）重点工作攻坚有力。一是…`) opens that
    subsection's segment instead of standing alone as a passage with nothing to retrieve.
    """
    end_of_text = paras[-1][1] if paras else len(doc.text)
    cuts: list[tuple[int, int, tuple[str, ...]]] = []  # (start, heading end, path)
    if doc.header_span:
        cuts.append((doc.header_span[0], doc.header_span[1], ()))
        cuts.append((doc.header_span[1], doc.header_span[1], ()))
    elif paras:
        cuts.append((paras[0][0], paras[0][0], ()))
    cuts.extend((s.start, s.heading_end, s.path) for s in doc.sections)
    cuts.sort(key=lambda c: c[0])
    segments: list[tuple[int, int, tuple[str, ...]]] = []
    carried_start: int | None = None
    for i, (start, heading_end, path) in enumerate(cuts):
        end = cuts[i + 1][0] if i + 1 < len(cuts) else end_of_text
        if carried_start is not None:
            start, carried_start = carried_start, None
        if end <= start:
            continue
        bare_heading = path and i + 1 < len(cuts) and not doc.text[heading_end:end].strip()
        if bare_heading:
            carried_start = start
            continue
        segments.append((start, end, path))
    return segments


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentences of text[start:end]; line breaks inside a re-joined paragraph are not sentence ends."""
    flat = text[start:end].replace("\r", " ").replace("\n", " ")
    return [(start + s, start + e) for s, e in split_sentences(flat)]


def _split_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut a too-long sentence at clause breaks (，、：), hard-cutting a clause only if it alone is too long."""
    pieces: list[tuple[int, int]] = []
    piece_start = start
    last_break = None
    for match in _CLAUSE_BREAK.finditer(text, start, end):
        cut = match.end()
        if cut - piece_start > max_chars and last_break is not None:
            pieces.append((piece_start, last_break))
            piece_start = last_break
        last_break = cut
    while end - piece_start > max_chars:
        cut = last_break if last_break and piece_start < last_break < piece_start + max_chars else piece_start + max_chars
        pieces.append((piece_start, cut))
        piece_start = cut
        last_break = None
    pieces.append((piece_start, end))
    return [(s, e) for s, e in pieces if text[s:e].strip()]


def cut_passages(doc: Document, config: ChunkingConfig | None = None) -> list[Passage]:
    """Cut one document into passages.

    Args:
        doc: an ingested document.
        config: passage sizes; defaults to ~300 characters, the size that retrieved best on the sample corpus.

    Returns:
        Passages in document order; the title block is its own passage and each section's heading starts the
        section's first passage, so questions about who/when/which section have a passage that holds the answer.
    """
    config = config or ChunkingConfig()
    text = doc.text
    paras = paragraphs(doc)
    para_starts = [s for s, _ in paras]
    passages: list[Passage] = []

    for seg_start, seg_end, path in _segments(doc, paras):
        units: list[tuple[int, int, bool]] = []  # (start, end, starts a paragraph)
        for p_start, p_end in paras:
            s, e = max(p_start, seg_start), min(p_end, seg_end)
            if s >= e:
                continue
            first = True
            for s_start, s_end in _sentence_spans(text, s, e):
                for piece in _split_long(text, s_start, s_end, config.max_chars):
                    units.append((*piece, first))
                    first = False
        chunks: list[list[int]] = []
        for u_start, u_end, new_paragraph in units:
            if chunks:
                c_start, c_end = chunks[-1]
                too_long = u_end - c_start > config.max_chars
                paragraph_break = new_paragraph and c_end - c_start >= config.min_chars
                if not (too_long or paragraph_break):
                    chunks[-1][1] = u_end
                    continue
            chunks.append([u_start, u_end])
        # A short leftover at the end of a section reads better with the passage before it.
        if len(chunks) >= 2 and chunks[-1][1] - chunks[-1][0] < config.min_chars // 3 \
                and chunks[-1][1] - chunks[-2][0] <= config.max_chars * 1.5:
            tail = chunks.pop()
            chunks[-1][1] = tail[1]
        for c_start, c_end in chunks:
            passages.append(Passage(
                passage_id=f"{doc.doc_id}:{c_start}-{c_end}",
                doc_id=doc.doc_id,
                doc_title=doc.title,
                section_path=path,
                paragraph_index=max(0, bisect.bisect_right(para_starts, c_start) - 1),
                char_start=c_start,
                char_end=c_end,
                text=text[c_start:c_end],
                page=_page_of(doc, c_start),
            ))
    return passages


def _page_of(doc: Document, offset: int) -> int | None:
    if not doc.paged:
        return None
    return bisect.bisect_right(doc.page_starts, offset) + 1
