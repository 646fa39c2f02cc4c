"""Small immutable values that cross module boundaries.

Offsets are always into ``Document.text``, the original text exactly as decoded from the file, so that
``document.text[p.char_start:p.char_end] == p.text`` holds for every passage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DocumentMeta:
    """What the text itself says about the document (None where it does not say)."""

    speaker: str | None = None
    date: str | None = None
    place: str | None = None


@dataclass(frozen=True, slots=True)
class Section:
    """One node of a document outline.

    Attributes:
        level: 1 for top-level headings (一、), deeper numbers for nested ones; 0 is the document body.
        title: heading text, cleaned of markdown markers and trailing punctuation.
        path: titles from the top of the outline down to this section (inclusive).
        heading_start / heading_end: span of the heading in the original text.
        start / end: span of the whole section (heading included) in the original text.
    """

    level: int
    title: str
    path: tuple[str, ...]
    heading_start: int
    heading_end: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Document:
    """A decoded, cleaned and outlined source document."""

    doc_id: str
    title: str
    text: str
    source: str
    meta: DocumentMeta = field(default_factory=DocumentMeta)
    sections: tuple[Section, ...] = ()
    # Spans of ``text`` that are not content (web boilerplate); no passage overlaps them.
    boilerplate: tuple[tuple[int, int], ...] = ()
    # The title/speaker/date lines at the top, kept together as one passage (people ask who spoke and when).
    header_span: tuple[int, int] | None = None
    # Formats with pages (PDF): `paged` is set and `page_starts` holds the offsets where pages 2, 3, ... start.
    page_starts: tuple[int, ...] = ()
    paged: bool = False

    def to_dict(self, *, with_text: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_text:
            data.pop("text")
        return data


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrievable piece of a document with an exact citation.

    Attributes:
        passage_id: stable id: ``{doc_id}:{char_start}-{char_end}``.
        section_path: heading titles from the top of the outline down to the passage's section.
        paragraph_index: 0-based index of the paragraph (non-empty line group) the passage starts in.
        char_start / char_end: ``document.text[char_start:char_end] == text``.
        page: 1-based page number where the passage starts, None for formats without pages.
    """

    passage_id: str
    doc_id: str
    doc_title: str
    section_path: tuple[str, ...]
    paragraph_index: int
    char_start: int
    char_end: int
    text: str
    page: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Passage:
        return cls(**{**data, "section_path": tuple(data["section_path"])})


@dataclass(frozen=True, slots=True)
class AnswerSpan:
    """The answering sentence inside a passage: ``passage.text[start:end]``."""

    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked search result.

    Attributes:
        score: the score used for ranking (higher is better): in hybrid mode the weighted sum of both signals,
            each min-max normalized over its candidates.
        dense_score: cosine similarity of question and passage (None in bm25 mode, or when not a dense candidate).
        keyword_score: raw BM25 score (None in dense mode, or when not a keyword candidate).
        answer: the sentence in the passage that best answers the question, if any.
        knowledge_base: the knowledge base it comes from, when several were searched together.
    """

    passage: Passage
    score: float
    dense_score: float | None = None
    keyword_score: float | None = None
    answer: AnswerSpan | None = None
    knowledge_base: str | None = None


@dataclass(frozen=True, slots=True)
class ExactAnswer:
    """The asked value itself inside the answer sentence (`10.4亿元` for a 多少 question).

    Attributes:
        hit: 0-based index into ``Answer.hits`` of the passage that holds it.
        start / end: ``hits[hit].passage.text[start:end] == text``.
    """

    hit: int
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class OutlineItem:
    """One heading of an outline answer (a question about how a document or a section is organised).

    Attributes:
        title / level / section_path: the heading as in `Section`.
        heading_start / heading_end: the heading's span in ``Document.text``.
        hit: 0-based index into ``Answer.hits`` of the passage that opens the section (None when it did not fit
            in the requested number of hits); the heading sits at ``heading_start - passage.char_start`` in it.
    """

    title: str
    level: int
    section_path: tuple[str, ...]
    heading_start: int
    heading_end: int
    hit: int | None


@dataclass(frozen=True, slots=True)
class Answer:
    """What the service says to a question: the answer text, whether the documents give it, and the evidence.

    Attributes:
        source: 0-based index into `hits` of the passage whose sentence is the answer text (None for 不知道).
        exact: the asked value inside that sentence, when the question asks for a figure or date and one is clear.
        outline: for a question about how a document (or a section) is organised, its headings in order; the
            text then lists them. Empty otherwise.
    """

    query: str
    text: str
    answerable: bool
    hits: tuple[Hit, ...]
    confidence: float = 0.0
    source: int | None = None
    exact: ExactAnswer | None = None
    outline: tuple[OutlineItem, ...] = ()
