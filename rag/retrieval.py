"""Hybrid retrieval: dense (Chroma) and keyword (BM25) results fused by weighted reciprocal rank."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ingest.chunk import Chunk
from stores import Catalog, ChromaVectorStore, Embedder, Hit, KeywordIndex
from stores.metadata_filter import MetadataFilter, matches, validate_filter
from stores.text_analysis import identifiers, language_of, without_question_phrases

RRF_K = 60  # the constant of Cormack et al.; damps the head of each list


@dataclass(frozen=True, slots=True)
class Retrieval:
    hits: list[Hit]
    language: str
    dense_used: bool


class HybridRetriever:
    """Dense + BM25 retrieval with language awareness.

    When the embedder cannot read the question's language (the bundled MiniLM and Chinese), the
    dense side is left out: its ranking would be noise and fusion would drag BM25 down.

    ``relevance`` of a hit is the larger of its dense cosine similarity (when the embedder reads
    the language) and its keyword coverage (IDF-weighted share of the question's terms it holds);
    it is 1 when the hit's metadata names every specific identifier of the question (the chunk
    belongs to the very advisory the question names).

    Identifiers in the question (CVE/GHSA/RUSTSEC ids, IP addresses, hashes, paths, host and
    package names; see :func:`~stores.text_analysis.identifiers`) match exactly and rank first:
    chunks that hold a specific identifier are fetched by an exact-match keyword stage, and hits are
    ordered by how many of the question's identifiers their metadata names (an advisory's own id,
    aliases, package, host), then whether their text holds a specific one, then fused score. When
    some passages hold a specific identifier of the question, the others are dropped. So a question
    naming CVE-2021-44228 gets that advisory first even when the dense side prefers another.
    Questions without identifiers rank by fused score alone.

    Usage::

        retriever = HybridRetriever(embedder, vectors, keywords, catalog)
        result = retriever.run("handbook", "年假有几天？", top_k=4)
    """

    def __init__(
        self,
        embedder: Embedder,
        vectors: ChromaVectorStore,
        keywords: KeywordIndex,
        catalog: Catalog,
        candidates: int = 30,
        dense_weight: float = 1.0,
        keyword_weight: float = 1.0,
    ) -> None:
        if candidates < 1:
            raise ValueError("candidates must be at least 1")
        if dense_weight < 0 or keyword_weight < 0 or dense_weight + keyword_weight == 0:
            raise ValueError("weights must be non-negative and not both zero")
        self.embedder = embedder
        self.vectors = vectors
        self.keywords = keywords
        self.catalog = catalog
        self.candidates = candidates
        self.dense_weight = dense_weight
        self.keyword_weight = keyword_weight

    def run(self, kb: str, query: str, top_k: int = 4, filters: MetadataFilter | None = None) -> Retrieval:
        validate_filter(filters)
        language = language_of(query)
        use_dense = self.dense_weight > 0 and self.embedder.reads(language)
        n = max(self.candidates, top_k)
        asked = without_question_phrases(query)  # "几年" or "叫什么名字" is in no passage: not a term to cover
        keyword_hits = self.keywords.search(kb, asked, n, where=filters) if self.keyword_weight > 0 else []
        dense_hits = self.vectors.query(kb, self.embedder.embed_query(query), n, where=filters) if use_dense else []
        named = identifiers(query)
        specific = list(dict.fromkeys(i.term for i in named if i.strong))
        exact_hits = self.keywords.search(kb, query, n, where=filters, containing=specific) if specific else []

        fused: dict[str, Hit] = {}
        for rank, hit in enumerate(dense_hits):
            hit.score = self.dense_weight / (RRF_K + rank + 1)
            hit.relevance = max(0.0, hit.scores["dense"])
            fused[hit.chunk.id] = hit
        missing = [h.chunk_id for h in keyword_hits + exact_hits if h.chunk_id not in fused]
        chunks = fetch_chunks(self.vectors, self.keywords, kb, list(dict.fromkeys(missing)))
        for hits, fuse in ((keyword_hits, True), (exact_hits, False)):
            for rank, keyword_hit in enumerate(hits):
                hit = fused.get(keyword_hit.chunk_id)
                if hit is None:
                    chunk = chunks.get(keyword_hit.chunk_id)
                    if chunk is None:  # indexes briefly disagree while a document is replaced
                        continue
                    hit = fused[keyword_hit.chunk_id] = Hit(chunk, 0.0)
                elif not fuse:
                    continue  # the exact stage only adds chunks the other lists missed
                hit.score += self.keyword_weight / (RRF_K + rank + 1)
                hit.scores["keyword"] = keyword_hit.score
                hit.scores["coverage"] = keyword_hit.coverage
                hit.scores["salient"] = keyword_hit.salient
                hit.relevance = max(hit.relevance, keyword_hit.coverage)

        # A chunk is served only if its document is ready and it belongs to the current version: a chunk
        # numbered past the version's count is a leftover the store did not drop yet, never an answer.
        ready = self.catalog.ready_chunk_counts(kb, {h.chunk.doc_id for h in fused.values()})
        hits = [
            h for h in fused.values() if h.chunk.index < ready.get(h.chunk.doc_id, 0) and matches(_meta(h), filters)
        ]
        if named:
            holding = {h.chunk_id for h in exact_hits}
            terms = frozenset(i.term for i in named)
            for hit in hits:
                hit.scores["identifiers"] = float(len(terms & _metadata_identifiers(hit.chunk.metadata)))
                hit.scores["exact"] = float(hit.chunk.id in holding)
                # For the relevance gate: the question names specific identifiers; does this passage hold one?
                hit.scores["specific_asked"] = float(len(specific))
                held = hit.scores["exact"] or set(specific) & _metadata_identifiers(hit.chunk.metadata)
                hit.scores["specific_held"] = float(bool(held))
            for hit in hits:
                if specific and set(specific) <= _metadata_identifiers(hit.chunk.metadata):
                    hit.relevance = 1.0  # the passage is the record of what the question names (its advisory, host)
            about = [h for h in hits if h.scores["exact"] or set(specific) & _metadata_identifiers(h.chunk.metadata)]
            if about:  # a passage that does not name the specific identifier asked about is about something else
                hits = about
        hits.sort(
            key=lambda h: (h.scores.get("identifiers", 0), h.scores.get("exact", 0), h.score, h.relevance), reverse=True
        )
        return Retrieval(hits[:top_k], language, use_dense)


def fetch_chunks(vectors: ChromaVectorStore, keywords: KeywordIndex, kb: str, chunk_ids: list[str]) -> dict[str, Chunk]:
    """Chunks by id: from Chroma, and from the keyword index those that have no vector."""
    found = vectors.get(kb, chunk_ids)
    rest = [i for i in chunk_ids if i not in found]
    if rest:
        found.update(keywords.chunks(kb, rest))
    return found


def _meta(hit: Hit) -> dict:
    return {**hit.chunk.metadata, "doc_id": hit.chunk.doc_id}


def _metadata_identifiers(metadata: Mapping[str, Any]) -> frozenset[str]:
    """The identifier terms a chunk's metadata names: advisory id, aliases, CVEs, package, product, host …"""
    found: set[str] = set()
    for key, value in metadata.items():
        if isinstance(value, str) and key != "source":
            found |= _identifier_terms(value)
    return frozenset(found)


@lru_cache(maxsize=65536)
def _identifier_terms(value: str) -> frozenset[str]:
    return frozenset(i.term for i in identifiers(value))
