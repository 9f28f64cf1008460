"""Where a streamed reply ends: at a stop sequence, or at a token budget (``finish_reason`` "stop" or "length").

One place for the limits every consumer of a reply applies the same way: the OpenAI-compatible
endpoint (``stop``, ``max_tokens``, ``usage``) and the LangChain chat model (``stop``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

# A token when the backend has no tokenizer to count with: one CJK character, one word or number, or one
# punctuation mark. It is close to what BPE tokenizers give for Chinese and a little under for English.
APPROXIMATE_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_]+|[^\w\s]", re.UNICODE)

TokenCounter = Callable[[str], int]


def count_tokens(text: str) -> int:
    """Tokens in ``text`` by :data:`APPROXIMATE_TOKEN`, for backends without a tokenizer (extractive, remote).

    Usage::

        count_tokens("密码九十天 must change.")  # 8
    """
    return sum(1 for _ in APPROXIMATE_TOKEN.finditer(text))


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


class ReplyLimits:
    """A reply's text cut at the first ``stop`` sequence and after ``max_tokens`` tokens, as it streams.

    ``finish_reason`` is ``"length"`` when the budget cut the text, else ``"stop"``; ``tokens`` is
    what was let through, counted with ``count`` (the backend's tokenizer where it has one).

    Usage::

        limits = ReplyLimits(stop=["\\n\\n"], max_tokens=16)
        shown = "".join(limits.feed(piece) for piece in pieces) + limits.flush()
        limits.finish_reason, limits.tokens  # ("length", 16)
    """

    def __init__(
        self, stop: Sequence[str] | str | None = None, max_tokens: int | None = None, count: TokenCounter = count_tokens
    ) -> None:
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        self.stops = StopSequences(stop)
        self.max_tokens = max_tokens
        self.count = count
        self.tokens = 0
        self.finish_reason: Literal["stop", "length"] = "stop"

    @property
    def done(self) -> bool:
        """Nothing more will be let through: a stop sequence was met or the budget is spent."""
        return self.stops.matched is not None or self.finish_reason == "length"

    def feed(self, piece: str) -> str:
        return self._spend(self.stops.feed(piece))

    def flush(self) -> str:
        return self._spend(self.stops.flush())

    def _spend(self, text: str) -> str:
        if not text or self.finish_reason == "length":
            return ""
        needed = self.count(text)
        if self.max_tokens is None or self.tokens + needed <= self.max_tokens:
            self.tokens += needed
            return text
        # Over budget: keep the longest prefix, ending at a token boundary, that still fits.
        left = self.max_tokens - self.tokens
        kept = ""
        for match in APPROXIMATE_TOKEN.finditer(text):
            prefix = text[: match.end()]
            if self.count(prefix) > left:
                break
            kept = prefix
        self.tokens += self.count(kept)
        self.finish_reason = "length"
        return kept
