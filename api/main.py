"""The web app: `create_app()` factory, lifespan that opens the index, and `serve()` for `qa serve`.

Run with ``uvicorn api.main:create_app --factory`` (settings from QA_* environment variables) or ``qa serve``.
Nothing is built at import time.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api.deps import ApiKeyDep, build_service
from api.errors import BodySizeLimitMiddleware, install_error_handlers
from api.observability import REQUEST_ID_HEADER, Metrics, RequestContextMiddleware, configure_logging
from api.observability import router as metrics_router
from api.routes import documents, health, knowledge_bases, openai, search
from api.schemas import DocumentCreate
from qa.config import Settings, get_settings
from qa.errors import (
    BackendError,
    EmbedderError,
    IndexBusyError,
    IndexCorruptError,
    IndexMismatchError,
    IndexWriteError,
    IngestError,
    NoDocumentsError,
    QAError,
)
from qa.index.locks import ServeLock
from qa.knowledge_bases.access import KeyStore
from qa.knowledge_bases.manager import KnowledgeBaseManager
from qa.service import QAService

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the service if none was given, then load the saved index or build it from the corpus.

    When the index cannot be opened (another model's index, a corrupt one, an empty corpus) the app still starts:
    /health says why with a 503 and the other routes answer 503 with the same message.
    """
    settings: Settings = app.state.settings
    # Marks the folder as served (shared with the other workers), so `qa index` refuses to write it meanwhile.
    serve_lock = ServeLock(settings.index_dir)
    try:
        await run_in_threadpool(serve_lock.hold)
    except IndexWriteError as e:  # the folder cannot be made: opening the index says why below
        logger.warning("cannot mark %s as served: %s", settings.index_dir, e)
    owned = app.state.service is None  # a service this app builds is this app's to stop
    try:
        if owned:
            app.state.service = await run_in_threadpool(build_service, settings)
        service: QAService = app.state.service
        if not service.loaded:
            await run_in_threadpool(service.open, list(settings.corpus))
    except (IndexMismatchError, IndexCorruptError, IndexWriteError, IndexBusyError, NoDocumentsError, IngestError,
            BackendError, EmbedderError) as e:
        logger.error("cannot open the index in %s: %s", settings.index_dir, e)
        app.state.startup_error = e
    manager: KnowledgeBaseManager = app.state.kbs
    if app.state.service is not None:
        manager.attach_default(app.state.service)
    await run_in_threadpool(_start_knowledge_bases, manager, settings)
    try:
        yield
    finally:
        await run_in_threadpool(manager.close)
        if owned and app.state.service is not None:
            await run_in_threadpool(app.state.service.close)
        serve_lock.release()


def _start_knowledge_bases(manager: KnowledgeBaseManager, settings: Settings) -> None:
    """Finish what a crash left of a knowledge base create or delete, then load those QA_KB_PRELOAD names."""
    try:
        manager.clean()
    except OSError as e:
        logger.warning("cannot clean the knowledge base folder %s: %s", settings.data_dir, e)
    for name in settings.kb_preload:
        try:
            manager.service(name, allow_empty=True)
        except QAError as e:
            logger.error("cannot load knowledge base %s: %s", name, e)


_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
# Responses every operation of a kind can give, added to the schema where a route does not list them itself.
_BODY_ERRORS = {"400": "invalid JSON body", "413": "request body or upload larger than the limit",
                "415": "wrong or missing Content-Type, or a compressed body"}
