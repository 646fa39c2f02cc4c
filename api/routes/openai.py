"""OpenAI-compatible chat: GET /v1/models, POST /v1/chat/completions (plain and `stream: true` SSE).

The reply is extractive (no LLM): the answer sentence + " [n]" (n: the passage it comes from, usually 1), then the
numbered sources. The machine-readable
sources ride along as `citations` (same fields as the search hits) on the message and the response, and on the final
stream chunk. A follow-up question ("那社会消费品零售总额呢？") is rewritten from the earlier user turns and searched
inside the document that answered the previous question (see `qa.search.conversation`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api.deps import (
    AccessDep,
    ApiKeyDep,
    ManagerDep,
    SettingsDep,
    check_read,
    kb_service,
    require_default_loaded,
)
from api.errors import HTTPError
from api.llm import llm_reply
from api.reply import extractive_reply, rough_tokens, stream_pieces, with_sources
from api.schemas import (
    MODEL_ID,
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    ChunkDelta,
    ErrorOut,
    HitOut,
    ModelList,
    ModelOut,
    RetrievalInfo,
    Usage,
    model_id,
)
from qa.config import Settings
from qa.errors import InvalidQueryError, KnowledgeBaseNotFoundError
from qa.knowledge_bases.registry import DEFAULT_KB, check_name
from qa.search.conversation import plan_followup, previous_document
from qa.service import QAService

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[ApiKeyDep])

# A fixed creation time for the one model (2024-01-01), so /v1/models is stable across restarts.
_MODEL_CREATED = 1704067200


@dataclass(frozen=True, slots=True)
class _Reply:
    content: str
    citations: list[HitOut]
    retrieval: RetrievalInfo
    usage: Usage


def _model(knowledge_base: str = DEFAULT_KB) -> ModelOut:
    return ModelOut(id=model_id(knowledge_base), created=_MODEL_CREATED, owned_by="zhqa")


def knowledge_base_of(model: str) -> str:
    """The knowledge base a chat model id names: `zhqa-retrieval/<name>`; any other id means `default` (clients
    often hard-code a model name)."""
    prefix = f"{MODEL_ID}/"
    return check_name(model[len(prefix):]) if model.startswith(prefix) else DEFAULT_KB


def _reply(body: ChatCompletionRequest, service: QAService, settings: Settings, knowledge_base: str) -> _Reply:
    """Search for the last user question (rewritten if it is a follow-up) and compose the reply (blocking)."""
    turns = [(m.role, m.text()) for m in body.messages]
    vocabulary = service.vocabulary()
    try:
        plan = plan_followup(turns, vocabulary)
    except ValueError as e:  # also checked by the schema; kept so the core's message reaches the client
        raise InvalidQueryError(str(e)) from e
    mode = body.mode or settings.default_mode
    top_k = settings.default_top_k if body.top_k is None else body.top_k
    doc_ids = body.doc_ids or None
    query = plan.query
    if plan.elliptical:
        # Chat requests carry no state: search the previous question again to find the document it was about.
        previous_doc = previous_document(plan, lambda q: service.search(q, top_k=1, mode=mode, doc_ids=doc_ids),
                                         vocabulary)
        if previous_doc is not None:
            query, doc_ids = plan.focused, [previous_doc]
    answer = service.ask(query, top_k=top_k, mode=mode, doc_ids=doc_ids)
    questions = [text for role, text in turns if role == "user" and text.strip()]
    llm_text = llm_reply(settings, questions, answer) if settings.llm_base_url else None
    content = with_sources(llm_text, answer) if llm_text else extractive_reply(answer)
    prompt_tokens = sum(rough_tokens(text) for _, text in turns)
    completion_tokens = rough_tokens(content)
    return _Reply(
        content=content,
        citations=[HitOut.from_hit(i, hit, knowledge_base) for i, hit in enumerate(answer.hits, start=1)],
        retrieval=RetrievalInfo(query=query, mode=mode, doc_ids=doc_ids, followup=plan.elliptical,
                                answerable=answer.answerable, answer_source="llm" if llm_text else "extractive",
                                knowledge_base=knowledge_base),
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    total_tokens=prompt_tokens + completion_tokens),
    )


def _sse(chunk: ChatCompletionChunk) -> str:
    data = chunk.model_dump(mode="json")
    # Like OpenAI: extension fields and usage only where they are set, a delta holds only what it carries.
    for key in ("usage", "citations", "retrieval"):
        if data[key] is None:
            del data[key]
    for choice in data["choices"]:
        choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _stream(reply: _Reply, completion_id: str, created: int, include_usage: bool, model: str) -> Iterator[str]:
    """SSE events: a role delta, the content in pieces, a final chunk with finish_reason and citations, [DONE]."""

    def chunk(delta: ChunkDelta, **extra) -> ChatCompletionChunk:
        finish = extra.pop("finish_reason", None)
        return ChatCompletionChunk(id=completion_id, created=created, model=model,
                                   choices=[ChunkChoice(delta=delta, finish_reason=finish)], **extra)

    yield _sse(chunk(ChunkDelta(role="assistant", content="")))
    for piece in stream_pieces(reply.content):
        yield _sse(chunk(ChunkDelta(content=piece)))
    yield _sse(chunk(ChunkDelta(), finish_reason="stop", citations=reply.citations, retrieval=reply.retrieval))
    if include_usage:
        usage_chunk = ChatCompletionChunk(id=completion_id, created=created, model=model, choices=[],
                                          usage=reply.usage)
        yield _sse(usage_chunk)
    yield "data: [DONE]\n\n"


# The model list needs no index, but answers 503 with the reason when none is loaded, like every other /v1 route,
# so a chat front end shows why the connection does not work.
_INDEX_LOADED = [Depends(require_default_loaded)]


async def _send(events: list[str]) -> AsyncIterator[str]:
    for event in events:
        yield event


@router.get("/models", response_model=ModelList, dependencies=_INDEX_LOADED)
def list_models(*, manager: ManagerDep, access: AccessDep) -> ModelList:
    """One model per knowledge base the key covers: `zhqa-retrieval` answers from `default`,
    `zhqa-retrieval/<name>` from the knowledge base `name` (pick one in a chat front end's model menu)."""
    return ModelList(data=[_model(kb.name) for kb in manager.registry.list() if access.can_read(kb.name)])


@router.get("/models/{model:path}", response_model=ModelOut,
            responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
            dependencies=_INDEX_LOADED)
def get_model(*, model: str, manager: ManagerDep, access: AccessDep) -> ModelOut:
    """A model by id (`zhqa-retrieval` or `zhqa-retrieval/<knowledge base>`)."""
    unknown = HTTPError(404, f"unknown model {model!r}; GET /v1/models lists this server's models", "not_found")
    if model != MODEL_ID and not model.startswith(f"{MODEL_ID}/"):
        raise unknown
    try:
        name = knowledge_base_of(model)
    except ValueError:
        raise unknown from None
    check_read(access, name)
    if not manager.registry.exists(name):
        raise KnowledgeBaseNotFoundError(f"unknown model {model!r}: no knowledge base {name!r}")
    return _model(name)


@router.post(
    "/chat/completions", response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {"description": "chat.completion.chunk events when "
                                                                      "stream is true, then data: [DONE]"}}},
               403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut},
               422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def chat_completions(
    *, body: ChatCompletionRequest, request: Request, access: AccessDep, settings: SettingsDep,
) -> ChatCompletion | StreamingResponse:
    """Answer the last user message with cited passages; `stream: true` sends SSE `chat.completion.chunk`s.

    The model picks the knowledge base (`zhqa-retrieval/<name>`; 403 when the key does not cover it). Any other
    model name is accepted and answers from `default` (clients often hard-code one).
    """
    name = knowledge_base_of(body.model)
    model = model_id(name)
    service = await run_in_threadpool(kb_service, request, access, name)
    # Retrieval runs before any byte is sent, so a bad request gets its status code even when streaming.
    reply = await run_in_threadpool(_reply, body, service, settings, name)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        # The reply is complete already: render its events in one worker-thread call and send them from the event
        # loop, rather than one thread hop per event (Starlette iterates a sync generator in the thread pool).
        events = await run_in_threadpool(lambda: list(_stream(reply, completion_id, created, include_usage, model)))
        return StreamingResponse(_send(events),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    message = AssistantMessage(content=reply.content, citations=reply.citations)
    return ChatCompletion(id=completion_id, created=created, model=model, choices=[ChatChoice(message=message)],
                          usage=reply.usage, citations=reply.citations, retrieval=reply.retrieval)
