"""The metrics of ``rag eval``, as pure functions of what was retrieved, refused and written.

Retrieval is scored per passage: a chunk counts for the passage it was cut from, so a passage's
rank is the rank of its best chunk among distinct passages. Answer text is scored as each dataset's
official script does: SQuAD's normalized token F1 for English, CMRC 2018's character-level F1 for
Chinese (longest common run of characters, punctuation removed), the best over the reference answers.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.citations import MARKER, split_cited_sentences, support, support_terms

KS = (1, 3, 5, 10)
MRR_DEPTH = 10
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(21))


def mean(values: Sequence[float | bool]) -> float | None:
    """The average, or None when there is nothing to average (a metric without a value)."""
    return float(np.mean(values)) if len(values) else None


# Retrieval


def passage_ranking(chunk_passages: Sequence[str]) -> list[str]:
    """Passages in the order of their best chunk, from the passages of the ranked chunks."""
    return list(dict.fromkeys(chunk_passages))


def reciprocal_rank(ranking: Sequence[str], gold: str, depth: int = MRR_DEPTH) -> float:
    for rank, passage in enumerate(ranking[:depth], start=1):
        if passage == gold:
            return 1.0 / rank
    return 0.0


def retrieval_scores(rankings: Sequence[Sequence[str]], golds: Sequence[str]) -> dict[str, float | None]:
    """hit@k for k in :data:`KS` and MRR@10 over questions, given each one's passage ranking and gold passage."""
    if len(rankings) != len(golds):
        raise ValueError(f"{len(rankings)} rankings but {len(golds)} gold passages")
    scores: dict[str, float | None] = {
        f"hit@{k}": mean([gold in ranking[:k] for ranking, gold in zip(rankings, golds, strict=True)]) for k in KS
    }
    scores[f"mrr@{MRR_DEPTH}"] = mean([reciprocal_rank(r, g) for r, g in zip(rankings, golds, strict=True)])
    return scores


def contains_answer(texts: Sequence[str], answers: Sequence[str]) -> bool:
    """Whether one of ``texts`` holds one of ``answers`` (case, width and spacing ignored)."""
    folded = [_fold(t) for t in texts]
    return any(a and any(a in t for t in folded) for a in map(_fold, answers))


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# Refusal


def refusal_shares(
    refused: Sequence[bool], answerable: Sequence[bool], not_in_kb: Sequence[bool]
) -> dict[str, float | None]:
    """Refused among unanswerable questions and among those about topics absent from the KB; answered among
    answerable ones."""
    rows = list(zip(refused, answerable, not_in_kb, strict=True))
    return {
        "refused_unanswerable": mean([r for r, a, _ in rows if not a]),
        "refused_not_in_kb": mean([r for r, a, n in rows if n and not a]),
        "answered_answerable": mean([not r for r, a, _ in rows if a]),
    }


def refusal_curve(
    scores: Sequence[float | None],
    answerable: Sequence[bool],
    not_in_kb: Sequence[bool],
    thresholds: Sequence[float] = THRESHOLDS,
) -> list[dict[str, float | None]]:
    """:func:`refusal_shares` as the refusal threshold moves, from each question's recorded relevance.

    A question is refused at threshold ``t`` when its relevance is below ``t``; a question that
    retrieved nothing (relevance None) is refused at every threshold.
    """
    return [
        {"threshold": t, **refusal_shares([s is None or s < t for s in scores], answerable, not_in_kb)}
        for t in thresholds
    ]


# Citations


@dataclass(frozen=True, slots=True)
class CitationCounts:
    markers: int = 0  # [n] markers in the text
    valid: int = 0  # ... that point at a retrieved source
    sentences: int = 0  # sentences with content words
    supported: int = 0  # ... supported by a source they cite

    def __add__(self, other: CitationCounts) -> CitationCounts:
        return CitationCounts(
            self.markers + other.markers,
            self.valid + other.valid,
            self.sentences + other.sentences,
            self.supported + other.supported,
        )