_COMMON_ERRORS = {"422": "a parameter or body field is invalid",
                  "503": "the index is not loaded (the message says why; /health too)"}
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def _complete_openapi(app: FastAPI, settings: Settings) -> None:
    """Complete the OpenAPI schema so it says what the server actually does.

    - the configured limits (QA_MAX_TOP_K, QA_MAX_QUERY_CHARS) on SearchRequest, and DocumentCreate, which the
      upload route reads by hand (it also takes multipart) so FastAPI does not see it;
    - the bearer security requirement only when QA_API_KEY is set (and then its 401 on every protected operation);
    - the error responses shared by all operations (400/413/415 for bodies, 422, 503), with the ErrorOut body.
    """
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["DocumentCreate"] = DocumentCreate.model_json_schema(
                ref_template="#/components/schemas/{model}")
            props = components.get("SearchRequest", {}).get("properties", {})
            if "query" in props:
                props["query"].update(minLength=1, maxLength=settings.max_query_chars)
            if "top_k" in props:
                props["top_k"].update(minimum=1, maximum=settings.max_top_k)
            keyed = settings.api_key is not None
            if not keyed:
                schema["components"].pop("securitySchemes", None)
            for path, item in schema.get("paths", {}).items():
                for method, operation in item.items():
                    if method not in _HTTP_METHODS:
                        continue
                    responses = operation.setdefault("responses", {})
                    if "HTTPValidationError" in json.dumps(responses.get("422", {})):
                        # FastAPI's default 422 body ({"detail": [...]}) is not what `api.errors` sends.
                        responses["422"] = _error_response(_COMMON_ERRORS["422"])
                    if not keyed or path == "/health":  # /health reads a key only to list knowledge bases
                        operation.pop("security", None)
                    elif operation.get("security"):
                        responses.setdefault("401", _error_response("missing or invalid API key"))
                    if path == "/health":
                        continue
                    if "requestBody" in operation:
                        for status, description in _BODY_ERRORS.items():
                            responses.setdefault(status, _error_response(description))
                    if path.startswith("/v1/"):
                        for status, description in _COMMON_ERRORS.items():
                            responses.setdefault(status, _error_response(description))
            if "HTTPValidationError" not in json.dumps(schema["paths"]):
                components.pop("HTTPValidationError", None)
                components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_docs_routes(app: FastAPI) -> None:
    """/openapi.json, /docs and /redoc: they follow the API key rule (open without QA_API_KEY, keyed with it)."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[ApiKeyDep])
    def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[ApiKeyDep])
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - API")

    @app.get("/redoc", include_in_schema=False, dependencies=[ApiKeyDep])
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - API")


def create_app(settings: Settings | None = None, service: QAService | None = None) -> FastAPI:
    """The FastAPI app.

    Args:
        settings: defaults to the process settings (QA_* environment variables, .env).
        service: an already built (and possibly loaded) service, e.g. shared by tests; built from settings
            in the lifespan when omitted.

    Returns:
        The app; its lifespan opens the index, so use it as ``with TestClient(create_app(...)) as client``.
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="zhqa",
        summary="Chinese document question answering with cited source passages (retrieval, no LLM).",
        version="0.1.0",
        lifespan=lifespan,
        # Served by `_add_docs_routes`, behind the API key when one is set.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.startup_error = None
    app.state.kbs = KnowledgeBaseManager(settings)
    app.state.keys = KeyStore(settings.keys_file) if settings.keys_file else None
    app.state.metrics = Metrics(app)

    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(documents.router)
    app.include_router(documents.kb_router)  # the same document routes for each knowledge base
    app.include_router(knowledge_bases.router)
    app.include_router(openai.router)
    app.include_router(metrics_router)
    _add_docs_routes(app)

    @app.get("/", include_in_schema=False)
    def chat_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Middleware added later runs earlier. The size limit refuses an oversized body before any other work; CORS
    # wraps it, so a browser can read that refusal too; the request context (id, metrics, access log) wraps
    # everything, refusals included.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
                           expose_headers=[REQUEST_ID_HEADER])
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    _complete_openapi(app, settings)
    return app


def serve(settings: Settings, workers: int = 1) -> None:
    """Run the app with uvicorn on settings.host:settings.port until interrupted (used by `qa serve`).

    With several `workers`, each is a process of its own serving the same index folder: a change made through one
    is written under the folder's write lock and picked up by the others on their next request (see
    `QAService.refresh`). Logs go to stderr as JSON lines with the request id (see `api.observability`).
    """
    import uvicorn

    configure_logging()
    options = {"host": settings.host, "port": settings.port, "log_config": None, "access_log": False,
               "log_level": "info"}
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    # The index is opened (or built from the corpus) once, here: the workers then only load it, and embed what it
    # still lacks in the background (one of them at a time).
    service = build_service(settings)
    service.open(list(settings.corpus))
    service.close()
    # Workers are new processes that read their settings from the environment; the index folder may have come
    # from the command line.
    os.environ["QA_INDEX_DIR"] = str(settings.index_dir)
    if settings.kb_preload:
        os.environ["QA_KB_PRELOAD"] = ",".join(settings.kb_preload)
    # The cores are shared out: N workers each starting an OpenMP team on every core made a load run's p99 4.4 s
    # (0.8-0.9 s with one thread each on 2 cores). An explicit OMP_NUM_THREADS is kept.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    uvicorn.run("api.main:worker_app", factory=True, workers=workers, **options)


def worker_app() -> FastAPI:
    """The app of one `qa serve --workers N` process: settings from the environment, JSON logs."""
    configure_logging()
    return create_app()
