"""What writes the answer from the numbered sources: an LLM, or extraction of the best sentences."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ingest.splitter import sentence_spans
from rag.citations import join_cited
from rag.conversation import QuestionResolver
from rag.llms.base import LLM, GenerationOptions, Message
from rag.prompts import build_messages, is_refusal
from rag.question_kind import question_kind, short_answers
from stores.hit import Hit
from stores.text_analysis import CJK_RUN, QUESTION_PHRASES, analyze, to_simplified, without_question_phrases

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
    """Answers by quoting source sentences, each with its marker: nothing is written, nothing invented.

    The question's kind (:func:`~rag.question_kind.question_kind`: a year, a number, a length of time, a
    name, a place) picks, among the sentences that best cover the question, one that holds an answer of
    that kind, and the answer is led by that short answer ("2009年：…"). Title and heading lines are never
    quoted. A list question ("which … vulnerabilities", "哪些") gets the best sentence of every source
    that answers it, each cited. Otherwise the sentence that follows is added when the best one is short,
    since answers often run on. A follow-up is read with the previous turn's subject
    (:mod:`rag.conversation`).

    Usage::

        text = "".join(ExtractiveGenerator().stream("锣鼓经是什么？", hits, [], "zh"))
    """

    name = "extractive"

    def __init__(self, max_chars: int = 300, rank_weight: float = 0.1, kind_weight: float = 0.3) -> None:
        if max_chars < 20:
            raise ValueError("max_chars must be at least 20")
        self.max_chars = max_chars
        self.rank_weight = rank_weight
        self.kind_weight = kind_weight

    def stream(
        self,
        question: str,
        sources: Sequence[Hit],
        history: Sequence[Message],
        language: str,
        options: GenerationOptions | None = None,  # nothing is sampled: the options have nothing to set
    ) -> Iterator[str]:
        candidates = [
            Candidate(n, hit.chunk.text[start:end], i)
            for n, hit in enumerate(sources, start=1)
            for i, (start, end) in enumerate(sentence_spans(hit.chunk.text))
            if not _is_title(hit, hit.chunk.text[start:end], start)  # a title names a topic, it answers nothing
            and not is_refusal(hit.chunk.text[start:end])  # a document quoting the refusal must not make it
        ]
        if not candidates:
            return
        kind = question_kind(question)
        own = query_terms(question)
        carried = [t for t in query_terms(QuestionResolver().resolve(question, history)) if t not in own]
        scores = self._scores(candidates, own, carried, kind, question)
        if kind == "list" and len(sources) > 1:
            yield join_cited(self._items(candidates, scores))
            return
        best = max(range(len(candidates)), key=scores.__getitem__)
        chosen = candidates[best]
        lead = _short_answer(kind, chosen.text, question, own)
        answer = [(f"{lead}{LEAD_SEPARATOR[language]}{chosen.text}" if lead else chosen.text, [chosen.n])]
        following = best + 1
        if (
            following < len(candidates)
            and candidates[following].n == chosen.n
            and candidates[following].position == chosen.position + 1
        ):
            extra = candidates[following].text
            if len(chosen.text) + len(extra) <= self.max_chars and len(chosen.text) < self.max_chars // 2:
                answer.append((extra, [chosen.n]))
        yield join_cited(answer)

    def _scores(
        self, candidates: Sequence[Candidate], own: Sequence[str], carried: Sequence[str], kind: str, question: str
    ) -> list[float]:
        """IDF-weighted share of the question's terms each sentence holds (plus a little for the terms carried
        from the previous turn), raised when it holds an answer of the asked kind, a little by the source's rank."""
        held = [terms_held([*own, *carried], c.text) for c in candidates]
        chars = question_characters(question)
        document_frequency = Counter(t for ts in held for t in ts)
        idf = {t: math.log(1 + len(candidates) / (1 + document_frequency[t])) for t in [*own, *carried]}
        own_total = sum(idf[t] for t in own) or 1.0
        carried_total = sum(idf[t] for t in carried) or 1.0
        scores = []
        for candidate, terms in zip(candidates, held, strict=True):
            covered = sum(idf[t] for t in terms if t in own) / own_total
            covered += CARRIED_WEIGHT * sum(idf[t] for t in terms if t not in own) / carried_total
            if chars:  # Chinese: words segment differently ("原来…名字" and "原名"), characters do not
                covered = (covered + len(chars & set(to_simplified(candidate.text))) / len(chars)) / 2
            typed = bool(covered) and _short_answer(kind, candidate.text, question, own) is not None
            scores.append(covered * (1 + self.kind_weight * typed) + self.rank_weight / candidate.n)
        return scores

    def _items(self, candidates: Sequence[Candidate], scores: Sequence[float]) -> list[tuple[str, list[int]]]:
        """The best sentence of each source that covers the question at all, in the sources' order."""
        best: dict[int, int] = {}
        for k, candidate in enumerate(candidates):
            if scores[k] > self.rank_weight / candidate.n and (
                candidate.n not in best or scores[k] > scores[best[candidate.n]]
            ):
                best[candidate.n] = k
        return [(candidates[k].text, [candidates[k].n]) for _, k in sorted(best.items())]


