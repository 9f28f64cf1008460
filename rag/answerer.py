"""From question to verified answer: retrieve, generate, check citations, or refuse."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence

from rag.citations import check_citations, check_sentences, join_cited, split_cited_sentences
from rag.conversation import QuestionResolver
from rag.generators import Generator
from rag.llms.base import GenerationOptions, Message
from rag.prompts import REFUSAL, is_refusal
from rag.question_kind import is_list_question
from rag.relevance import GATE_DEPTH, LIST_DEPTH, RelevanceGate, list_items
from rag.retrieval import HybridRetriever
from rag.types import Answer, Citation
from stores.hit import Hit
from stores.metadata_filter import MetadataFilter
from stores.text_analysis import language_of


class Answerer:
    """Answers a question from one knowledge base, citing its sources, or refuses.

    A follow-up is first made standalone from ``history`` (``resolver``, see :mod:`rag.conversation`).
    The question is refused without asking the generator when the relevance gate
    (:class:`~rag.relevance.RelevanceGate`, threshold ``min_relevance``) finds the retrieved passages
    unlikely to hold an answer; it is refused afterwards when no sentence of the generated text is
    supported by a source (``support_threshold``). Either way the retrieved passages come back as
    ``sources``. The generator sees the first ``top_k`` hits; the gate and list questions read deeper.

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
        resolver: QuestionResolver | None = None,
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
        self.gate = RelevanceGate(min_relevance)
        self.resolver = resolver or QuestionResolver()

    def relevance(self, hits: Sequence[Hit]) -> float:
        """How well ``hits`` (ranked, best first) back an answer, in [0, 1]: what the gate compares with
        ``min_relevance``."""
        return self.gate.relevance(hits)

    def refuses(self, hits: Sequence[Hit]) -> bool:
        """Whether the question is refused before generation, given its ranked ``hits``."""
        return self.gate.refuses(hits)

    def run(
        self,
        kb: str,
        question: str,
        history: Sequence[Message] = (),
        top_k: int | None = None,
        filters: MetadataFilter | None = None,
        options: GenerationOptions | None = None,
    ) -> Answer:
        answer = None
        for event in self.stream(kb, question, history, top_k, filters, options):
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
        options: GenerationOptions | None = None,
        verified: bool = False,
    ) -> Iterator[str | Answer]:
        """Yield the generated text as it comes, then the verified :class:`Answer`.

        With ``verified``, the text comes a sentence at a time and only what the check keeps, so the
        pieces join to exactly the final answer's text (for clients that cannot replace what they
        showed, such as OpenAI-compatible ones). ``options`` overrides the generator's settings.
        """
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        timings: dict[str, float] = {}
        started = time.perf_counter()
        query = self.resolver.resolve(question, history)
        if query != question:
            timings["resolve"] = _ms(started)
        top_k = top_k or self.top_k
        listing = is_list_question(question)
        retrieval = self.retriever.run(kb, query, max(top_k, GATE_DEPTH, LIST_DEPTH if listing else 0), filters)
        timings["retrieve"] = _ms(started)
        ranked, language = retrieval.hits, language_of(question)
        items = list_items(ranked) if listing else []
        hits = items if len(items) > 1 else ranked[:top_k]  # a list question answers with every item found
        sources = [Citation.from_hit(n, hit) for n, hit in enumerate(hits, start=1)]
        base = {"question": question, "sources": sources, "language": language, "generator": self.generator.name}

        if self.refuses(ranked):
            yield REFUSAL[language]
            timings["total"] = _ms(started)
            yield Answer(answer=REFUSAL[language], answerable=False, grounded=True, timings=timings, **base)
            return

        generation_started = time.perf_counter()
        parts: list[str] = []
        sentences = VerifiedSentences(hits, self.support_threshold)
        for token in self.generator.stream(question, hits, history, language, options):
            if not parts:
                timings["first_token"] = _ms(started)
            parts.append(token)
            if piece := sentences.feed(token):  # checked in either mode: rag eval reports when it came
                timings.setdefault("first_verified", _ms(started))
            if shown := piece if verified else token:
                yield shown
        timings["generate"] = _ms(generation_started)
        text = "".join(parts)

        check_started = time.perf_counter()
        check = check_citations(text, hits, self.support_threshold)
        timings["verify"] = _ms(check_started)
        timings["total"] = _ms(started)
        refused = is_refusal(text) or not check.sentences
        if piece := REFUSAL[language] if refused else sentences.finish():
            timings.setdefault("first_verified", _ms(started))
            if verified:
                yield piece
        if refused:
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
        text = check.text
        if len(items) > 1 and len(cited) > 1:  # say how many were found; a count is no claim to check
            count = LIST_COUNT[language].format(n=len(cited))
            count = count if language == "zh" else f" {count}"
            text += count
            yield text[len(sentences.shown) :] if verified else count  # streamed too: the text stands as shown
        yield Answer(
            answer=text,
            answerable=True,
            grounded=not check.removed and not check.dropped_markers,
            citations=[s for s in sources if s.n in cited],
            removed=check.removed,
            timings=timings,
            **base,
        )


class VerifiedSentences:
    """Turns a token stream into the verified answer's text, a completed sentence at a time.

    A sentence is complete once text that is not a citation marker follows it (a marker after the
    full stop still belongs to it). The check is per sentence, and joining is prefix-stable, so
    the pieces join to ``check_citations(whole text).text``. Nothing is shown while the text reads
    as the refusal: a model that refuses and then rambles is still a refusal.
    """

    def __init__(self, sources: Sequence[Hit], threshold: float) -> None:
        self.sources = sources
        self.threshold = threshold
        self.text = ""
        self.kept: list[tuple[str, list[int]]] = []
        self.committed = 0  # sentences of the text already checked
        self.shown = ""

    def feed(self, token: str) -> str:
        self.text += token
        sentences = split_cited_sentences(self.text)
        # The last sentence may still grow, and one before a bare or unfinished marker may get it.
        tail = TRAILING_MARKER.search(self.text)
        complete = len(sentences) - 1 - (1 if tail and tail.group().strip() else 0)
        return self._commit(sentences[: max(complete, 0)])

    def finish(self) -> str:
        return self._commit(split_cited_sentences(self.text))

    def _commit(self, sentences: list[tuple[str, list[int]]]) -> str:
        if is_refusal(self.text) or len(sentences) <= self.committed:
            return ""
        new = sentences[self.committed :]
        self.committed = len(sentences)
        check = check_sentences(new, self.sources, self.threshold)
        self.kept += [(s.text, s.cited) for s in check.sentences]
        text = join_cited(self.kept)
        piece, self.shown = text[len(self.shown) :], text
        return piece


LIST_COUNT = {"zh": "（共找到{n}项。）", "en": "({n} found.)"}

# Text after the last sentence that is only citation markers, perhaps unfinished ("[1", "[1][").
TRAILING_MARKER = re.compile(r"(?:\s*\[[\d\s,，、]*\]?)+\s*$")


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
