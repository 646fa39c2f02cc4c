"""The web app: `create_app()` factory, lifespan that opens the index, and `serve()` for `qa serve`.

Run with ``uvicorn api.main:create_app --factory`` (settings from QA_* environment variables) or ``qa serve``.
Nothing is built at import time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.deps import build_service
from api.errors import BodySizeLimitMiddleware, install_error_handlers
from api.routes import documents, health, openai, search
from api.schemas import DocumentCreate
from qa.config import Settings, get_settings
from qa.errors import IndexCorruptError, IndexMismatchError, IngestError, NoDocumentsError
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
    if app.state.service is None:
        app.state.service = await run_in_threadpool(build_service, settings)
    service: QAService = app.state.service
    if not service.loaded:
        try:
            await run_in_threadpool(service.open, list(settings.corpus))
        except (IndexMismatchError, IndexCorruptError, NoDocumentsError, IngestError) as e:
            logger.error("cannot open the index in %s: %s", service.index_dir, e)
            app.state.startup_error = e
    yield


def _openapi_with_limits(app: FastAPI, settings: Settings) -> None:
    """Complete the OpenAPI schema: the configured limits (QA_MAX_TOP_K, QA_MAX_QUERY_CHARS) on SearchRequest,
    and DocumentCreate, which the upload route reads by hand (it also takes multipart) so FastAPI does not see it.
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
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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
    )
    app.state.settings = settings
    app.state.service = service
    app.state.startup_error = None

    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(documents.router)
    app.include_router(openai.router)

    @app.get("/", include_in_schema=False)
    def chat_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])
    # Added last so it runs first: an oversized body is refused before any other work.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    _openapi_with_limits(app, settings)
    return app


def serve(settings: Settings) -> None:
    """Run the app with uvicorn on settings.host:settings.port until interrupted (used by `qa serve`)."""
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
