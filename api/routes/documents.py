"""Documents: list, read, add (file upload or JSON text), delete. Changes are persisted to the index folder.

An uploaded file is read into memory (at most QA_MAX_UPLOAD_BYTES) and indexed from there; its name is only a label
(the base name, cleaned), never a path, so nothing is written anywhere but the index folder.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.utils import generate_unique_id
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.deps import ApiKeyDep, ListingServiceDep, ServiceDep, SettingsDep, WritableServiceDep
from api.errors import HTTPError
from api.schemas import (
    DocumentCreate,
    DocumentCreated,
    DocumentDeleted,
    DocumentDetail,
    DocumentList,
    DocumentOut,
    ErrorOut,
)
from qa.config import Settings
from qa.errors import DocumentNotFoundError
from qa.ingest.reader import document_from_bytes
from qa.service import QAService

logger = logging.getLogger(__name__)


# Characters that never belong in a label: control characters and path separators.
_UNSAFE_LABEL = re.compile(r"[\x00-\x1f\x7f/\\]")

_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"], "additionalProperties": False,
            "properties": {"file": {"type": "string", "format": "binary", "description": ".txt or .md file"},
                           "title": {"type": "string"}},
        }},
        "application/json": {"schema": {"$ref": "#/components/schemas/DocumentCreate"}},
    },
}


def _label(filename: str | None, fallback: str) -> str:
    """A display label from a client-supplied file name: its base name only, without control characters."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    name = _UNSAFE_LABEL.sub("", name).strip().lstrip(".") or fallback
    return name[:200]


def _check_size(size: int, settings: Settings) -> None:
    if size > settings.max_upload_bytes:
        raise HTTPError(413, f"document is larger than the upload limit of {settings.max_upload_bytes} bytes",
                        "payload_too_large")


def _add(service: QAService, data: bytes, label: str, title: str | None, suffix: str) -> tuple[bool, DocumentOut]:
    """Read (text, Word, PDF or web page), outline and index a document (blocking: runs in a worker thread)."""
    document = document_from_bytes(data, label, suffix, title=title)
    created = service.add_document(document)
    stored = service.document(document.doc_id)
    return created, DocumentOut.from_document(stored, service.passage_count(stored.doc_id),
                                              service.vector_progress(stored.doc_id).done)


async def _from_form(request: Request, settings: Settings) -> tuple[bytes, str, str | None]:
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPError(422, "send the document as a file in the form field 'file'", "invalid_request")
    label = _label(upload.filename, "upload.txt")
    suffix = PurePosixPath(label).suffix.lower()
    allowed = [s.lower() for s in settings.upload_suffixes]
    if suffix not in allowed:
        raise HTTPError(415, f"file type {suffix or '(none)'!r} is not accepted; upload one of: "
                             f"{', '.join(allowed)}", "unsupported_media_type")
    data = await upload.read(settings.max_upload_bytes + 1)
    _check_size(len(data), settings)
    title = form.get("title")
    return data, label, title.strip() if isinstance(title, str) and title.strip() else None


async def _from_json(request: Request, settings: Settings) -> tuple[bytes, str, str | None]:
    raw = await request.body()
    try:
        payload: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"invalid JSON body: {e}", "invalid_json") from e
    try:
        body = DocumentCreate.model_validate(payload)
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from e
    data = body.text.encode("utf-8")
    _check_size(len(data), settings)
    return data, _label(body.filename, "text"), body.title


def list_documents(*, service: ListingServiceDep) -> DocumentList:
    """All indexed documents with their metadata and passage counts."""
    if not service.loaded:  # a knowledge base without documents yet
        return DocumentList(documents=[], total=0)
    docs = [DocumentOut.from_document(d, service.passage_count(d.doc_id)) for d in service.documents()]
    return DocumentList(documents=docs, total=len(docs))


