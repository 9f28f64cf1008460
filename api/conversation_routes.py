"""Conversations kept by the server per knowledge base: list, open, rename, delete, and add turns.

Whoever may read a KB may keep conversations over it (asking is reading). The page sends a
conversation's turns as the ``history`` of ``POST /kbs/{kb}/ask``; the answer path resolves follow-ups.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from api.deps import CallerDep, EngineDep, readable
from api.errors import documented
from stores.conversations import MAX_TITLE_CHARS, ConversationRecord, Conversations, TurnRecord

router = APIRouter(tags=["conversations"])


def conversations_of(request: Request) -> Conversations:
    return request.app.state.conversations


ConversationsDep = Annotated[Conversations, Depends(conversations_of)]


@dataclass(frozen=True, slots=True)
class Conversation(ConversationRecord):
    """A conversation with its turns, oldest first (an assistant turn's ``answer`` is the whole verified answer)."""

    messages: list[TurnRecord]


class NewConversation(BaseModel):
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)


class NewTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=50_000)
    answer: dict[str, Any] | None = None
    replace_from: int | None = Field(
        None, ge=0, description="Drop the turns from this seq on first (a regenerated answer replaces the old)."
    )


def existing(conversations: Conversations, kb: str, conversation_id: str) -> ConversationRecord:
    record = conversations.get(kb, conversation_id)
    if record is None:
        raise HTTPException(404, f"no conversation {conversation_id!r} in the knowledge base {kb!r}")
    return record


@router.get("/kbs/{kb}/conversations", responses=documented(401, 403, 404, 422))
def list_conversations(
    kb: str, engine: EngineDep, who: CallerDep, conversations: ConversationsDep
) -> list[ConversationRecord]:
    """The KB's conversations, most recently used first."""
    readable(engine, who, kb)
    record = next((r for r in engine.knowledge_bases.list() if r.name == kb), None)
    if record is not None:  # those of an earlier KB of the same name, deleted since, go
        conversations.forget_before(kb, record.created_at)
    return conversations.list(kb)


@router.post("/kbs/{kb}/conversations", status_code=201, responses=documented(400, 401, 403, 404, 422))
def create_conversation(
    kb: str, body: NewConversation, engine: EngineDep, who: CallerDep, conversations: ConversationsDep
) -> ConversationRecord:
    readable(engine, who, kb)
    try:
        return conversations.create(kb, body.title)
    except ValueError as error:
        raise HTTPException(422, str(error)) from error


@router.get("/kbs/{kb}/conversations/{conversation_id}", responses=documented(401, 403, 404, 422))
def get_conversation(
    kb: str, conversation_id: str, engine: EngineDep, who: CallerDep, conversations: ConversationsDep
) -> Conversation:
    readable(engine, who, kb)
    record = existing(conversations, kb, conversation_id)
    return Conversation(**asdict(record), messages=conversations.turns(conversation_id))


@router.patch("/kbs/{kb}/conversations/{conversation_id}", responses=documented(400, 401, 403, 404, 422))
def rename_conversation(
    kb: str,
    conversation_id: str,
    body: NewConversation,
    engine: EngineDep,
    who: CallerDep,
    conversations: ConversationsDep,
) -> ConversationRecord:
    readable(engine, who, kb)
    existing(conversations, kb, conversation_id)
    try:
        conversations.rename(kb, conversation_id, body.title)
    except ValueError as error:
        raise HTTPException(422, str(error)) from error
    return existing(conversations, kb, conversation_id)


@router.delete("/kbs/{kb}/conversations/{conversation_id}", responses=documented(401, 403, 404, 422))
def delete_conversation(
    kb: str, conversation_id: str, engine: EngineDep, who: CallerDep, conversations: ConversationsDep
) -> dict[str, Any]:
    readable(engine, who, kb)
    if not conversations.delete(kb, conversation_id):
        raise HTTPException(404, f"no conversation {conversation_id!r} in the knowledge base {kb!r}")
    return {"deleted": True, "conversation_id": conversation_id}


@router.post(
    "/kbs/{kb}/conversations/{conversation_id}/turns", status_code=201, responses=documented(400, 401, 403, 404, 422)
)
def add_turn(
    kb: str, conversation_id: str, body: NewTurn, engine: EngineDep, who: CallerDep, conversations: ConversationsDep
) -> TurnRecord:
    """Append a turn (the page adds the question, then the verified answer)."""
    readable(engine, who, kb)
    existing(conversations, kb, conversation_id)
    return conversations.append(conversation_id, body.role, body.content, body.answer, body.replace_from)
