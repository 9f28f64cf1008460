"""BM25 keyword search per knowledge base, persisted in SQLite, scored with bm25s."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np

from ingest.chunk import Chunk
from stores.metadata_filter import MetadataFilter, matches
from stores.sqlite import connect
from stores.text_analysis import analyze

TERM_SEPARATOR = "\t"  # terms never contain tabs: analyze() splits on whitespace


@dataclass(slots=True)
class KeywordHit:
    chunk_id: str
    doc_id: str
    score: float
    coverage: float  # IDF-weighted share of the query's terms found in the chunk, in [0, 1]


@dataclass(slots=True)
class _LoadedIndex:
    revision: int
    chunk_ids: list[str]
    doc_ids: list[str]
    metadata: list[dict]
    bm25: bm25s.BM25 | None


class KeywordIndex:
    """Keyword (BM25) search over chunks; identifiers such as CVE ids or IPs are whole terms.

    The terms are stored in SQLite under the data directory; the BM25 matrices are rebuilt in
    memory when the stored revision changes, so several processes sharing the file agree.

    Usage::

        index = KeywordIndex(Path("data/keyword.sqlite"))
        index.add("handbook", chunks)
        hits = index.search("handbook", "CVE-2021-44228 影响哪些版本", k=10)
    """

    def __init__(
        self,
        path: Path,
        analyzer: Callable[[str], list[str]] = analyze,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        if k1 <= 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 > 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.analyzer = analyzer
        self.k1, self.b = k1, b
        self._db = connect(path)
        self._lock = threading.RLock()
        self._loaded: dict[str, _LoadedIndex] = {}
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS keyword_terms (
                kb TEXT NOT NULL, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,
                terms TEXT NOT NULL, metadata TEXT NOT NULL,
                PRIMARY KEY (kb, chunk_id));
            CREATE INDEX IF NOT EXISTS keyword_terms_doc ON keyword_terms (kb, doc_id);
            CREATE TABLE IF NOT EXISTS keyword_revisions (kb TEXT PRIMARY KEY, revision INTEGER NOT NULL);
            """
        )

    def add(self, kb: str, chunks: Sequence[Chunk]) -> None:
        rows = [
            (kb, c.id, c.doc_id, TERM_SEPARATOR.join(self.analyzer(c.text)), json.dumps(_filterable(c))) for c in chunks
        ]
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO keyword_terms VALUES (?, ?, ?, ?, ?)", rows)
            self._bump(kb)

    def delete_document(self, kb: str, doc_id: str) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM keyword_terms WHERE kb = ? AND doc_id = ?", (kb, doc_id))
            self._bump(kb)

    def delete_kb(self, kb: str) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM keyword_terms WHERE kb = ?", (kb,))
            self._db.execute("DELETE FROM keyword_revisions WHERE kb = ?", (kb,))
            self._loaded.pop(kb, None)

    def ids(self, kb: str, doc_id: str | None = None) -> set[str]:
        sql, args = "SELECT chunk_id FROM keyword_terms WHERE kb = ?", [kb]
        if doc_id is not None:
            sql, args = sql + " AND doc_id = ?", [kb, doc_id]
        with self._lock:
            return {row[0] for row in self._db.execute(sql, args)}

    def search(
        self, kb: str, query: str, k: int, where: MetadataFilter | None = None, containing: Sequence[str] = ()
    ) -> list[KeywordHit]:
        """The ``k`` best chunks by BM25 that contain at least one query term.

        ``containing`` (index terms, such as a CVE id from :func:`~stores.text_analysis.identifiers`)
        keeps only chunks that hold at least one of them: an exact-match stage before ranking.
        """
        index = self._current(kb)
        terms = list(dict.fromkeys(self.analyzer(query)))
        if index.bm25 is None or not terms or k < 1:
            return []
        vocab = index.bm25.vocab_dict
        known = [vocab[t] for t in terms if t in vocab]
        if not known:
            return []
        mask = None
        if where:
            mask = np.fromiter((matches(m, where) for m in index.metadata), dtype=np.float32, count=len(index.metadata))
        if containing:
            holding = np.zeros(len(index.chunk_ids), dtype=np.float32)
            holding[self._postings(index, containing)] = 1.0
            mask = holding if mask is None else mask * holding
        scores = index.bm25.get_scores_from_ids(known, weight_mask=mask)
        candidates = np.flatnonzero(scores > 0)
        if candidates.size > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")]
        coverage = self._coverage(index, terms, candidates)
        return [
            KeywordHit(index.chunk_ids[i], index.doc_ids[i], float(scores[i]), float(cov))
            for i, cov in zip(candidates, coverage, strict=True)
        ]

    @staticmethod
    def _postings(index: _LoadedIndex, terms: Sequence[str]) -> np.ndarray:
        """Positions of the chunks that hold any of ``terms``."""
        bm25 = index.bm25
        assert bm25 is not None
        indptr, indices = bm25.scores["indptr"], bm25.scores["indices"]
        ids = [bm25.vocab_dict[t] for t in terms if t in bm25.vocab_dict]
        if not ids:
            return indices[:0]
        return np.unique(np.concatenate([indices[indptr[i] : indptr[i + 1]] for i in ids]))

    def _coverage(self, index: _LoadedIndex, terms: list[str], docs: np.ndarray) -> np.ndarray:
        """IDF-weighted share of query terms present in each doc; terms absent from the KB count too."""
        bm25 = index.bm25
        assert bm25 is not None
        indptr, indices = bm25.scores["indptr"], bm25.scores["indices"]
        n_docs = len(index.chunk_ids)
        found = np.zeros(docs.size, dtype=np.float64)
        total = 0.0
        for term in terms:
            token_id = bm25.vocab_dict.get(term)
            postings = indices[indptr[token_id] : indptr[token_id + 1]] if token_id is not None else indices[:0]
            df = postings.size
            idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
            total += idf
            if df:
                found += idf * np.isin(docs, postings)
        return found / total if total else found

    def _bump(self, kb: str) -> None:
        self._db.execute(
            "INSERT INTO keyword_revisions VALUES (?, 1) ON CONFLICT(kb) DO UPDATE SET revision = revision + 1",
            (kb,),
        )

    def _current(self, kb: str) -> _LoadedIndex:
        with self._lock:
            row = self._db.execute("SELECT revision FROM keyword_revisions WHERE kb = ?", (kb,)).fetchone()
            revision = row[0] if row else 0
            loaded = self._loaded.get(kb)
            if loaded is not None and loaded.revision == revision:
                return loaded
            rows = self._db.execute(
                "SELECT chunk_id, doc_id, terms, metadata FROM keyword_terms WHERE kb = ? ORDER BY chunk_id", (kb,)
            ).fetchall()
            bm25 = None
            if rows:
                bm25 = bm25s.BM25(k1=self.k1, b=self.b)
                corpus = [r[2].split(TERM_SEPARATOR) if r[2] else [] for r in rows]
                bm25.index(corpus, show_progress=False)
            loaded = _LoadedIndex(
                revision, [r[0] for r in rows], [r[1] for r in rows], [json.loads(r[3]) for r in rows], bm25
            )
            self._loaded[kb] = loaded
            return loaded


def _filterable(chunk: Chunk) -> dict:
    """The metadata a filter may test, as JSON-safe scalars."""
    meta = {k: v for k, v in chunk.metadata.items() if isinstance(v, str | int | float | bool)}
    meta["doc_id"] = chunk.doc_id
    return meta
