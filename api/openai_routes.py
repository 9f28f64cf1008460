"""OpenAI-compatible chat completions over the knowledge bases: the model ``kb:NAME`` picks the KB.

The answer text carries ``[n]`` markers; the sources they point at come in the extra field
``citations`` (a list of :class:`rag.types.Citation`), and ``rag`` holds the answer's flags
(``answerable``, ``grounded``, ``language``). When streaming, only verified sentences are sent, so
the deltas join to exactly the final answer (an OpenAI client cannot take back text it showed);
the last chunk carries ``citations`` and ``rag``. System messages from the client are ignored:
the grounding rules are not negotiable per request.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from itertools import chain
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Caller, caller
from api.errors import error_body
from api.knowledge_routes import EngineDep, existing_kb
from api.streaming import event_stream
from rag.engine import Engine
from rag.llms.base import GenerationOptions, LLMError, Message
from rag.types import Answer

log = logging.getLogger("rag.api")
router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
CallerDep = Annotated[Caller, Depends(caller)]
MODEL_PREFIX = "kb:"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: only text parts can be read
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """OpenAI's request; unknown fields are accepted and ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="kb:NAME (or the bare KB name).")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=1, description="One answer per request.")
    top_k: int | None = Field(None, ge=1, le=50, description="rag-kb: sources to retrieve.")
    filters: dict[str, Any] | None = Field(None, description="rag-kb: metadata filter.")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rag-kb"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def kb_of(model: str) -> str:
    return model.removeprefix(MODEL_PREFIX)


@router.get("/models")
def list_models(engine: EngineDep, who: CallerDep) -> ModelList:
    return ModelList(
        data=[
            ModelCard(id=MODEL_PREFIX + r.name, created=int(r.created_at))
            for r in engine.knowledge_bases.list()
            if who.may(r.name)
        ]
    )


@router.get("/models/{model}")
def get_model(model: str, engine: EngineDep, who: CallerDep) -> ModelCard:
    kb = kb_of(model)
    who.require(kb)
    for record in engine.knowledge_bases.list():
        if record.name == kb:
            return ModelCard(id=MODEL_PREFIX + kb, created=int(record.created_at))
    raise HTTPException(404, f"no model {model!r}: models are kb:NAME, one per knowledge base (GET /v1/models)")


@router.post("/chat/completions", response_model=None)
def chat_completions(
    body: ChatCompletionRequest, engine: EngineDep, who: CallerDep
) -> dict[str, Any] | StreamingResponse:
    kb = kb_of(body.model)
    who.require(kb)
    try:
        existing_kb(engine, kb)
    except HTTPException as error:
        if error.status_code != 404:
            raise
        raise HTTPException(
            404, f"no model {body.model!r}: models are kb:NAME, one per knowledge base (GET /v1/models)"
        ) from None
    question, history = conversation(body.messages)
    options = generation_options(engine, body)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    try:
        events = engine.answerer.stream(kb, question, history, body.top_k, body.filters, options, verified=True)
        first = next(events)
    except ValueError as error:
        raise HTTPException(422, str(error)) from error
    events = chain([first], events)
    if not body.stream:
        answer = next(e for e in events if isinstance(e, Answer))
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.answer},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": None,
            "citations": _citations(answer),
            "rag": _flags(answer),
        }
    return event_stream(completion_chunks(events, completion_id, created, body.model))


def conversation(messages: list[ChatMessage]) -> tuple[str, list[Message]]:
    """The question (the last message, from the user) and the turns before it."""
    if messages[-1].role != "user":
        raise HTTPException(422, "the last message must be the user's question")
    question = messages[-1].text()
    if not question.strip():
        raise HTTPException(422, "the question is empty")
    history = [{"role": m.role, "content": m.text()} for m in messages[:-1] if m.role in {"user", "assistant"}]
    return question, history


def generation_options(engine: Engine, body: ChatCompletionRequest) -> GenerationOptions:
    s = engine.settings
    return GenerationOptions(
        max_tokens=body.max_completion_tokens or body.max_tokens or s.llm_max_tokens,
        temperature=s.llm_temperature if body.temperature is None else body.temperature,
        top_p=s.llm_top_p if body.top_p is None else body.top_p,
    )


def completion_chunks(events: Iterator[str | Answer], completion_id: str, created: int, model: str) -> Iterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        for event in events:
            if isinstance(event, Answer):
                yield chunk({}, "stop", citations=_citations(event), rag=_flags(event))
            else:
                yield chunk({"content": event})
    except LLMError as error:
        yield f"data: {json.dumps(error_body(502, f'the language model failed: {error}'))}\n\n"
    except Exception:
        log.exception("chat completion stream failed")
        yield f"data: {json.dumps(error_body(500, 'internal error; the server log has the details'))}\n\n"
    yield "data: [DONE]\n\n"


def _citations(answer: Answer) -> list[dict[str, Any]]:
    return [c.model_dump() for c in answer.citations]


def _flags(answer: Answer) -> dict[str, Any]:
    return {
        "answerable": answer.answerable,
        "grounded": answer.grounded,
        "language": answer.language,
        "sources": [s.model_dump() for s in answer.sources],
        "timings": answer.timings,
    }