def get_document(
    *, doc_id: str, service: ServiceDep,
    include_text: Annotated[bool, Query(description="also return the full text")] = False,
) -> DocumentDetail:
    """One document with its outline (sections with their offsets into the text)."""
    document = service.document(doc_id)
    return DocumentDetail.from_document_detail(document, service.passage_count(doc_id), include_text,
                                               service.vector_progress(doc_id).done)


async def add_document(*, request: Request, service: WritableServiceDep, settings: SettingsDep) -> JSONResponse:
    """Add a document: a multipart upload (field `file`: .txt/.md/.docx/.pdf/.html by default) or JSON `{text, title?, filename?}`.

    201 when added, 200 with `created: false` when the same content is already indexed.
    """
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        data, label, title = await _from_form(request, settings)
        suffix = PurePosixPath(label).suffix.lower()
    elif content_type.startswith("application/json") or "+json" in content_type.split(";")[0]:
        data, label, title = await _from_json(request, settings)
        suffix = ".txt"  # JSON carries plain text, whatever its `filename` label says
    else:
        raise HTTPError(415, "send multipart/form-data with a 'file' field, or application/json with "
                             f"{{\"text\": ...}} (got {content_type or 'no content type'})", "unsupported_media_type")
    created, document = await run_in_threadpool(_add, service, data, label, title, suffix)
    # An audit line with ids and sizes only: never the text or the title.
    logger.info("document %s %s", document.id, "added" if created else "already indexed",
                extra={"doc_id": document.id, "new": created, "chars": document.chars,
                       "passages": document.passage_count})
    result = DocumentCreated(created=created, document=document)
    return JSONResponse(result.model_dump(mode="json"), status_code=201 if created else 200,
                        headers={"Location": f"{request.url.path.rstrip('/')}/{document.id}"})


def delete_document(*, doc_id: str, service: WritableServiceDep) -> DocumentDeleted:
    """Remove a document and its passages from the index (409 for the last one: an index cannot be empty)."""
    if not service.loaded:  # a knowledge base without documents yet
        raise DocumentNotFoundError(f"unknown document id {doc_id!r}")
    count = service.passage_count(doc_id)
    document = service.delete_document(doc_id)
    logger.info("document %s deleted", doc_id, extra={"doc_id": doc_id, "passages": count})
    return DocumentDeleted(deleted=True, document=DocumentOut.from_document(document, count))


def _kb_path(kb: Annotated[str, Path(description="knowledge base name (GET /v1/knowledge_bases)")]) -> None:
    """Declares {kb} of the knowledge-base document routes (the service dependencies read and check it)."""


def build_router(prefix: str) -> APIRouter:
    """The document routes under `prefix`: /v1/documents (the `default` knowledge base) or
    /v1/knowledge_bases/{kb}/documents. The same functions serve both; the service dependencies pick the knowledge
    base from the path and check the key's scope."""
    per_kb = "{kb}" in prefix
    # Every route of a knowledge base may also say: not covered by the key (403), no such knowledge base (404),
    # no documents yet (409).
    kb_errors = {status: {"model": ErrorOut} for status in (403, 404, 409)} if per_kb else {}
    router = APIRouter(prefix=prefix, tags=["documents"], responses=kb_errors,
                       dependencies=[ApiKeyDep, Depends(_kb_path)] if per_kb else [ApiKeyDep],
                       generate_unique_id_function=(lambda route: f"kb_{route.name}") if per_kb else
                       generate_unique_id)
    router.get("", response_model=DocumentList)(list_documents)
    router.get("/{doc_id}", response_model=DocumentDetail, responses={404: {"model": ErrorOut}})(get_document)
    router.post(
        "", response_model=DocumentCreated, status_code=201, openapi_extra={"requestBody": _UPLOAD_BODY},
        responses={200: {"model": DocumentCreated, "description": "the same content was already indexed"},
                   403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 413: {"model": ErrorOut},
                   415: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    )(add_document)
    router.delete("/{doc_id}", response_model=DocumentDeleted,
                  responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}})(
        delete_document)
    return router


router = build_router("/v1/documents")
kb_router = build_router("/v1/knowledge_bases/{kb}/documents")
