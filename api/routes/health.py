"""GET /health: is the index loaded, how big is it, which model answers, and each knowledge base's state. Open
without an API key (the knowledge bases are listed only to a caller whose key covers them)."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from api.deps import SettingsDep, bearer, caller_access, get_manager
from api.schemas import Health, KnowledgeBaseHealth

router = APIRouter(tags=["health"])


def _knowledge_bases(request: Request, settings, credentials) -> list[KnowledgeBaseHealth] | None:
    access = caller_access(request, settings, credentials.credentials if credentials else None)
    if access is None:
        return None
    return [KnowledgeBaseHealth(name=s.name, loaded=s.loaded, documents=s.documents, passages=s.passages)
            for s in get_manager(request).status() if access.can_read(s.name)]


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "index not loaded"}})
def health(
    *, request: Request, settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Health | JSONResponse:
    """Liveness and readiness: 200 with counts when the index is loaded, 503 with the reason otherwise."""
    service = request.app.state.service
    kbs = _knowledge_bases(request, settings, credentials)
    if service is None or not service.loaded:
        error = getattr(request.app.state, "startup_error", None)
        body = Health(status="unavailable", index_loaded=False, documents=0, passages=0,
                      model=service.embedder.name if service else settings.embedder, read_only=settings.read_only,
                      error=str(error) if error else "index not loaded yet", pid=os.getpid(), knowledge_bases=kbs)
        return JSONResponse(body.model_dump(), status_code=503)
    vectors = service.vector_progress()
    return Health(status="ok", index_loaded=True, documents=len(service.documents()),
                  passages=service.passage_count(), model=service.embedder.name, read_only=settings.read_only,
                  passages_with_vectors=vectors.done, index_version=service.version or None, pid=os.getpid(),
                  knowledge_bases=kbs)
