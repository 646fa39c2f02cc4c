"""Dependencies shared by the routes: settings, the QA service, the API key check, the read-only switch."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from api.errors import HTTPError
from qa.config import Settings
from qa.errors import IndexNotFoundError, QAError, ReadOnlyError
from qa.factory import service_from_settings
from qa.service import QAService


def build_service(settings: Settings) -> QAService:
    """A service wired from settings (embedder, retrieval and index config); the index is not opened yet."""
    return service_from_settings(settings, serving=True)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_service(request: Request) -> QAService:
    """The app's service; when its index could not be opened at startup, that error (-> 503) is raised again."""
    service: QAService | None = request.app.state.service
    if service is None or not service.loaded:
        error: QAError | None = getattr(request.app.state, "startup_error", None)
        where = f" from {service.index_dir}" if service is not None else ""
        raise error or IndexNotFoundError(f"no index loaded{where} yet; the service is starting")
    return service


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[QAService, Depends(get_service)]

_bearer = HTTPBearer(auto_error=False, description="QA_API_KEY, when the server sets one")


def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Checks `Authorization: Bearer <key>` when QA_API_KEY is set (constant-time comparison)."""
    if settings.api_key is None:
        return
    key = settings.api_key
    # A SecretStr from the environment; a plain str when code built the settings with model_copy(update=...).
    expected = (key.get_secret_value() if isinstance(key, SecretStr) else str(key)).encode("utf-8")
    # Header values arrive decoded as latin-1; encoding back gives the raw bytes (UTF-8 for a non-ASCII key).
    given = credentials.credentials.encode("latin-1", errors="replace") if credentials else b""
    if not hmac.compare_digest(given, expected):
        raise HTTPError(401, "missing or invalid API key: send the header 'Authorization: Bearer <key>'",
                        "unauthorized", headers={"WWW-Authenticate": "Bearer"})


def require_writable(settings: SettingsDep) -> None:
    """Refuses document changes when QA_READ_ONLY is set."""
    if settings.read_only:
        raise ReadOnlyError("this server is read-only (QA_READ_ONLY=true): documents cannot be added or deleted")


ApiKeyDep = Depends(require_api_key)
WritableDep = Depends(require_writable)
