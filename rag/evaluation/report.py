"""The report of ``rag eval``: per-question results summed up into the JSON that other tools read.

Every fraction is in [0, 1]; a metric that has no value for the run (answer text without generation,
refusals of not-in-KB questions when there are none) is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from operator import add
from typing import Any

from rag.evaluation.metrics import (
    CitationCounts,
    citation_scores,
    mean,
    percentiles,
    refusal_curve,
    refusal_shares,
    retrieval_scores,
)
from rag.evaluation.runner import QueryResult, passage_source


def summarize(results: Sequence[QueryResult], label: str, threshold: float, generated: bool) -> dict[str, Any]:
    """The report's keys for the system under test (``baseline`` is added by the caller)."""
    answerable = [r for r in results if r.query.answerable]
    ranked = [r for r in answerable if r.query.gold_pid]  # no gold passage: a KB filled by `rag ingest`
    golds = [passage_source(label, r.query.gold_pid or "") for r in ranked]
    flags = ([r.query.answerable for r in results], [r.query.not_in_kb for r in results])
    return {
        "n": {
            "queries": len(results),
            "answerable": len(answerable),
            "unanswerable": len(results) - len(answerable),
            "not_in_kb": sum(r.query.not_in_kb and not r.query.answerable for r in results),
        },
        "retrieval": retrieval_scores([r.ranking for r in ranked], golds),
        "evidence": {"contains_answer": mean([bool(r.evidence) for r in answerable])},
        "refusal": {
            "threshold": threshold,
            **refusal_shares([r.refused for r in results], *flags),
            # The gate alone (before any generator), as its threshold moves: the operating point is a choice.
            "curve": refusal_curve([r.relevance for r in results], *flags),
        },
        "citations": _citations(results) if generated else None,
        "answer": _answers(answerable) if generated else None,
        "latency_ms": _latency(results),
        "by_kind": _by_kind(results),
    }


def _by_kind(results: Sequence[QueryResult]) -> dict[str, dict[str, Any]]:
    """Per ``kind`` label: questions, how many were right (see :class:`QueryResult`), list items found."""
    kinds: dict[str, list[QueryResult]] = {}
    for r in results:
        kinds.setdefault(r.query.kind or ("answerable" if r.query.answerable else "unanswerable"), []).append(r)
    return {
        kind: {
            "n": len(rs),
            "right": sum(bool(r.right) for r in rs),
            "items_found": mean([r.items_found for r in rs if r.items_found is not None]),
        }
        for kind, rs in kinds.items()
    }


def _citations(results: Sequence[QueryResult]) -> dict[str, float | None]:
    final = reduce(add, (r.citations for r in results if r.citations and not r.refused), CitationCounts())
    raw = reduce(add, (r.raw_citations for r in results if r.raw_citations), CitationCounts())
    # valid/supported: the answer as delivered (after the check); raw_*: the generator's own text.
    raw_scores = citation_scores(raw)
    return {**citation_scores(final), "raw_valid": raw_scores["valid"], "raw_supported": raw_scores["supported"]}


def _answers(answerable: Sequence[QueryResult]) -> dict[str, float | None]:
    return {"em": mean([r.em or 0.0 for r in answerable]), "f1": mean([r.f1 or 0.0 for r in answerable])}


def _latency(results: Sequence[QueryResult]) -> dict[str, dict[str, float] | None]:
    stages = dict.fromkeys(stage for r in results for stage in r.timings)
    return {stage: percentiles([r.timings[stage] for r in results if stage in r.timings]) for stage in stages}