@dataclass(frozen=True, slots=True)
class Candidate:
    n: int  # the source's number, from 1
    text: str
    position: int  # the sentence's place in its source


LEAD_SEPARATOR = {"zh": "：", "en": ": "}
CARRIED_WEIGHT = 0.25  # the previous turn's terms say which passage, the question's own which sentence


def _is_title(hit: Hit, sentence: str, start: int) -> bool:
    """A Markdown heading, or the line that is the document's title or section name (JSONL, HTML titles)."""
    if MARKDOWN_HEADING.match(hit.chunk.text, start):
        return True
    line = " ".join(sentence.split())
    names = (hit.chunk.metadata.get(key) for key in ("title", "section"))
    return any(isinstance(name, str) and line == " ".join(name.split()) for name in names)


def query_terms(question: str) -> list[str]:
    """The terms a quoted sentence should hold: the question's, without the words that only ask."""
    return list(dict.fromkeys(analyze(without_question_phrases(question))))


def question_characters(question: str) -> set[str]:
    """The Chinese characters of the question that carry content (not its asking words or particles)."""
    asked = QUESTION_PHRASES.sub("", to_simplified(question))
    return {c for run in CJK_RUN.findall(asked) for c in run} - PARTICLES


PARTICLES = set("的了是在和与及或也都就而并被把对于从为以之其这那有吗呢吧啊么什哪谁怎")


def terms_held(terms: Sequence[str], sentence: str) -> set[str]:
    """``terms`` found in ``sentence``: as its terms, or a Chinese word anywhere in it (segmentation differs)."""
    words = set(analyze(sentence))
    text = to_simplified(sentence)
    return {t for t in terms if t in words or (CJK_RUN.fullmatch(t) and t in text)}


def _short_answer(kind: str, sentence: str, question: str, query: Sequence[str]) -> str | None:
    """The answer of ``kind`` in ``sentence`` nearest to the words it shares with the question, if any.

    An answer that repeats the question's own words ("Supreme Court" for "… to the Supreme Court?") is its
    subject, not its answer.
    """
    asked = set(re.findall(r"\w+", question.casefold()))
    found = [
        (at, text)
        for at, text in short_answers(kind, sentence)
        if text.strip() not in question and not set(re.findall(r"[a-z]\w*", text.casefold())) & asked
    ]
    if not found:
        return None
    folded = to_simplified(sentence).casefold()
    spans = [(at, at + len(text)) for at, text in found]
    # Where the question's words stand, but not inside a candidate ("years" of "40 years" asks nothing).
    anchors = [
        m.start()
        for t in query
        for m in re.finditer(re.escape(t.casefold()), folded)
        if not any(a <= m.start() < b for a, b in spans)
    ]
    if not anchors:
        return found[0][1]
    return min(found, key=lambda f: min(abs(f[0] - a) for a in anchors))[1]
