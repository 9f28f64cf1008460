"""Any rag-kb LLM backend as a LangChain chat model, streamed token by token."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Self

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage, ChatMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, model_validator

from rag.llms.base import LLM, GenerationOptions, Message
from rag.text_limits import StopSequences, TokenCounter, count_tokens

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
    ``stop`` sequences (the constructor's, and any given per call) end the reply where the first one
    appears (the text is cut there, and the backend's stream is closed, which stops a local model
    generating). Unknown constructor arguments are refused. The last chunk carries ``usage_metadata``,
    counted with the backend's tokenizer where its LLM offers ``count_tokens``, else approximately
    (:func:`rag.text_limits.count_tokens`). Text in, text out: no tools, images or structured output.

    Usage::

        llm = RagLLM(llm=EmbeddedLLM(), max_tokens=128)
        print(llm.invoke("What is BM25?").content)
        for chunk in llm.stream([("system", "You are brief."), ("human", "Name three colours.")]):
            print(chunk.content, end="", flush=True)
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    llm: LLM
    max_tokens: int = DEFAULTS.max_tokens
    temperature: float = DEFAULTS.temperature
    top_p: float = DEFAULTS.top_p
    stop: list[str] | None = None
    streaming: bool = False  # LangChain's switch: invoke() then streams through the callbacks' on_llm_new_token

    @model_validator(mode="after")
    def _check_options(self) -> Self:
        GenerationOptions(self.max_tokens, self.temperature, self.top_p)  # raises on a bad value
        StopSequences(self.stop)  # raises on a stop sequence that is not a string
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
            "stop": self.stop,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "rag-kb"
        params["ls_model_name"] = kwargs.get("model") or self.llm.name
        params["ls_max_tokens"] = self.max_tokens
        params["ls_temperature"] = self.temperature
        if stop or self.stop:
            params["ls_stop"] = [*(self.stop or []), *(stop or [])]
        return params

    @property
    def count_tokens(self) -> TokenCounter:
        """The backend's token count where its LLM has one, else the approximate count."""
        return getattr(self.llm, "count_tokens", None) or count_tokens

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
        cutter = StopSequences([*(self.stop or []), *(stop or [])])
        sent = to_messages(messages)
        pieces = self.llm.stream(sent, options)
        written = []
        try:
            for piece in pieces:
                text = cutter.feed(piece)
                if text:
                    written.append(text)
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
        metadata: dict[str, Any] = {"backend": self.llm.name, "model_name": self.llm.name}
        if cutter.matched is not None:
            metadata["stop_sequence"] = cutter.matched
        tail = cutter.flush()
        written.append(tail)
        count = self.count_tokens
        input_tokens = sum(count(m["content"]) for m in sent)
        output_tokens = count("".join(written))
        usage = UsageMetadata(
            input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens
        )
        # The last chunk carries the metadata, and makes an empty reply an empty message instead of an error.
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content=tail, chunk_position="last", response_metadata=metadata, usage_metadata=usage
            )
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
