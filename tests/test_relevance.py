"""The relevance gate: several signals of the ranking, one logistic estimate, one threshold."""

from __future__ import annotations

import pytest

from ingest.chunk import Chunk
from rag.relevance import RelevanceGate, list_items, signals
from stores.hit import Hit


def hit(doc: str, **scores: float) -> Hit:
    return Hit(Chunk(f"{doc}:0", doc, 0, "text", 0, 4, {}), 1.0, scores.pop("relevance", 0.0), dict(scores))


def test_a_passage_that_stands_out_and_holds_the_subject_is_answered() -> None:
    gate = RelevanceGate()
    clear = [hit("a", coverage=0.8, salient=1.0, keyword=12.0), hit("b", coverage=0.3, salient=0.0, keyword=3.0)]
    flat = [hit(d, coverage=0.5, salient=0.3, keyword=5.0) for d in "abcde"]
    assert signals(clear).margin == pytest.approx(0.75) and signals(flat).margin == 0.0
    assert gate.relevance(clear) > 0.5 > gate.relevance(flat)
    assert not gate.refuses(clear) and gate.refuses(flat) and gate.refuses([])


def test_every_signal_raises_relevance() -> None:
    gate = RelevanceGate()
    base = dict(coverage=0.4, salient=0.5, keyword=5.0)
    low = gate.relevance([hit("a", **base), hit("b", keyword=4.0)])
    for signal, value in [("coverage", 0.9), ("salient", 1.0), ("keyword", 20.0)]:
        assert gate.relevance([hit("a", **{**base, signal: value}), hit("b", keyword=4.0)]) > low, signal
    assert gate.relevance([hit("a", **base, dense=0.8), hit("b", keyword=4.0, dense=0.1)]) > gate.relevance(
        [hit("a", **base, dense=0.2), hit("b", keyword=4.0, dense=0.1)]
    )


def test_the_record_named_by_an_identifier_is_relevant() -> None:
    assert RelevanceGate().relevance([hit("kev", relevance=1.0, identifiers=1.0)]) == 1.0


def test_the_gate_validates_its_settings() -> None:
    with pytest.raises(ValueError):
        RelevanceGate(threshold=1.5)
    with pytest.raises(ValueError, match="lack"):
        RelevanceGate(weights={"bias": 0.0})


def test_list_items_are_the_hits_that_hold_the_subject_one_per_document() -> None:
    hits = [
        hit("struts-1", coverage=0.9, salient=1.0),
        hit("struts-1", coverage=0.7, salient=1.0),
        hit("struts-2", coverage=0.6, salient=1.0),
        hit("log4j", coverage=0.7, salient=0.4),
        hit("struts-3", coverage=0.2, salient=1.0),
    ]
    assert [h.chunk.doc_id for h in list_items(hits)] == ["struts-1", "struts-2"]
    assert len(list_items([hit(str(i), coverage=1.0, salient=1.0) for i in range(20)], limit=5)) == 5


def test_a_specific_identifier_that_no_passage_holds_is_refused() -> None:
    neighbour = hit("CVE-2021-44207", coverage=0.5, salient=0.5, keyword=5.0, specific_asked=1.0, specific_held=0.0)
    assert RelevanceGate().relevance([neighbour]) == 0.0
    holding = hit(
        "CVE-2021-44228", relevance=0.9, coverage=0.9, salient=1.0, keyword=20.0, specific_asked=1.0, specific_held=1.0
    )
    assert RelevanceGate().relevance([holding, neighbour]) > 0.5