def count_citations(text: str, sources: Sequence[str], threshold: float) -> CitationCounts:
    """Markers of ``text`` that point at one of ``sources`` (numbered from 1), and sentences that a source they
    cite supports (:func:`rag.citations.support` ≥ ``threshold``)."""
    markers = valid = sentences = supported = 0
    for sentence, numbers in split_cited_sentences(text):
        cited = [n for n in numbers if 1 <= n <= len(sources)]
        markers += len(numbers)
        valid += len(cited)
        if support_terms(sentence):
            sentences += 1
            supported += any(support(sentence, sources[n - 1]) >= threshold for n in cited)
    return CitationCounts(markers, valid, sentences, supported)


def citation_scores(counts: CitationCounts) -> dict[str, float | None]:
    return {
        "valid": counts.valid / counts.markers if counts.markers else None,
        "supported": counts.supported / counts.sentences if counts.sentences else None,
    }


def without_markers(text: str) -> str:
    return MARKER.sub("", text).strip()


# Answer text


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalization: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in SQUAD_PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


SQUAD_PUNCTUATION = frozenset(string.punctuation)


def squad_exact_match(prediction: str, answers: Sequence[str]) -> float:
    return float(any(squad_normalize(prediction) == squad_normalize(a) for a in answers))


def squad_f1(prediction: str, answers: Sequence[str]) -> float:
    predicted = squad_normalize(prediction).split()
    return max((_token_f1(predicted, squad_normalize(a).split()) for a in answers), default=0.0)


def _token_f1(predicted: list[str], reference: list[str]) -> float:
    if not predicted or not reference:
        return float(predicted == reference)
    common = sum((Counter(predicted) & Counter(reference)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(reference)
    return 2 * precision * recall / (precision + recall)


# The punctuation CMRC 2018's script removes. Its list also has "……", which as two characters never
# equals the single character it is compared with; a lone "…" is kept, as there.
CMRC_PUNCTUATION = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
CMRC_HAN = re.compile(r"[\u4e00-\u9fa5]")
# NLTK's word tokenizer on the non-Chinese runs, approximated: words and numbers whole, other symbols alone.
LATIN_TOKEN = re.compile(r"[^\W_]+(?:[.'’][^\W_]+)*|[^\w\s]", re.UNICODE)


def cmrc_segments(text: str) -> list[str]:
    """CMRC 2018's mixed segmentation, punctuation removed: each Chinese character a token, other runs in words."""
    tokens: list[str] = []
    run = ""
    for char in text.lower().strip():
        if char in CMRC_PUNCTUATION:
            continue
        if CMRC_HAN.match(char):
            tokens += LATIN_TOKEN.findall(run)
            run = ""
            tokens.append(char)
        else:
            run += char
    return tokens + LATIN_TOKEN.findall(run)


def cmrc_exact_match(prediction: str, answers: Sequence[str]) -> float:
    def strip(text: str) -> str:
        return "".join(c for c in text.lower().strip() if c not in CMRC_PUNCTUATION)

    return float(any(strip(prediction) == strip(a) for a in answers))


def cmrc_f1(prediction: str, answers: Sequence[str]) -> float:
    """F1 of the longest common run of tokens, as CMRC 2018 scores it; the best over ``answers``."""
    predicted = cmrc_segments(prediction)
    best = 0.0
    for answer in answers:
        reference = cmrc_segments(answer)
        common = _longest_common_run(predicted, reference)
        if common:
            precision, recall = common / len(predicted), common / len(reference)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def _longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def answer_scores(prediction: str, answers: Sequence[str], language: str) -> tuple[float, float]:
    """(exact match, F1) of ``prediction``: CMRC 2018's way for Chinese ("zh"), SQuAD's otherwise."""
    if language == "zh":
        return cmrc_exact_match(prediction, answers), cmrc_f1(prediction, answers)
    return squad_exact_match(prediction, answers), squad_f1(prediction, answers)


# Latency


def percentiles(values: Sequence[float]) -> dict[str, float] | None:
    """Median and 95th percentile (linear interpolation between ranks), or None without values."""
    if not len(values):
        return None
    p50, p95 = np.percentile(np.asarray(values, dtype=float), [50, 95])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2)}
