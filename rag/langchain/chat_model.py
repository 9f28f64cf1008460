"""Any rag-kb LLM backend as a LangChain chat model, streamed token by token."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Self

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage, ChatMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import model_validator

from rag.llms.base import LLM, GenerationOptions, Message

DEFAULTS = GenerationOptions()
OPTIONS = frozenset({"max_tokens", "temperature", "top_p"})
# LangChain message types (chunks included, "AIMessageChunk" -> "ai") and the roles our backends take.
ROLES = {"system": "system", "human": "user", "ai": "assistant"}


class RagLLM(BaseChatModel):
    """A rag-kb :class:`~rag.llms.base.LLM` (embedded SmolLM2, OpenAI-compatible, ChatGLM2 api.py, transformers)
    as a LangChain chat model.

    System, human and AI messages become the backend's chat messages; ``stream`` yields the backend's
    pieces as they come. ``max_tokens``, ``temperature`` and ``top_p`` are the defaults of every call
    and can be given per call (``llm.invoke(messages, max_tokens=64)``, ``llm.bind(temperature=0)``).
    ``stop`` sequences end the reply where the first one appears (the text is cut there, and the
    backend's stream is closed, which stops a local model generating).

    Usage::

        llm = RagLLM(llm=EmbeddedLLM(), max_tokens=128)
        print(llm.invoke("What is BM25?").content)
        for chunk in llm.stream([("system", "You are brief."), ("human", "Name three colours.")]):
            print(chunk.content, end="", flush=True)
    """

    llm: LLM
    max_tokens: int = DEFAULTS.max_tokens
    temperature: float = DEFAULTS.temperature
    top_p: float = DEFAULTS.top_p

    @model_validator(mode="after")
    def _check_options(self) -> Self:
        GenerationOptions(self.max_tokens, self.temperature, self.top_p)  # raises on a bad value
        return self

    @property
    def _llm_type(self) -> str:
        return "rag-kb"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "backend": self.llm.name,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "rag-kb"
        params["ls_model_name"] = self.llm.name
        return params

    def generation_options(self, **overrides: Any) -> GenerationOptions:
        """This model's generation options with per-call ``overrides``; anything else is refused."""
        unknown = set(overrides) - OPTIONS
        if unknown:
            raise TypeError(
                f"RagLLM does not take {', '.join(sorted(unknown))}; per-call options are {', '.join(sorted(OPTIONS))}"
            )
        values = {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p, **overrides}
        return GenerationOptions(**values)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # One path for both: a whole reply is the joined stream (callbacks still see every token).
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        options = self.generation_options(**kwargs)
        cutter = StopSequences(stop)
        pieces = self.llm.stream(to_messages(messages), options)
        try:
            for piece in pieces:
                text = cutter.feed(piece)
                if text:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if run_manager:
                        run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk
                if cutter.matched is not None:
                    break
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:  # stops a local model when a stop sequence or the reader ended the reply
                close()
        metadata: dict[str, Any] = {"backend": self.llm.name}
        if cutter.matched is not None:
            metadata["stop_sequence"] = cutter.matched
        tail = cutter.flush()
        # The last chunk carries the metadata, and makes an empty reply an empty message instead of an error.
        yield ChatGenerationChunk(
            message=AIMessageChunk(content=tail, chunk_position="last", response_metadata=metadata)
        )


def to_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """LangChain messages as rag-kb chat messages (``{"role", "content"}``); text content only.

    Usage::

        to_messages([SystemMessage("Be brief."), HumanMessage("Hi")])
        # [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    """
    if not messages:
        raise ValueError("no messages to send to the LLM")
    converted: list[Message] = []
    for message in messages:
        if isinstance(message, ChatMessage):
            role = message.role if message.role in ROLES.values() else None
        else:
            role = ROLES.get(message.type.removesuffix("MessageChunk").lower())
        if role is None:
            kind = message.role if isinstance(message, ChatMessage) else message.type
            raise ValueError(f"rag-kb LLMs take system, human and AI messages; got a {kind!r} message")
        converted.append({"role": role, "content": _text(message)})
    return converted


def _text(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    for block in message.content:
        if not isinstance(block, str) and block.get("type") != "text":
            kind = block.get("type")
            raise ValueError(f"rag-kb LLMs read text only; a {message.type} message holds a {kind!r} block")
    return str(message.text)  # joins the text blocks


class StopSequences:
    """Cuts streamed text at the first stop sequence, holding back only text that may be the start of one.

    Usage::

        cutter = StopSequences(["\\nQuestion:"])
        cutter.feed("Fifteen days.\\nQue")  # "Fifteen days." ("\\nQue" may begin the stop sequence)
        cutter.feed("stion: more")  # "" and cutter.matched == "\\nQuestion:"
    """

    def __init__(self, stop: Sequence[str] | str | None) -> None:
        stop = [stop] if isinstance(stop, str) else list(stop or [])
        if not all(isinstance(s, str) for s in stop):
            raise TypeError(f"stop sequences must be strings, got {stop!r}")
        self.stop = [s for s in stop if s]
        self.matched: str | None = None
        self._pending = ""

    def feed(self, piece: str) -> str:
        """The text of ``piece`` (with what was held back) that is certainly before any stop sequence."""
        if self.matched is not None:
            return ""
        text = self._pending + piece
        found = [(index, s) for s in self.stop if (index := text.find(s)) >= 0]
        if found:
            index, self.matched = min(found)
            self._pending = ""
            return text[:index]
        keep = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        self._pending = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What was held back, once the stream has ended without completing a stop sequence."""
        text, self._pending = self._pending, ""
        return text
