"""PDF reader (text layer only): lines in reading order re-joined into paragraphs, page furniture dropped.

Running headers/footers, page numbers and watermarks are removed; `page_starts` gives where each page begins in the
text, so every passage knows its page. A scanned PDF (no text layer) is refused as needing OCR.
"""

from __future__ import annotations

import io
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

from qa.errors import IngestError
from qa.ingest.extracted import (
    Extracted,
    clean_inline,
    clean_title,
    ends_sentence,
    is_heading_line,
    wrap_joiner,
)

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
        return clean_inline(self.text)

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
        return clean_title(info.title) if key == "title" else None
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
                sep = wrap_joiner(paragraph[-1:], text[:1])
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
        if is_heading_line(text):
            return True
        ends = ends_sentence(paragraph)
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
