"""HTTP status codes for domain errors, readable validation messages, and the request body size limit.

Every error body has the same shape: ``{"detail": "<one sentence>", "type": "<kind>"}`` (validation errors add
``errors``, one entry per invalid field). Under the OpenAI routes the body also carries OpenAI's
``{"error": {"message", "type", "param", "code"}}`` so OpenAI clients show the message. Bad input always gets a
4xx, never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.errors import (
    BackendError,
    DocumentNotFoundError,
    EmbedderError,
    IndexBusyError,
    IndexCorruptError,
    IndexGoneError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexWriteError,
    IngestError,
    InvalidKnowledgeBaseError,
    InvalidQueryError,
    KnowledgeBaseEmptyError,
    KnowledgeBaseExistsError,
    KnowledgeBaseNotFoundError,
    NoDocumentsError,
    QAError,
    ReadOnlyError,
)

logger = logging.getLogger(__name__)

# Domain error -> (status, type). Looked up along the exception's MRO, so subclasses inherit their parent's code.
STATUS_BY_ERROR: dict[type[QAError], tuple[int, str]] = {
    InvalidQueryError: (422, "invalid_request"),
    DocumentNotFoundError: (404, "not_found"),
    IngestError: (422, "unreadable_document"),
    ReadOnlyError: (403, "read_only"),
    NoDocumentsError: (409, "conflict"),
    IndexNotFoundError: (503, "index_unavailable"),
    IndexMismatchError: (503, "index_unavailable"),
    IndexCorruptError: (503, "index_unavailable"),
    IndexWriteError: (503, "index_unwritable"),  # 507 when the disk is full, see `qa_error_handler`
    IndexBusyError: (409, "index_busy"),
    IndexGoneError: (404, "not_found"),
    BackendError: (503, "backend_unavailable"),
    EmbedderError: (503, "embedder_unavailable"),
    InvalidKnowledgeBaseError: (422, "invalid_request"),
    KnowledgeBaseNotFoundError: (404, "not_found"),
    KnowledgeBaseExistsError: (409, "conflict"),
    KnowledgeBaseEmptyError: (409, "empty_knowledge_base"),
}

_TYPE_BY_STATUS = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                   405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
                   415: "unsupported_media_type", 422: "invalid_request", 500: "internal_error",
                   503: "unavailable", 507: "insufficient_storage"}


# Paths whose clients are OpenAI SDKs, which read the message from {"error": {"message": ...}}.
_OPENAI_PATHS = ("/v1/chat/", "/v1/models")


def error_response(status: int, detail: str, type_: str | None = None, *, errors: list | None = None,
                   headers: dict[str, str] | None = None, path: str = "") -> JSONResponse:
    """The JSON error body every handler returns (`path` selects the OpenAI error object too)."""
    kind = type_ or _TYPE_BY_STATUS.get(status, "error")
    body: dict[str, Any] = {"detail": detail, "type": kind}
    if errors is not None:
        body["errors"] = errors
    if path.startswith(_OPENAI_PATHS):
        param = errors[0]["field"] if errors else None
        body["error"] = {"message": detail, "type": kind, "param": param, "code": str(status)}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


class BodyTooLargeError(StarletteHTTPException):
    """The request body passed QA_MAX_BODY_BYTES (raised while it streams in, before it is read whole)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


