"""Knowledge bases: list, create, read, update, delete. Their documents are the document routes mounted under
/v1/knowledge_bases/{kb}/documents (see `api.main`).

Creating and deleting take the admin key (or a server without keys); a scoped key sees, and may describe, only the
knowledge bases it covers.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import AccessDep, ApiKeyDep, ManagerDep, SettingsDep, check_read, check_write, require_writable
from api.errors import HTTPError
from api.schemas import (
    ErrorOut,
    KnowledgeBaseCreate,
    KnowledgeBaseDeleted,
    KnowledgeBaseList,
    KnowledgeBaseOut,
    KnowledgeBaseUpdate,
    model_id,
)
from qa.knowledge_bases.access import Access
from qa.knowledge_bases.manager import KnowledgeBaseManager
from qa.knowledge_bases.registry import KnowledgeBase, check_name

router = APIRouter(prefix="/v1/knowledge_bases", tags=["knowledge bases"], dependencies=[ApiKeyDep])

_ERRORS = {403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}, 422: {"model": ErrorOut}}


def _out(kb: KnowledgeBase, manager: KnowledgeBaseManager, access: Access) -> KnowledgeBaseOut:
    status = manager.status([kb.name])
    loaded = bool(status) and status[0].loaded
    return KnowledgeBaseOut(name=kb.name, description=kb.description, embedder=kb.embedder, model=kb.model,
                            created=kb.created, model_id=model_id(kb.name), loaded=loaded,
                            documents=status[0].documents if status else None,
                            passages=status[0].passages if status else None, writable=access.can_write(kb.name))


def _require_admin(access: Access, what: str) -> None:
    if not access.admin:
        raise HTTPError(403, f"only the admin key (QA_API_KEY) may {what} knowledge bases", "forbidden")


@router.get("", response_model=KnowledgeBaseList)
def list_knowledge_bases(*, manager: ManagerDep, access: AccessDep) -> KnowledgeBaseList:
    """The knowledge bases the caller's key covers (all of them for the admin key), `default` first."""
    items = [_out(kb, manager, access) for kb in manager.registry.list() if access.can_read(kb.name)]
    return KnowledgeBaseList(knowledge_bases=items, total=len(items))


@router.post("", response_model=KnowledgeBaseOut, status_code=201, responses=_ERRORS)
async def create_knowledge_base(*, body: KnowledgeBaseCreate, manager: ManagerDep, access: AccessDep,
                                settings: SettingsDep, response: Response) -> KnowledgeBaseOut:
    """Create an empty knowledge base (409 when the name is taken); add documents under its /documents."""
    require_writable(settings)
    _require_admin(access, "create")
    kb = await run_in_threadpool(manager.create, body.name, body.description, body.embedder, body.model)
    response.headers["Location"] = f"/v1/knowledge_bases/{kb.name}"
    return _out(kb, manager, access)


@router.get("/{kb}", response_model=KnowledgeBaseOut, responses=_ERRORS)
def get_knowledge_base(*, kb: str, manager: ManagerDep, access: AccessDep) -> KnowledgeBaseOut:
    """One knowledge base with its counts (when loaded)."""
    check_read(access, check_name(kb))
    return _out(manager.registry.get(kb), manager, access)


@router.patch("/{kb}", response_model=KnowledgeBaseOut, responses=_ERRORS)
def update_knowledge_base(*, kb: str, body: KnowledgeBaseUpdate, manager: ManagerDep, access: AccessDep,
                          settings: SettingsDep) -> KnowledgeBaseOut:
    """Change a knowledge base's description (a key that may write it may describe it)."""
    require_writable(settings)
    check_write(access, check_name(kb))
    return _out(manager.registry.update(kb, body.description), manager, access)


@router.delete("/{kb}", response_model=KnowledgeBaseDeleted, responses=_ERRORS)
async def delete_knowledge_base(*, kb: str, manager: ManagerDep, access: AccessDep,
                                settings: SettingsDep) -> KnowledgeBaseDeleted:
    """Delete a knowledge base with its documents, index folder and Milvus collections (not `default`: 409)."""
    require_writable(settings)
    check_name(kb)
    _require_admin(access, "delete")
    before = _out(manager.registry.get(kb), manager, access)
    await run_in_threadpool(manager.delete, kb)
    return KnowledgeBaseDeleted(deleted=True, knowledge_base=before.model_copy(update={"loaded": False}))
