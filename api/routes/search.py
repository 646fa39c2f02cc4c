"""POST /v1/search: the extractive answer and the ranked, cited passages for a question, from one knowledge base
(`default` unless named) or several at once."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from api.deps import AccessDep, SettingsDep, check_read, get_manager, kb_service
from api.schemas import ErrorOut, SearchRequest, SearchResponse
from qa.errors import InvalidQueryError
from qa.knowledge_bases.registry import DEFAULT_KB, check_name

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse,
             responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut},
                        422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
def search(*, body: SearchRequest, request: Request, access: AccessDep,
                 settings: SettingsDep) -> SearchResponse:
    """Answer a question from the documents: the answering sentence and the top passages with exact offsets.

    With `knowledge_bases`, every one named must be covered by the key (403 otherwise, before anything is
    searched); hits from several are fused into one ranking.
    """
    started = time.perf_counter()
    # The schema's maxLength counts the query as sent; the core counts it after stripping. Hold to the schema.
    if len(body.query) > settings.max_query_chars:
        raise InvalidQueryError(f"query is {len(body.query)} characters long; the limit is {settings.max_query_chars}")
    names = list(dict.fromkeys(body.knowledge_bases or [DEFAULT_KB]))
    for name in names:
        check_read(access, check_name(name))
    top_k = settings.default_top_k if body.top_k is None else body.top_k
    mode = body.mode or settings.default_mode
    doc_ids = body.doc_ids or None
    if len(names) == 1:
        # One knowledge base: its own service and scores, exactly as a single-index server answers.
        service = kb_service(request, access, names[0])
        answer = service.ask(body.query, top_k=top_k, mode=mode, doc_ids=doc_ids)
    else:
        manager = get_manager(request)
        if DEFAULT_KB in names:
            kb_service(request, access, DEFAULT_KB)  # the default index failed at startup: say so (503)
        answer = manager.ask(names, body.query, top_k, mode, doc_ids)
    return SearchResponse.from_answer(answer, (time.perf_counter() - started) * 1000, names[0])
