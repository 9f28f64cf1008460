"""What writes the answer from the numbered sources: an LLM, or extraction of the best sentences."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Protocol

from ingest.splitter import sentence_spans
from rag.citations import join_cited, support_terms
from rag.llms.base import LLM, GenerationOptions, Message
from rag.prompts import build_messages, is_refusal
from stores.hit import Hit

MARKDOWN_HEADING = re.compile(r"[ \t]*#{1,6}[ \t]")


class Generator(Protocol):
    name: str

    def stream(
        self,
        question: str,
        sources: Sequence[Hit],
        history: Sequence[Message],
        language: str,
        options: GenerationOptions | None = None,
    ) -> Iterator[str]:
        """Yield answer text with ``[n]`` markers pointing at ``sources`` (numbered from 1).

        ``options`` overrides the generator's own length and sampling settings for this answer.
        """
        ...


class LLMGenerator:
    """Asks an LLM with the citation-forcing prompt.

    Usage::

        generator = LLMGenerator(OpenAICompatibleLLM("http://127.0.0.1:8001/v1"))
        text = "".join(generator.stream(question, hits, [], "zh"))
    """

    def __init__(self, llm: LLM, options: GenerationOptions | None = None) -> None:
        self.llm = llm
        self.options = options or GenerationOptions()
        self.name = llm.name

    def stream(
        self,
        question: str,
        sources: Sequence[Hit],
        history: Sequence[Message],
        language: str,
        options: GenerationOptions | None = None,
    ) -> Iterator[str]:
        messages = build_messages(question, sources, history, language)
        yield from self.llm.stream(messages, options or self.options)


class ExtractiveGenerator:
    """Answers by quoting the source sentence that best covers the question, with its marker.

    No model writes anything, so nothing can be invented; the answer is as good as retrieval.
    The sentence that follows is added when the best one is short, since answers often run on.

    Usage::

        text = "".join(ExtractiveGenerator().stream("锣鼓经是什么？", hits, [], "zh"))
    """

    name = "extractive"

    def __init__(self, max_chars: int = 300, rank_weight: float = 0.1) -> None:
        if max_chars < 20:
            raise ValueError("max_chars must be at least 20")
        self.max_chars = max_chars
        self.rank_weight = rank_weight

    def stream(
        self,
        question: str,
        sources: Sequence[Hit],
        history: Sequence[Message],
        language: str,
        options: GenerationOptions | None = None,  # nothing is sampled: the options have nothing to set
    ) -> Iterator[str]:
        candidates = [
            (n, hit.chunk.text[start:end], i)
            for n, hit in enumerate(sources, start=1)
            for i, (start, end) in enumerate(sentence_spans(hit.chunk.text))
            if not MARKDOWN_HEADING.match(hit.chunk.text, start)  # a heading names a topic, it answers nothing
            and not is_refusal(hit.chunk.text[start:end])  # a document quoting the refusal must not make it
        ]
        if not candidates:
            return
        terms = [support_terms(text) for _, text, _ in candidates]
        document_frequency = Counter(t for ts in terms for t in ts)
        query = support_terms(question)
        idf = {t: math.log(1 + len(candidates) / (1 + document_frequency[t])) for t in query}
        total = sum(idf.values()) or 1.0

        def score(k: int) -> float:
            n = candidates[k][0]
            covered = sum(idf[t] for t in query & terms[k]) / total
            return covered + self.rank_weight / n

        best = max(range(len(candidates)), key=score)
        n, sentence, position = candidates[best]
        answer = [(sentence, [n])]
        following = best + 1
        if following < len(candidates) and candidates[following][0] == n and candidates[following][2] == position + 1:
            extra = candidates[following][1]
            if len(sentence) + len(extra) <= self.max_chars and len(sentence) < self.max_chars // 2:
                answer.append((extra, [n]))
        yield join_cited(answer)
