"""GET /health: is the index loaded, how big is it, which model answers. Open without an API key."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import SettingsDep
from api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "index not loaded"}})
def health(*, request: Request, settings: SettingsDep) -> Health | JSONResponse:
    """Liveness and readiness: 200 with counts when the index is loaded, 503 with the reason otherwise."""
    service = request.app.state.service
    if service is None or not service.loaded:
        error = getattr(request.app.state, "startup_error", None)
        body = Health(status="unavailable", index_loaded=False, documents=0, passages=0,
                      model=service.embedder.name if service else settings.embedder, read_only=settings.read_only,
                      error=str(error) if error else "index not loaded yet", pid=os.getpid())
        return JSONResponse(body.model_dump(), status_code=503)
    vectors = service.vector_progress()
    return Health(status="ok", index_loaded=True, documents=len(service.documents()),
                  passages=service.passage_count(), model=service.embedder.name, read_only=settings.read_only,
                  passages_with_vectors=vectors.done, index_version=service.version or None, pid=os.getpid())
