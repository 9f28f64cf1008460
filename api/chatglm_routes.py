"""ChatGLM2's own api.py, answered from a knowledge base: scripts written for it keep working.

ChatGLM2-6B's ``api.py`` takes ``{"prompt", "history", "max_length", "top_p", "temperature"}``
(history as ``[[question, answer], ...]``) at ``POST /`` and answers ``{"response", "history",
"status", "time"}``. Here the response is the cited answer, and ``citations`` / ``answerable``
are added beside those keys. The KB is ``?kb=NAME``, else the setting ``default_kb``, else the
only knowledge base there is.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CallerDep, EngineDep, readable
from api.errors import documented
from rag.llms.base import GenerationOptions

router = APIRouter(tags=["ChatGLM2-compatible"], responses=documented(400, 401, 403, 404, 422, 502))


class ChatGLMRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, max_length=4000)
    history: list[list[str]] | None = Field(None, description="[[question, answer], ...], oldest first.")
    max_length: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    temperature: float | None = Field(None, ge=0, le=2)


class ChatGLMResponse(BaseModel):
    response: str
    history: list[list[str]]
    status: int = 200
    time: str
    answerable: bool
    citations: list[dict[str, Any]]


def chatglm(
    body: ChatGLMRequest,
    engine: EngineDep,
    who: CallerDep,
    kb: Annotated[str | None, Query(description="Knowledge base; default: default_kb.")] = None,
) -> ChatGLMResponse:
    name = engine.knowledge_base_for(kb, visible=who.may)
    readable(engine, who, name)
    history = body.history or []
    if any(len(turn) != 2 for turn in history):
        raise HTTPException(422, "history must be a list of [question, answer] pairs")
    messages = [
        {"role": role, "content": text}
        for question, answer in history
        for role, text in (("user", question), ("assistant", answer))
    ]
    s = engine.settings
    options = GenerationOptions(
        # max_length counts prompt and answer in ChatGLM2; it bounds the answer here, never above the setting.
        max_tokens=min(body.max_length or s.llm_max_tokens, s.llm_max_tokens),
        temperature=s.llm_temperature if body.temperature is None else body.temperature,
        top_p=s.llm_top_p if body.top_p is None else body.top_p,
    )
    try:
        answer = engine.answerer.run(name, body.prompt, messages, options=options)
    except ValueError as error:
        raise HTTPException(422, str(error)) from error
    return ChatGLMResponse(
        response=answer.answer,
        history=[*history, [body.prompt, answer.answer]],
        time=time.strftime("%Y-%m-%d %H:%M:%S"),
        answerable=answer.answerable,
        citations=[c.model_dump() for c in answer.citations],
    )


router.post("/chatglm")(chatglm)
router.post("/", include_in_schema=True)(chatglm)
