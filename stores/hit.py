"""What a store returns for a query: a chunk with its scores."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.chunk import Chunk


@dataclass(slots=True)
class Hit:
    """A retrieved chunk.

    ``score`` orders hits (higher is better; its scale depends on who produced it).
    ``relevance`` is in [0, 1] and comparable across queries, so a threshold on it can decide
    whether the knowledge base holds an answer at all. ``scores`` keeps each retriever's own
    figure (``dense`` cosine similarity, ``keyword`` BM25, ``coverage``) for inspection.
    """

    chunk: Chunk
    score: float
    relevance: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
