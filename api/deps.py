"""Dependencies shared by the routes: settings, the knowledge bases and their services, the API key check (admin
key or a key scoped to knowledge bases), the read-only switch."""

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
from qa.knowledge_bases.access import ADMIN, Access, KeyStore
from qa.knowledge_bases.manager import KnowledgeBaseManager
from qa.knowledge_bases.registry import DEFAULT_KB, check_name
from qa.service import QAService


def build_service(settings: Settings) -> QAService:
    """A service wired from settings (embedder, retrieval and index config); the index is not opened yet."""
    return service_from_settings(settings, serving=True)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_manager(request: Request) -> KnowledgeBaseManager:
    return request.app.state.kbs


def _default_service(request: Request) -> QAService:
    """The app's service; when its index could not be opened at startup, that error (-> 503) is raised again."""
    service: QAService | None = request.app.state.service
    if service is None or not service.loaded:
        error: QAError | None = getattr(request.app.state, "startup_error", None)
        where = f" from {service.index_dir}" if service is not None else ""
        raise error or IndexNotFoundError(f"no index loaded{where} yet; the service is starting")
    return service


bearer = HTTPBearer(auto_error=False, description="QA_API_KEY, or a key of QA_KEYS_FILE, when the server sets one")


def _secret(value: SecretStr | str) -> str:
    # A SecretStr from the environment; a plain str when code built the settings with model_copy(update=...).
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def caller_access(request: Request, settings: Settings, token: str | None) -> Access | None:
    """Who sends `token`: the admin, a scoped key of the keys file, or None (no valid key).

    A server with neither QA_API_KEY nor QA_KEYS_FILE is open: everyone is admin.
    """
    if settings.api_key is None and settings.keys_file is None:
        return ADMIN
    if token is None:
        return None
    # Header values arrive decoded as latin-1; encoding back gives the raw bytes (UTF-8 for a non-ASCII key).
    given = token.encode("latin-1", errors="replace")
    if settings.api_key is not None and hmac.compare_digest(given, _secret(settings.api_key).encode("utf-8")):
        return ADMIN
    store: KeyStore | None = getattr(request.app.state, "keys", None)
    return store.lookup(given.decode("utf-8", errors="replace")) if store is not None else None


def require_api_key(
    request: Request, settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Access:
    """Checks `Authorization: Bearer <key>` when QA_API_KEY or QA_KEYS_FILE is set; returns the caller's access."""
    access = caller_access(request, settings, credentials.credentials if credentials else None)
    if access is None:
        raise HTTPError(401, "missing or invalid API key: send the header 'Authorization: Bearer <key>'",
                        "unauthorized", headers={"WWW-Authenticate": "Bearer"})
    return access


AccessDep = Annotated[Access, Depends(require_api_key)]


def check_read(access: Access, name: str) -> None:
    """403 for a knowledge base the key does not cover (named or not, existing or not: nothing is revealed)."""
    if not access.can_read(name):
        raise HTTPError(403, f"this API key has no access to knowledge base {name!r}", "forbidden")


def check_write(access: Access, name: str) -> None:
    check_read(access, name)
    if not access.can_write(name):
        raise HTTPError(403, f"this API key may only read knowledge base {name!r}", "forbidden")


def kb_service(request: Request, access: Access, name: str, *, write: bool = False,
               allow_empty: bool = False) -> QAService:
    """The service of knowledge base `name` after checking the key's scope (`default`: the app's own service)."""
    check_name(name)  # 422 for a bad name before any lookup
    (check_write if write else check_read)(access, name)
    if name == DEFAULT_KB:
        return _default_service(request)
    return get_manager(request).service(name, allow_empty=allow_empty)


def path_kb(request: Request) -> str:
    """The knowledge base of the request path (`/v1/knowledge_bases/{kb}/...`), `default` elsewhere."""
    return request.path_params.get("kb", DEFAULT_KB)


def get_service(request: Request, access: AccessDep) -> QAService:
    """The service of the path's knowledge base, for reading (an empty knowledge base: 409)."""
    return kb_service(request, access, path_kb(request))


def get_listing_service(request: Request, access: AccessDep) -> QAService:
    """As `get_service`, but an empty knowledge base is served (listing its documents gives none)."""
    return kb_service(request, access, path_kb(request), allow_empty=True)


def require_default_loaded(request: Request) -> None:
    """503 with the reason while the default index is not loaded (a chat front end then shows why)."""
    _default_service(request)


def require_writable(settings: SettingsDep) -> None:
    """Refuses document changes when QA_READ_ONLY is set."""
    if settings.read_only:
        raise ReadOnlyError("this server is read-only (QA_READ_ONLY=true): documents cannot be added or deleted")


def get_writable_service(request: Request, access: AccessDep, settings: SettingsDep) -> QAService:
    """The service of the path's knowledge base, for a document change (its first document included)."""
    require_writable(settings)
    return kb_service(request, access, path_kb(request), write=True, allow_empty=True)


ServiceDep = Annotated[QAService, Depends(get_service)]
ListingServiceDep = Annotated[QAService, Depends(get_listing_service)]
WritableServiceDep = Annotated[QAService, Depends(get_writable_service)]
ManagerDep = Annotated[KnowledgeBaseManager, Depends(get_manager)]


ApiKeyDep = Depends(require_api_key)
WritableDep = Depends(require_writable)