class HTTPError(StarletteHTTPException):
    """An HTTP error raised by a route with its own status and type (415 unsupported type, 413 upload too big…)."""

    def __init__(self, status: int, detail: str, type_: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(status, detail, headers)
        self.type = type_


class BodySizeLimitMiddleware:
    """Rejects request bodies over `max_bytes` with 413 without buffering them.

    A declared Content-Length over the limit is refused before anything is read; a body without one (chunked) is
    counted as it streams and cut off at the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                # Bodies are never decompressed: a gzip body would only be misread as binary or invalid JSON, and
                # refusing it outright keeps a small compressed body from expanding into a huge one.
                await error_response(415, f"compressed request bodies are not accepted (Content-Encoding: "
                                          f"{value.decode('latin-1')[:40]}); send the body uncompressed",
                                     "unsupported_media_type", path=scope.get("path", ""))(scope, receive, send)
                return
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await error_response(400, "Content-Length header is not a number",
                                         path=scope.get("path", ""))(scope, receive, send)
                    return
                if declared > self.max_bytes:
                    response = error_response(413, f"request body of {declared} bytes is larger than the limit "
                                                   f"of {self.max_bytes} bytes", headers={"Connection": "close"},
                                              path=scope.get("path", ""))
                    await response(scope, receive, send)
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError as e:
            # Routes turn it into a 413 themselves; this catches a read outside any route (e.g. in a middleware).
            if started:
                raise
            await error_response(413, str(e.detail), path=scope.get("path", ""))(scope, receive, send)


def _field(loc: tuple | list) -> str:
    """`top_k`, `messages.0.content` from a pydantic location (its first item says where: body, query, path…)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        where, parts = parts[0], parts[1:]
        return ".".join(parts) or where
    return ".".join(parts) or "body"


def _readable(error: dict[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    kind = error.get("type", "")
    if kind == "json_invalid":
        return f"invalid JSON body: {ctx.get('error', 'cannot parse')} at character {error['loc'][-1]}"
    if kind == "missing":
        return f"{_field(error['loc'])}: field required"
    if kind == "extra_forbidden":
        return f"{_field(error['loc'])}: unknown field"
    if kind == "model_attributes_type" and tuple(error.get("loc", ()))[:1] == ("body",) and len(error["loc"]) == 1:
        return "the body must be a JSON object"
    message = str(error.get("msg", "invalid value"))
    # Pydantic prefixes messages from custom validators with "Value error, "; drop it.
    message = message.removeprefix("Value error, ")
    return f"{_field(error['loc'])}: {message}"


def _utf8_problem(body: bytes | None) -> str | None:
    """Where a body stops being UTF-8 (JSON must be UTF-8), or None."""
    if not body:
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"invalid JSON body: it is not UTF-8 text (byte 0x{body[e.start]:02x} at position {e.start})"
    return None


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if errors and all(e.get("type") == "json_invalid" for e in errors):
        # The body was read whole already (and within the size limit) to be parsed; `_body` is Starlette's cache.
        message = _utf8_problem(getattr(request, "_body", None)) or _readable(errors[0])
        return error_response(400, message, "invalid_json", path=request.url.path)
    content_type = request.headers.get("content-type", "")
    body_errors = [e for e in errors if tuple(e.get("loc", ()))[:1] == ("body",)]
    if body_errors and "json" not in content_type.lower() and request.method in ("POST", "PUT", "PATCH"):
        # A JSON endpoint got form data or plain text: say what to send rather than listing every field.
        return error_response(415, f"send a JSON body with Content-Type: application/json "
                                   f"(got {content_type or 'no content type'})", "unsupported_media_type",
                              path=request.url.path)
    messages = [_readable(e) for e in errors]
    details = [{"field": _field(e.get("loc", ())), "message": m, "type": e.get("type")}
               for e, m in zip(errors, messages)]
    return error_response(422, "; ".join(messages), "invalid_request", errors=details, path=request.url.path)


async def qa_error_handler(request: Request, exc: Exception) -> JSONResponse:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            status, kind = STATUS_BY_ERROR[cls]
            break
    else:
        status, kind = 500, "internal_error"
    if isinstance(exc, IndexWriteError) and exc.no_space:
        status, kind = 507, "insufficient_storage"
    if status >= 500:
        logger.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc)
    return error_response(status, str(exc), kind, path=request.url.path)


def _allowed_methods(request: Request) -> str | None:
    """Every method the matched path template answers (Starlette lists only the first route's methods)."""
    template = getattr(request.scope.get("route"), "path", None)
    if not template:
        return None
    methods: set[str] = set()
    for route in request.app.routes:
        if getattr(route, "path", None) == template:
            methods |= set(getattr(route, "methods", None) or ())
    paths = request.app.openapi().get("paths", {})
    methods |= {m.upper() for m in paths.get(template, {}) if m.lower() in _HTTP_METHODS}
    return ", ".join(sorted(methods)) if methods else None


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = getattr(exc, "type", None)
    headers = dict(getattr(exc, "headers", None) or {})
    detail = str(exc.detail)
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = allowed
        if detail == "Method Not Allowed":
            detail = f"method {request.method} is not allowed on {request.url.path}" + (
                f"; use {allowed}" if allowed else "")
    elif exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}; the routes are listed at /docs"
    return error_response(exc.status_code, detail, kind, headers=headers or None, path=request.url.path)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Last resort for a bug: a JSON 500 with the request id, the traceback in the log (never the request body)."""
    request_id = getattr(request.state, "request_id", None)
    logger.error("%s %s -> 500: unexpected %s", request.method, request.url.path, type(exc).__name__,
                 exc_info=exc)
    detail = "internal error" + (f" (request id {request_id})" if request_id else "")
    return error_response(500, detail, "internal_error", path=request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn domain and validation errors into JSON error bodies."""
    app.add_exception_handler(RequestValidationError, validation_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(QAError, qa_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected_error_handler)
