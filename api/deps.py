"""The dependencies every router shares: the engine, the upload stager, the caller, the knowledge-base checks.

Usage::

    @router.get("/kbs/{kb}/documents")
    def list_documents(kb: str, engine: EngineDep, who: CallerDep) -> list[DocumentInfo]:
        readable(engine, who, kb)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Caller, find_key
from api.uploads import Stager
from rag.engine import Engine
from rag.settings import ApiKey

# auto_error off: without keys configured no header is needed, and a missing one is our 401, not FastAPI's 403.
bearer = HTTPBearer(
    auto_error=False,
    description="An API key from the keys file (RAG_API_KEYS_FILE); not needed when none are configured.",
)


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


def stager_of(request: Request) -> Stager:
    return request.app.state.stager


def caller(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """The caller of this request, or 401 (``Authorization: Bearer KEY``, read by FastAPI's security helper,
    so ``/docs`` has an Authorize button)."""
    keys: list[ApiKey] = request.app.state.api_keys
    if not keys:
        return Caller(None)
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or not credentials.credentials.strip():
        raise HTTPException(401, "an API key is required: send the header 'Authorization: Bearer KEY'", challenge)
    key = find_key(keys, credentials.credentials.strip())
    if key is None:
        raise HTTPException(401, "the API key is not valid", challenge)
    return Caller(key)


EngineDep = Annotated[Engine, Depends(engine_of)]
StagerDep = Annotated[Stager, Depends(stager_of)]
CallerDep = Annotated[Caller, Depends(caller)]


def readable(engine: Engine, who: Caller, kb: str, write: bool = False) -> None:
    """Access first (403 says nothing about existence), then existence (404 from ``UnknownKnowledgeBase``)."""
    who.require(kb, write)
    engine.knowledge_bases.require(kb)
