"""The one LLM interface: chat messages in, text out, streamed or whole."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


def fold_system(messages: Sequence[Message]) -> list[Message]:
    """The messages without system ones, their text put in front of the first user message.

    For models and servers that have no system role (ChatGLM2) and would otherwise drop the rules.
    """
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    folded = [dict(m) for m in messages if m["role"] != "system"]
    if system:
        first_user = next((m for m in folded if m["role"] == "user"), None)
        if first_user is None:
            raise ValueError("there is no user message to put the system text in front of")
        first_user["content"] = f"{system}\n\n{first_user['content']}"
    return folded


class LLMError(RuntimeError):
    """The model could not answer (server down, bad reply, model missing); the message says what to do."""


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    max_tokens: int = 512
    temperature: float = 0.1
    top_p: float = 0.9

    def __post_init__(self) -> None:
        # bool is an int to Python, and a float max_tokens would only fail deep inside generation.
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not 0 <= self.temperature <= 2:  # also false for NaN
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")


class LLM(ABC):
    """A chat model. Subclasses implement :meth:`stream`; :meth:`generate` joins it."""

    name: str = "llm"

    @abstractmethod
    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Iterator[str]:
        """Yield the reply's text as it is produced."""

    def generate(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> str:
        return "".join(self.stream(messages, options))
