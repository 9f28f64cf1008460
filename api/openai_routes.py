"""OpenAI-compatible chat completions over the knowledge bases: the model ``kb:NAME`` picks the KB.

The answer text carries ``[n]`` markers; the sources they point at come in the extra field
``citations`` (a list of :class:`rag.types.Citation`), and ``rag`` holds the answer's flags
(``answerable``, ``grounded``, ``language``). When streaming, only verified sentences are sent, so
the deltas join to exactly the final answer (an OpenAI client cannot take back text it showed);
the last chunk carries ``citations`` and ``rag``. System messages from the client are ignored:
the grounding rules are not negotiable per request.

``stop``, ``max_tokens`` / ``max_completion_tokens`` (``finish_reason: "length"`` when they cut the
answer), ``usage`` and ``stream_options.include_usage`` work for every backend, the extractive one
included. What rag-kb cannot do (``n > 1``, images, tools, structured ``response_format``) is refused
with a 400 that says so. Errors here speak OpenAI's dialect (see :mod:`api.errors`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from itertools import chain
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import CallerDep, EngineDep
from api.errors import OpenAIError, documented, openai_error_body
from api.streaming import EVENT_STREAM, event_stream, sse
from rag.engine import Engine
from rag.llms.base import GenerationOptions, LLMError, Message
from rag.text_limits import ReplyLimits, TokenCounter, count_tokens
from rag.types import Answer, Citation

log = logging.getLogger("rag.api")
router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
MODEL_PREFIX = "kb:"
TEXT_PARTS = {"text", "input_text"}
UNSUPPORTED = ("tools", "tool_choice", "functions", "function_call", "audio", "prediction")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts; others than text were refused before
            return "".join(str(part.get("text", "")) for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's request. Unknown fields are accepted and ignored, as OpenAI-compatible servers do, except
    those whose meaning rag-kb cannot honour (``tools``, ``response_format`` other than text, ...): a 400."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="kb:NAME (or the bare KB name).")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = Field(None, description="Up to 4 sequences; the answer ends before the first.")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, description="Only 1: one answer per request.")
    response_format: dict[str, Any] | None = Field(None, description='Only {"type": "text"}.')
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


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class RagFlags(BaseModel):
    answerable: bool
    grounded: bool
    language: str
    sources: list[Citation]
    timings: dict[str, float]


class ChatCompletion(BaseModel):
    """OpenAI's chat completion, plus ``citations`` and ``rag``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    citations: list[Citation]
    rag: RagFlags


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One ``data:`` event of a streamed completion; the stream ends with ``data: [DONE]``. The chunk with
    ``finish_reason`` carries ``citations`` and ``rag``; with ``include_usage`` a last chunk has no choices
    and the ``usage``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    citations: list[Citation] | None = None
    rag: RagFlags | None = None


def kb_of(model: str) -> str:
    return model.removeprefix(MODEL_PREFIX)


def no_model(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"no model {model!r}: models are kb:NAME, one per knowledge base (GET /v1/models)",
        "model",
        "model_not_found",
    )


@router.get("/models", responses=documented(401, openai=True))
def list_models(engine: EngineDep, who: CallerDep) -> ModelList:
    return ModelList(
        data=[
            ModelCard(id=MODEL_PREFIX + r.name, created=int(r.created_at))
            for r in engine.knowledge_bases.list()
            if who.may(r.name)
        ]
    )


@router.get("/models/{model}", responses=documented(401, 403, 404, openai=True))
def get_model(model: str, engine: EngineDep, who: CallerDep) -> ModelCard:
    kb = kb_of(model)
    who.require(kb)
    for record in engine.knowledge_bases.list():
        if record.name == kb:
            return ModelCard(id=MODEL_PREFIX + kb, created=int(record.created_at))
    raise no_model(model)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {"content": EVENT_STREAM, "description": "The completion, or chat.completion.chunk events when streaming"},
        **documented(400, 401, 403, 404, 502, openai=True),
    },
)
def chat_completions(body: ChatCompletionRequest, engine: EngineDep, who: CallerDep) -> Any:
    refuse_unsupported(body)
    kb = kb_of(body.model)
    who.require(kb)
    if not engine.knowledge_bases.exists(kb):
        raise no_model(body.model)
    question, history = conversation(body.messages)
    count = token_counter(engine)
    completion = Completion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=body.model,
        limits=ReplyLimits(body.stop, body.max_completion_tokens or body.max_tokens, count),
        prompt_tokens=sum(count(m.text()) for m in body.messages),
    )
    try:
        events = engine.answerer.stream(
            kb, question, history, body.top_k, body.filters, generation_options(engine, body), verified=True
        )
        first = next(events)  # retrieval runs now, so a bad filter is still a 400, not a broken stream
    except ValueError as error:
        raise OpenAIError(400, str(error), "filters" if body.filters else None, "invalid_value") from error
    events = chain([first], events)
    if not body.stream:
        return completion.whole(events)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return completion_stream(completion.chunks(events, include_usage))


