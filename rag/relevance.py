"""The one refusal policy before generation: whether the retrieved passages can back an answer at all.

Relevance is estimated from several signals of the ranked hits, none enough alone:

- ``coverage``: the IDF-weighted share of the question's terms that the best passage holds;
- ``salient``: that share over the question's rarest terms only (its subject: a name, an id), which a
  question about something absent from the knowledge base rarely finds, however many ordinary words match;
- ``margin``: how far the best passage's keyword score stands above the next passage's (an answerable
  question has a passage about it; an absent topic gets a flat list of partial matches);
- ``dense``: the best cosine similarity, where the embedder reads the question's language (paraphrase);
- ``best``: the best hit's own relevance, the larger of its dense similarity and its coverage;
- an identifier the question names (a CVE id, a host) that a passage's own record names: relevance 1; a
  specific identifier that no passage holds: relevance 0 (a neighbouring CVE's entry is no answer).

They are combined by a logistic model whose weights were fitted on the shared development slices
(``bench/relevance_fit.py``; docs/quality.md gives the slices, the fit and the checks on text it was not
fitted on), so relevance is in [0, 1] and rises with every signal; its intercept places the operating point
chosen on those slices at the default threshold 0.5 (see :data:`DEFAULT_WEIGHTS`).

Usage::

    gate = RelevanceGate(threshold=0.5)
    if gate.refuses(retrieval.hits):
        ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from stores.hit import Hit

GATE_DEPTH = 10  # hits the gate reads: the margin needs the passages after the first few
LIST_DEPTH = 30  # hits a list question looks through for its items
LIST_LIMIT = 12  # items a list answer gives at most
SIGNALS = ("coverage", "salient", "margin", "dense", "no_dense", "best")


@dataclass(frozen=True, slots=True)
class RelevanceSignals:
    """What the gate reads from a ranking (see the module docstring); ``dense`` is 0 when ``no_dense``."""

    coverage: float
    salient: float
    margin: float
    dense: float
    no_dense: float  # 1.0 when the dense side did not run (the embedder does not read the language)
    best: float
    identified: bool = False
    unnamed: bool = False  # the question names a specific identifier that no hit holds

    def vector(self) -> list[float]:
        values = asdict(self)
        return [float(values[name]) for name in SIGNALS]


# Fitted by bench/relevance_fit.py on the CMRC 2018 and SQuAD 2.0 development slices together (answerable
# against not-in-KB questions, each slice and class weighted equally; docs/quality.md has the fit and the
# checks). The fitted intercept, -4.803, is shifted by logit(0.5) - logit(0.38) = +0.49 so that the default
# threshold 0.5 sits at the operating point chosen on the fitted slices (0.38 of the fitted model).
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "bias": -4.313,
    "coverage": 2.285,
    "salient": 1.577,
    "margin": 2.262,
    "dense": 1.436,
    "no_dense": 0.171,
    "best": 2.499,
}


def signals(hits: Sequence[Hit]) -> RelevanceSignals:
    """The gate's signals from ``hits``, ranked best first (the first :data:`GATE_DEPTH` are read)."""
    hits = list(hits[:GATE_DEPTH])
    coverage = max((h.scores.get("coverage", 0.0) for h in hits), default=0.0)
    salient = max((h.scores.get("salient", 0.0) for h in hits), default=0.0)
    dense_scores = [h.scores["dense"] for h in hits if "dense" in h.scores]
    identified = any(h.relevance >= 1.0 and h.scores.get("identifiers", 0) > 0 for h in hits)
    return RelevanceSignals(
        coverage=coverage,
        salient=salient,
        margin=_margin(hits),
        dense=max(0.0, max(dense_scores)) if dense_scores else 0.0,
        no_dense=0.0 if dense_scores else 1.0,
        best=max((h.relevance for h in hits), default=0.0),
        identified=identified,
        unnamed=any(h.scores.get("specific_asked", 0) for h in hits)
        and not any(h.scores.get("specific_held", 0) for h in hits),
    )


def _margin(hits: Sequence[Hit]) -> float:
    """1 − (the next passage's keyword score ÷ the best chunk's), in [0, 1]; 0 without a keyword hit.

    The best chunk's neighbours in its document (they overlap it) are the same passage, not the next one.
    """
    scored = sorted((h for h in hits if "keyword" in h.scores), key=lambda h: h.scores["keyword"], reverse=True)
    if not scored or scored[0].scores["keyword"] <= 0:
        return 0.0
    top = scored[0].chunk
    others = [
        h.scores["keyword"]
        for h in scored[1:]
        if h.chunk.doc_id != top.doc_id or abs(h.chunk.index - top.index) > 1
    ]
    return 1.0 - (others[0] if others else 0.0) / scored[0].scores["keyword"]


class RelevanceGate:
    """Refuses a question before generation when the estimated relevance of its hits is below ``threshold``.

    ``weights`` map each of :data:`SIGNALS` and ``bias`` to a logistic-model weight.
    """

    def __init__(self, threshold: float = 0.5, weights: Mapping[str, float] | None = None) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError("the relevance threshold must be in [0, 1]")
        weights = dict(weights or DEFAULT_WEIGHTS)
        missing = {"bias", *SIGNALS} - set(weights)
        if missing:
            raise ValueError(f"relevance weights lack {sorted(missing)}")
        self.threshold = threshold
        self.weights = weights

    def relevance(self, hits: Sequence[Hit]) -> float:
        """How well ``hits`` back an answer, in [0, 1]: what :meth:`refuses` compares with the threshold."""
        if not hits:
            return 0.0
        return self.score(signals(hits))

    def score(self, found: RelevanceSignals) -> float:
        if found.unnamed:
            return 0.0  # what the question names is in no passage: whatever was found is about something else
        if found.identified:
            return 1.0  # the passage is the very record the question names
        z = self.weights["bias"] + sum(self.weights[n] * v for n, v in zip(SIGNALS, found.vector(), strict=True))
        return 1.0 / (1.0 + math.exp(-z))

    def refuses(self, hits: Sequence[Hit]) -> bool:
        """Whether the question is refused before generation, given its ranked ``hits``."""
        return not hits or self.relevance(hits) < self.threshold


def list_items(hits: Sequence[Hit], limit: int = LIST_LIMIT) -> list[Hit]:
    """The hits that answer a list question, one per document, best first, at most ``limit``.

    An item holds what the question is about as fully as the best hit does (its rarest terms:
    "Struts" in "Which Apache Struts vulnerabilities …") and at least half of its other terms.
    """
    if not hits:
        return []
    salient = max(h.scores.get("salient", 0.0) for h in hits)
    coverage = max(h.scores.get("coverage", 0.0) for h in hits)
    items: dict[str, Hit] = {}
    for hit in hits:
        if (
            hit.chunk.doc_id not in items
            and hit.scores.get("salient", 0.0) >= salient - 1e-9
            and hit.scores.get("coverage", 0.0) >= coverage / 2
        ):
            items[hit.chunk.doc_id] = hit
    return list(items.values())[:limit]
