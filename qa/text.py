"""Text normalisation and sentence splitting shared by indexing, matching and evaluation.

Two normalisations exist on purpose:

* :func:`normalize` is what tokenizers see. It keeps one space between non-Chinese words so that
  ``"gdp 增长"`` still has a word boundary, but removes the spaces that PDF/HTML extraction puts
  between Chinese characters (``"宋 晓 东"`` -> ``"宋晓东"``).
* :func:`evidence_norm` is the evaluation's hit rule (README of the dev set): NFKC, then *all*
  whitespace removed. It is only for substring matching of evidence, never for tokenizing.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "CLOSERS",
    "SENTENCE_END",
    "evidence_norm",
    "is_cjk",
    "normalize",
    "split_sentences",
]

# Sentence-final punctuation, full-width and half-width (corpus files mix both styles).
SENTENCE_END = "。！？；!?;"

# Closing quotes/brackets that belong to the sentence they close: 他说：“好。” ends after ”.
# Straight quotes are ambiguous (open or close), so split_sentences takes them only when they close
# a quote opened inside the sentence.
CLOSERS = "”’」』）)】》〕]\"'"
_STRAIGHT_QUOTES = "\"'"

# CJK ideographs (basic, extension A, compatibility, extensions B+) plus CJK symbols/punctuation and
# curly quotes: whitespace between any two of these is an extraction artefact, not a word boundary.
_CJK_CLASS = (
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
    "\u3000-\u303f\u2018\u2019\u201c\u201d\u2026\u00b7"
)
_CJK_CHAR_RE = re.compile(f"[{_CJK_CLASS}]")
_CJK_GAP_RE = re.compile(f"(?<=[{_CJK_CLASS}])\\s+(?=[{_CJK_CLASS}])")
_WS_RE = re.compile(r"\s+")
_ASCII_UPPER_RE = re.compile(r"[A-Z]+")
# Zero-width characters survive NFKC and are not ``\s``; they would split tokens invisibly.
_ZERO_WIDTH_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")


def is_cjk(char: str) -> bool:
    """Return True if ``char`` is a CJK ideograph or CJK punctuation mark (see ``_CJK_CLASS``)."""
    return bool(_CJK_CHAR_RE.fullmatch(char))


def normalize(text: str) -> str:
    """Normalise text for tokenizing and matching.

    Steps: NFKC (full-width letters, digits and punctuation become half-width), ASCII lower-casing,
    removal of markdown ``**`` emphasis and zero-width characters, removal of whitespace between two
    CJK characters, and collapsing of every other whitespace run to one space. Idempotent.

    Args:
        text: any text, e.g. a passage or a user question.

    Returns:
        The normalised text, stripped at both ends.
    """
    text = unicodedata.normalize("NFKC", text)
    # Only ASCII is lower-cased: full str.lower() can change the length of a string ("İ" -> 2 chars)
    # and case-folding non-Latin scripts buys nothing for this corpus.
    text = _ASCII_UPPER_RE.sub(lambda m: m.group(0).lower(), text)
    text = text.replace("**", "")
    text = _ZERO_WIDTH_RE.sub("", text)
    # Chinese has no spaces between words, so a space between two CJK chars carries no meaning.
    text = _CJK_GAP_RE.sub("", text)
    return _WS_RE.sub(" ", text).strip()


def evidence_norm(s: str) -> str:
    """Normalise a string the way the evaluation's hit rule does: NFKC, then drop all whitespace.

    Args:
        s: a passage text or an evidence string.

    Returns:
        The normalised string; ``evidence_norm(e) in evidence_norm(passage)`` is the hit test.
    """
    return _WS_RE.sub("", unicodedata.normalize("NFKC", s))


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Split text into sentence spans over the ORIGINAL text (no normalisation applied).

    A sentence ends after a run of :data:`SENTENCE_END` characters plus any closing quotes or
    brackets that follow it (``。”`` stays with its sentence), and at every newline. Spans are trimmed
    of surrounding whitespace; whitespace-only pieces are skipped, so no span is empty.

    Args:
        text: the original text.

    Returns:
        ``(start, end)`` pairs in text order with ``text[start:end]`` the sentence.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\n" or ch == "\r":
            _append_trimmed(text, start, i, spans)
            i += 1
            start = i
            continue
        if ch in SENTENCE_END:
            # Swallow "？！" style runs and the closers after them: they end the same sentence.
            j = i + 1
            while j < n and text[j] in SENTENCE_END:
                j += 1
            while j < n and text[j] in CLOSERS:
                if text[j] in _STRAIGHT_QUOTES and text.count(text[j], start, j) % 2 == 0:
                    break  # an even count means this quote opens the next sentence
                j += 1
            _append_trimmed(text, start, j, spans)
            i = j
            start = j
            continue
        i += 1
    _append_trimmed(text, start, n, spans)
    return spans


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    """Append ``(start, end)`` shrunk to exclude outer whitespace, unless nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))
