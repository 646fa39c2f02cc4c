"""POST /v1/search: the extractive answer and the ranked, cited passages for a question."""

from __future__ import annotations

import time

from fastapi import APIRouter

from api.deps import ApiKeyDep, ServiceDep, SettingsDep
from api.schemas import ErrorOut, SearchRequest, SearchResponse
from qa.errors import InvalidQueryError

router = APIRouter(prefix="/v1", tags=["search"], dependencies=[ApiKeyDep])


@router.post("/search", response_model=SearchResponse,
             responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
def search(*, body: SearchRequest, service: ServiceDep, settings: SettingsDep) -> SearchResponse:
    """Answer a question from the documents: the answering sentence and the top passages with exact offsets."""
    started = time.perf_counter()
    # The schema's maxLength counts the query as sent; the core counts it after stripping. Hold to the schema.
    if len(body.query) > settings.max_query_chars:
        raise InvalidQueryError(f"query is {len(body.query)} characters long; the limit is {settings.max_query_chars}")
    answer = service.ask(body.query, top_k=settings.default_top_k if body.top_k is None else body.top_k,
                         mode=body.mode or settings.default_mode, doc_ids=body.doc_ids or None)
    return SearchResponse.from_answer(answer, (time.perf_counter() - started) * 1000)