def refuse_unsupported(body: ChatCompletionRequest) -> None:
    """A 400 for what rag-kb would otherwise have to ignore silently."""
    if body.n not in (None, 1):
        raise OpenAIError(400, "n must be 1: rag-kb writes one answer per request", "n", "unsupported_value")
    extra = body.model_extra or {}
    for name in UNSUPPORTED:
        if extra.get(name) not in (None, [], False):
            raise OpenAIError(
                400, f"{name} is not supported: rag-kb answers from its sources only", name, "unsupported_parameter"
            )
    if body.response_format is not None and body.response_format.get("type") != "text":
        raise OpenAIError(
            400,
            'response_format: only {"type": "text"} is supported; the answer is cited prose',
            "response_format",
            "unsupported_value",
        )
    if body.stream_options is not None and not body.stream:
        raise OpenAIError(400, "stream_options is only allowed when stream is true", "stream_options", "invalid_value")
    stops = [body.stop] if isinstance(body.stop, str) else body.stop or []
    if len(stops) > 4:
        raise OpenAIError(400, "stop takes at most 4 sequences", "stop", "invalid_value")
    for i, message in enumerate(body.messages):
        for part in message.content if isinstance(message.content, list) else []:
            if part.get("type") not in TEXT_PARTS:
                raise OpenAIError(
                    400,
                    f"messages[{i}] holds a {part.get('type')!r} part: rag-kb reads text only",
                    f"messages[{i}].content",
                    "unsupported_value",
                )


def conversation(messages: list[ChatMessage]) -> tuple[str, list[Message]]:
    """The question (the last message, from the user) and the turns before it."""
    if messages[-1].role != "user":
        raise OpenAIError(400, "the last message must be the user's question", "messages", "invalid_value")
    question = messages[-1].text()
    if not question.strip():
        raise OpenAIError(400, "the question is empty", "messages", "invalid_value")
    history = [{"role": m.role, "content": m.text()} for m in messages[:-1] if m.role in {"user", "assistant"}]
    return question, history


def generation_options(engine: Engine, body: ChatCompletionRequest) -> GenerationOptions:
    s = engine.settings
    return GenerationOptions(
        max_tokens=body.max_completion_tokens or body.max_tokens or s.llm_max_tokens,
        temperature=s.llm_temperature if body.temperature is None else body.temperature,
        top_p=s.llm_top_p if body.top_p is None else body.top_p,
    )


def token_counter(engine: Engine) -> TokenCounter:
    """The backend's own token count where its LLM offers one (``count_tokens``), else the approximate one."""
    llm = getattr(engine.generator, "llm", None)
    return getattr(llm, "count_tokens", None) or count_tokens


class Completion:
    """One chat completion being written: the answer's pieces through ``stop`` / ``max_tokens``, whole or chunked."""

    def __init__(self, id: str, created: int, model: str, limits: ReplyLimits, prompt_tokens: int) -> None:
        self.id, self.created, self.model = id, created, model
        self.limits = limits
        self.prompt_tokens = prompt_tokens

    def usage(self) -> Usage:
        tokens = self.limits.tokens
        prompt = self.prompt_tokens
        return Usage(prompt_tokens=prompt, completion_tokens=tokens, total_tokens=prompt + tokens)

    def pieces(self, events: Iterator[str | Answer]) -> Iterator[str | Answer]:
        """The answer's text as the limits let it through, then the :class:`Answer` (for citations and flags)."""
        for event in events:
            if isinstance(event, Answer):
                if tail := self.limits.flush():
                    yield tail
                yield event
            elif text := self.limits.feed(event):
                yield text

    def whole(self, events: Iterator[str | Answer]) -> ChatCompletion:
        parts = list(self.pieces(events))
        answer = parts.pop()
        assert isinstance(answer, Answer)
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[Choice(message=AssistantMessage(content="".join(parts)), finish_reason=self.limits.finish_reason)],
            usage=self.usage(),
            citations=answer.citations,
            rag=flags(answer),
        )

    def chunk(self, delta: Delta | None, finish: Literal["stop", "length"] | None = None, **extra: Any) -> dict:
        choices = [] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish)]
        chunk = ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=choices, **extra)
        # Top-level fields a chunk does not carry are left out; inside, null stays null (finish_reason, page).
        return {key: value for key, value in chunk.model_dump(mode="json").items() if value is not None}

    def chunks(self, events: Iterator[str | Answer], include_usage: bool) -> Iterator[dict[str, Any]]:
        yield self.chunk(Delta(role="assistant", content=""))
        for event in self.pieces(events):
            if isinstance(event, Answer):
                yield self.chunk(Delta(), self.limits.finish_reason, citations=event.citations, rag=flags(event))
            else:
                yield self.chunk(Delta(content=event))
        if include_usage:
            yield self.chunk(None, usage=self.usage())


def completion_stream(chunks: Iterator[dict[str, Any]]) -> EventSourceResponse:
    def events() -> Iterator[ServerSentEvent]:
        try:
            yield from (sse(chunk) for chunk in chunks)
        except LLMError as error:
            yield sse(openai_error_body(502, f"the language model failed: {error}"))
        except Exception:
            log.exception("chat completion stream failed")
            yield sse(openai_error_body(500, "internal error; the server log has the details"))
        yield sse("[DONE]")

    return event_stream(events())


def flags(answer: Answer) -> RagFlags:
    return RagFlags(
        answerable=answer.answerable,
        grounded=answer.grounded,
        language=answer.language,
        sources=answer.sources,
        timings=answer.timings,
    )
