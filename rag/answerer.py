"""From question to verified answer: retrieve, generate, check citations, or refuse."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from rag.citations import check_citations
from rag.generators import Generator
from rag.llms.base import Message
from rag.prompts import REFUSAL, is_refusal
from rag.retrieval import HybridRetriever
from rag.types import Answer, Citation
from stores.metadata_filter import MetadataFilter


class Answerer:
    """Answers a question from one knowledge base, citing its sources, or refuses.

    The question is refused without asking the generator when no retrieved passage reaches
    ``min_relevance``; it is refused afterwards when no sentence of the generated text is supported
    by a source (``support_threshold``). Either way the retrieved passages come back as ``sources``.

    Usage::

        answerer = Answerer(retriever, ExtractiveGenerator())
        answer = answerer.run("handbook", "How many days of leave?")
        for event in answerer.stream("handbook", "年假有几天？"):
            print(event if isinstance(event, str) else event.citations)
    """

    def __init__(
        self,
        retriever: HybridRetriever,
        generator: Generator,
        top_k: int = 4,
        min_relevance: float = 0.5,
        support_threshold: float = 0.5,
    ) -> None:
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        if not 0 <= min_relevance <= 1 or not 0 <= support_threshold <= 1:
            raise ValueError("min_relevance and support_threshold must be in [0, 1]")
        self.retriever = retriever
        self.generator = generator
        self.top_k = top_k
        self.min_relevance = min_relevance
        self.support_threshold = support_threshold

    def run(
        self,
        kb: str,
        question: str,
        history: Sequence[Message] = (),
        top_k: int | None = None,
        filters: MetadataFilter | None = None,
    ) -> Answer:
        answer = None
        for event in self.stream(kb, question, history, top_k, filters):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(
        self,
        kb: str,
        question: str,
        history: Sequence[Message] = (),
        top_k: int | None = None,
        filters: MetadataFilter | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the generated text as it comes, then the verified :class:`Answer`."""
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        timings: dict[str, float] = {}
        started = time.perf_counter()
        retrieval = self.retriever.run(kb, question, top_k or self.top_k, filters)
        timings["retrieve"] = _ms(started)
        hits, language = retrieval.hits, retrieval.language
        sources = [Citation.from_hit(n, hit) for n, hit in enumerate(hits, start=1)]
        base = {"question": question, "sources": sources, "language": language, "generator": self.generator.name}

        if not hits or max(h.relevance for h in hits) < self.min_relevance:
            yield REFUSAL[language]
            timings["total"] = _ms(started)
            yield Answer(answer=REFUSAL[language], answerable=False, grounded=True, timings=timings, **base)
            return

        generation_started = time.perf_counter()
        parts: list[str] = []
        for token in self.generator.stream(question, hits, history, language):
            if not parts:
                timings["first_token"] = _ms(started)
            parts.append(token)
            yield token
        timings["generate"] = _ms(generation_started)
        text = "".join(parts)

        check_started = time.perf_counter()
        check = check_citations(text, hits, self.support_threshold)
        timings["verify"] = _ms(check_started)
        timings["total"] = _ms(started)
        if is_refusal(text) or not check.sentences:
            yield Answer(
                answer=REFUSAL[language],
                answerable=False,
                grounded=is_refusal(text),
                removed=check.removed,
                timings=timings,
                **base,
            )
            return
        cited = set(check.cited)
        yield Answer(
            answer=check.text,
            answerable=True,
            grounded=not check.removed and not check.dropped_markers,
            citations=[s for s in sources if s.n in cited],
            removed=check.removed,
            timings=timings,
            **base,
        )


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
