"""Checking an answer against its sources: every kept sentence cites a source that supports it.

Markers that point at no retrieved source are dropped; a sentence without a marker gets the
source that supports it best; a sentence that no source supports is removed. Support is lexical:
the share of the sentence's terms (words and identifiers, Chinese character pairs) that the
source holds, so paraphrase in another wording is missed but invented facts are caught.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from ingest.splitter import sentence_spans
from stores.hit import Hit
from stores.text_analysis import (
    CJK_CHARS,
    CJK_CLOSING,
    CJK_PUNCTUATION,
    CJK_RUN,
    CLOSING_QUOTES,
    SENTENCE_PUNCTUATION,
    analyze,
    to_simplified,
)

MARKER = re.compile(r"\s*\[(\d+(?:\s*[,，、]\s*\d+)*)\]")


@dataclass
class CheckedSentence:
    text: str  # without markers
    cited: list[int]  # 1-based source numbers, verified
    support: float


@dataclass
class CitationCheck:
    sentences: list[CheckedSentence] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    dropped_markers: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        return join_cited([(s.text, s.cited) for s in self.sentences])

    @property
    def cited(self) -> list[int]:
        return sorted({n for s in self.sentences for n in s.cited})


def support_terms(text: str) -> frozenset[str]:
    """Terms for support checks: words and identifiers, plus character pairs for Chinese runs."""
    return _support_terms(text)


@lru_cache(maxsize=4096)
def _support_terms(text: str) -> frozenset[str]:
    latin = [t for t in analyze(CJK_RUN.sub(" ", text))]
    runs = CJK_RUN.findall(to_simplified(text))  # either script supports the other
    pairs = [run[i : i + 2] for run in runs for i in range(max(1, len(run) - 1))]
    return frozenset(latin + pairs)


def support(sentence: str, source_text: str) -> float:
    """Share of the sentence's terms found in the source, in [0, 1]; 0 if it names what the source does not
    or says the opposite of it.

    Numbers and proper names are where models invent ("completed on January 5th", "a British
    engineer"), so each one must appear in the source, whatever the share of the rest. Negations
    are stopwords to the term match, so "must not" would pass for the source's "must": each clause
    must be negated exactly when the source clause closest to it is (:func:`contradicts`).
    """
    terms = support_terms(sentence)
    if not terms or missing_key_terms(sentence, source_text):
        return 0.0
    if contradicts(sentence, source_text):
        return 0.0
    return len(terms & support_terms(source_text)) / len(terms)


# Words and characters that turn a statement into its opposite.
NEGATION = re.compile(
    r"\b(?:not|no|never|none|nobody|nothing|neither|nor|cannot|without|"
    r"\w+n't|(?:ca|do|does|did|is|are|was|were|must|should|would|could|wo|sha|need|may|might|have|has|had)nt)\b"
    r"|不(?![仅但过])|没|無|无(?!论)|未(?!来)|非(?!常)|勿|禁",
    re.IGNORECASE,
)


def is_negated(text: str) -> bool:
    return bool(NEGATION.search(text.replace("’", "'")))


def contradicts(sentence: str, source_text: str) -> bool:
    """Whether a clause of ``sentence`` negates (or drops the negation of) the source clause that
    shares most of its terms. Clauses, not sentences: "密码必须每九十天更换一次" quotes the second
    clause of "密码长度不得少于十二位，且必须每九十天更换一次", whose first clause holds the 不."""
    source_clauses = [(clause, support_terms(clause)) for clause in CLAUSE_BREAK.split(source_text)]
    for clause in CLAUSE_BREAK.split(sentence):
        terms = support_terms(clause)
        if not terms:
            continue
        overlaps = [(len(terms & held), text) for text, held in source_clauses]
        best = max((overlap for overlap, _ in overlaps), default=0)
        # Among equally close source clauses, one that agrees is enough.
        if best and all(is_negated(clause) != is_negated(text) for overlap, text in overlaps if overlap == best):
            return True
    return False


CLAUSE_BREAK = re.compile(r"[，,；;：:。！？!?\n]+|(?<=[a-z])\.\s")


def missing_key_terms(sentence: str, source_text: str) -> list[str]:
    """Numbers and capitalized names (not sentence-initial) of ``sentence`` that ``source_text`` lacks."""
    source = source_text.casefold()
    keys = [m.group() for m in NUMBER.finditer(sentence)]
    keys += [w.group() for i, w in enumerate(LATIN_WORD.finditer(sentence)) if i > 0 and w.group()[0].isupper()]
    # ASCII boundaries: in "全长364.6公里" the Chinese neighbours are word characters to \w.
    # "364" must not match inside "364.6" either.
    bounded = r"(?<![0-9a-z])(?<!\d[.,]){}(?![0-9a-z])(?![.,]\d)"
    return [k for k in keys if not re.search(bounded.format(re.escape(k.casefold())), source)]


# A number with the letters it is written with ("5th", "Log4j2", "x86"): "4" alone is no number of "Log4j2".
NUMBER = re.compile(r"[A-Za-z0-9]*\d[A-Za-z0-9]*(?:[.,:]\d+)*")
# Whole words, inner hyphens and digits included: "CVE-2021-44228", "Log4j2", "O'Brien" (not "CVE-").
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:['-][A-Za-z0-9]+)*")


def check_citations(answer: str, sources: Sequence[Hit], threshold: float) -> CitationCheck:
    """Verify the ``[n]`` markers of ``answer`` against ``sources`` (numbered from 1)."""
    return check_sentences(split_cited_sentences(answer), sources, threshold)


def check_sentences(
    sentences: Sequence[tuple[str, Sequence[int]]], sources: Sequence[Hit], threshold: float
) -> CitationCheck:
    """Verify sentences with their marker numbers, each on its own (see :func:`split_cited_sentences`)."""
    result = CitationCheck()
    for sentence, markers in sentences:
        valid = [n for n in markers if 1 <= n <= len(sources)]
        result.dropped_markers.extend(n for n in markers if n not in valid)
        if not support_terms(sentence):
            continue  # no content words: nothing to cite, nothing to keep
        if sentence.rstrip("”’\"')）」』】").endswith(("?", "？")):
            result.removed.append(sentence)  # a question states nothing: small models echo the user's
            continue
        scores = {n: support(sentence, sources[n - 1].chunk.text) for n in range(1, len(sources) + 1)}
        cited = [n for n in valid if scores[n] >= threshold]
        if not cited and scores:
            best = max(scores, key=lambda n: scores[n])
            if scores[best] >= threshold:
                cited = [best]  # unmarked or mis-marked, but one source does support it
        if cited:
            result.sentences.append(CheckedSentence(sentence, cited, max(scores[n] for n in cited)))
        else:
            result.removed.append(sentence)
    return result


def split_cited_sentences(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of ``text`` with the marker numbers attached to each (markers after the period count too)."""
    sentences: list[tuple[str, list[int]]] = []
    # Markers written after the sentence's full stop ("... law. [1]") belong to that sentence.
    normalized = re.sub(rf"([{SENTENCE_PUNCTUATION}.])((?:\s*\[\d+(?:\s*[,，、]\s*\d+)*\])+)", r"\2\1", text)
    for start, end in sentence_spans(normalized):
        piece = normalized[start:end]
        numbers = [int(n) for group in MARKER.findall(piece) for n in re.split(r"\s*[,，、]\s*", group)]
        content = MARKER.sub("", piece).strip()
        if content:
            sentences.append((content, list(dict.fromkeys(numbers))))
    return sentences


def join_cited(sentences: Sequence[tuple[str, Sequence[int]]]) -> str:
    """Sentences with their ``[n]`` markers as one text, spaced as each language wants."""
    return _join([_attach(_unwrap(text), "".join(f"[{n}]" for n in cited)) for text, cited in sentences])


def _unwrap(text: str) -> str:
    """One line: hard wraps become spaces, except between Chinese characters."""
    return CJK_WRAP.sub("", " ".join(text.split()))


CJK_WRAP = re.compile(f"(?<=[{CJK_CHARS}{CJK_PUNCTUATION}]) (?=[{CJK_CHARS}{CJK_PUNCTUATION}])")


def _attach(sentence: str, markers: str) -> str:
    """Put markers before the sentence's closing punctuation: "… law [1]." / "……方法[1]。"."""
    match = re.search(rf"[{SENTENCE_PUNCTUATION}.]+[{CLOSING_QUOTES}]*$", sentence)
    if not match:
        return sentence + markers if _is_cjk_end(sentence) else f"{sentence} {markers}".rstrip()
    body, end = sentence[: match.start()], match.group()
    return f"{body}{markers}{end}" if _is_cjk_end(body) else f"{body} {markers}{end}"


def _is_cjk_end(text: str) -> bool:
    return bool(text) and (bool(CJK_RUN.match(text[-1])) or text[-1] in CJK_CLOSING)



def _join(parts: list[str]) -> str:
    out = ""
    for part in parts:
        # Chinese needs no space between sentences; English does.
        if out and not (_is_cjk_end(out) or CJK_RUN.match(part[:1])):
            out += " "
        out += part
    return out
