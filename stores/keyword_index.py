"""BM25 keyword search per knowledge base: terms persisted in SQLite, postings in memory.

The keyword index holds every chunk; Chroma holds those with a vector. A chunk without one (in a
language the embedder cannot read, or repeating the template of a chunk that has one) is kept here
whole, with its text, and marks which template it shares (see :meth:`KeywordIndex.add`).

Every write stamps its rows with the KB's next revision, and deletions are logged with theirs, so a
process (each API worker holds its own index) catches up by reading only what changed since the
revision it has loaded; see :mod:`stores.bm25_segments` for the in-memory side.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.chunk import Chunk
from stores.bm25_segments import Row, SegmentedBM25
from stores.metadata_filter import MetadataFilter, matches
from stores.sqlite import connect
from stores.text_analysis import analyze
from stores.vector_store import chroma_metadata, chunk_from_chroma

TERM_SEPARATOR = "\t"  # terms never contain tabs: analyze() splits on whitespace

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS keyword_terms (
        kb TEXT NOT NULL, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,
        terms TEXT NOT NULL, metadata TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 0,
        template TEXT, dense INTEGER NOT NULL DEFAULT 1, chunk TEXT,
        PRIMARY KEY (kb, chunk_id))""",
    "CREATE INDEX IF NOT EXISTS keyword_terms_doc ON keyword_terms (kb, doc_id)",
    # floor: the oldest revision the deletion log still covers; a process loaded below it reloads
    """CREATE TABLE IF NOT EXISTS keyword_revisions (
        kb TEXT PRIMARY KEY, revision INTEGER NOT NULL, floor INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS keyword_deletions (
        kb TEXT NOT NULL, chunk_id TEXT NOT NULL, revision INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS keyword_deletions_revision ON keyword_deletions (kb, revision)",
)
# Columns that older databases lack. Rows without a revision count as revision 0; rows written before
# chunks could be keyword-only all have a vector (dense 1) and no template.
ADDED_COLUMNS = (
    ("keyword_terms", "revision", "INTEGER NOT NULL DEFAULT 0"),
    ("keyword_revisions", "floor", "INTEGER NOT NULL DEFAULT 0"),
    ("keyword_terms", "template", "TEXT"),
    ("keyword_terms", "dense", "INTEGER NOT NULL DEFAULT 1"),
    ("keyword_terms", "chunk", "TEXT"),
)
SQL_BATCH = 500  # ids per IN (...) list, well under SQLite's limit on bound variables


@dataclass(slots=True)
class KeywordHit:
    chunk_id: str
    doc_id: str
    score: float
    coverage: float  # IDF-weighted share of the query's terms found in the chunk, in [0, 1]
    salient: float = 0.0  # the same share over the query's rarest terms (what it is about)


@dataclass(slots=True)
class _Loaded:
    revision: int
    index: SegmentedBM25


class KeywordIndex:
    """Keyword (BM25) search over chunks; identifiers such as CVE ids or IPs are whole terms.

    The terms are stored in SQLite under the data directory. Each process keeps the postings in
    memory and, before a search, applies the rows and deletions newer than its revision, so several
    processes sharing the file agree without rebuilding anything after a write.

    Usage::

        index = KeywordIndex(Path("data/keyword.sqlite"))
        index.add("handbook", chunks)
        hits = index.search("handbook", "CVE-2021-44228 影响哪些版本", k=10)
    """

    deletion_log_limit = 100_000  # deletion rows kept per KB; older ones move the floor up

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
        self._loaded: dict[str, _Loaded] = {}
        self.rows_read = 0  # keyword_terms rows read into memory so far: catching up reads only the new ones
        self.full_loads = 0
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")  # two processes starting at once must not both migrate
            for statement in SCHEMA:
                self._db.execute(statement)
            for table, column, declaration in ADDED_COLUMNS:
                if column not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            self._db.execute("CREATE INDEX IF NOT EXISTS keyword_terms_revision ON keyword_terms (kb, revision)")
            self._db.execute("CREATE INDEX IF NOT EXISTS keyword_terms_template ON keyword_terms (kb, template)")

    def add(
        self,
        kb: str,
        chunks: Sequence[Chunk],
        templates: Sequence[str | None] | None = None,
        dense: Sequence[bool] | None = None,
    ) -> None:
        """Index ``chunks``. ``templates`` (from :func:`~stores.text_analysis.template_key`) and ``dense``
        (whether Chroma holds the chunk's vector) go with them one for one; the defaults are no template
        and all dense. A chunk that is not dense is stored whole, since only this index can return it.
        """
        templates = list(templates) if templates is not None else [None] * len(chunks)
        dense = list(dense) if dense is not None else [True] * len(chunks)
        if not len(templates) == len(dense) == len(chunks):
            raise ValueError(f"{len(chunks)} chunks, {len(templates)} templates and {len(dense)} dense flags")
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            revision = self._bump(kb)
            # a replaced chunk id needs no deletion row: readers retire the old copy when the new row comes
            self._db.executemany(
                "INSERT OR REPLACE INTO keyword_terms"
                " (kb, chunk_id, doc_id, terms, metadata, revision, template, dense, chunk)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        kb,
                        c.id,
                        c.doc_id,
                        TERM_SEPARATOR.join(self.analyzer(c.text)),
                        json.dumps(_filterable(c)),
                        revision,
                        template,
                        int(has_vector),
                        None if has_vector else _stored(c),
                    )
                    for c, template, has_vector in zip(chunks, templates, dense, strict=True)
                ],
            )

    def chunks(self, kb: str, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """The chunks among ``chunk_ids`` that have no vector (Chroma returns the others), by id."""
        found: dict[str, Chunk] = {}
        with self._lock:
            for start in range(0, len(chunk_ids), SQL_BATCH):
                batch = list(chunk_ids[start : start + SQL_BATCH])
                rows = self._db.execute(
                    "SELECT chunk_id, chunk FROM keyword_terms WHERE kb = ? AND chunk IS NOT NULL"
                    f" AND chunk_id IN ({','.join('?' * len(batch))})",
                    (kb, *batch),
                )
                for chunk_id, stored in rows:
                    found[chunk_id] = _restored(chunk_id, stored)
        return found

    def templates_with_vectors(self, kb: str, templates: Collection[str], excluding: Collection[str] = ()) -> set[str]:
        """Which of ``templates`` a chunk with a vector already stands for, outside the documents ``excluding``."""
        wanted = list(templates)
        skip = list(excluding)
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(wanted), SQL_BATCH):
                batch = wanted[start : start + SQL_BATCH]
                rows = self._db.execute(
                    "SELECT DISTINCT template FROM keyword_terms WHERE kb = ? AND dense = 1"
                    f" AND template IN ({','.join('?' * len(batch))})"
                    f" AND doc_id NOT IN ({','.join('?' * len(skip))})",
                    (kb, *batch, *skip),
                )
                found.update(row[0] for row in rows)
        return found

    def heirs(self, kb: str, doc_id: str, keep: Collection[str] = ()) -> list[tuple[str, Chunk]]:
        """Before ``doc_id`` goes: for each of its chunks whose vector stands for a template that chunks
        of other documents share, ``(that chunk's id, one such chunk)``: the heir to take over its vector.

        Templates in ``keep`` are left out (the document's next version brings a vector of its own).
        """
        heirs: list[tuple[str, Chunk]] = []
        with self._lock:
            standing = self._db.execute(
                "SELECT chunk_id, template FROM keyword_terms"
                " WHERE kb = ? AND doc_id = ? AND dense = 1 AND template IS NOT NULL",
                (kb, doc_id),
            ).fetchall()
            for chunk_id, template in standing:
                if template in keep:
                    continue
                row = self._db.execute(
                    "SELECT chunk_id, chunk FROM keyword_terms"
                    " WHERE kb = ? AND template = ? AND dense = 0 AND doc_id != ? AND chunk IS NOT NULL LIMIT 1",
                    (kb, template, doc_id),
                ).fetchone()
                if row is not None:
                    heirs.append((chunk_id, _restored(*row)))
        return heirs

    def mark_dense(self, kb: str, chunk_ids: Sequence[str]) -> None:
        """Record that Chroma now holds these chunks' vectors (heirs that took one over)."""
        with self._lock, self._db:
            self._db.executemany(
                "UPDATE keyword_terms SET dense = 1, chunk = NULL WHERE kb = ? AND chunk_id = ?",
                [(kb, chunk_id) for chunk_id in chunk_ids],
            )

    def delete_document(self, kb: str, doc_id: str) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            revision = self._bump(kb)
            self._db.execute(
                "INSERT INTO keyword_deletions SELECT kb, chunk_id, ? FROM keyword_terms WHERE kb = ? AND doc_id = ?",
                (revision, kb, doc_id),
            )
            self._db.execute("DELETE FROM keyword_terms WHERE kb = ? AND doc_id = ?", (kb, doc_id))
            self._prune(kb)

    def delete_kb(self, kb: str) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            # The revision goes on rather than back to 0, so that a KB recreated after this never looks
            # current to a process that loaded the old one; the floor sends such a process to reload.
            revision = self._bump(kb)
            self._db.execute("DELETE FROM keyword_terms WHERE kb = ?", (kb,))
            self._db.execute("DELETE FROM keyword_deletions WHERE kb = ?", (kb,))
            self._db.execute("UPDATE keyword_revisions SET floor = ? WHERE kb = ?", (revision, kb))
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
        terms = list(dict.fromkeys(self.analyzer(query)))
        if not terms or k < 1:
            return []
        accept = (lambda metadata: matches(metadata, where)) if where else None
        with self._lock:  # a catch-up changes the index in place: search and catch-up take turns
            index = self._current(kb)
            return [
                KeywordHit(index.chunk_ids[p], index.doc_ids[p], score, coverage, salient)
                for p, score, coverage, salient in index.search(terms, k, accept, containing)
            ]

    def _bump(self, kb: str) -> int:
        """The KB's next revision, taken inside the caller's write transaction."""
        return self._db.execute(
            "INSERT INTO keyword_revisions (kb, revision) VALUES (?, 1)"
            " ON CONFLICT(kb) DO UPDATE SET revision = revision + 1 RETURNING revision",
            (kb,),
        ).fetchone()[0]

    def _prune(self, kb: str) -> None:
        """Keep the newest ``deletion_log_limit`` deletion rows, whole revisions at a time."""
        row = self._db.execute(
            "SELECT revision FROM keyword_deletions WHERE kb = ? ORDER BY revision DESC LIMIT 1 OFFSET ?",
            (kb, self.deletion_log_limit),
        ).fetchone()
        if row is not None:
            self._db.execute("DELETE FROM keyword_deletions WHERE kb = ? AND revision <= ?", (kb, row[0]))
            self._db.execute("UPDATE keyword_revisions SET floor = max(floor, ?) WHERE kb = ?", (row[0], kb))

    def _current(self, kb: str) -> SegmentedBM25:
        """The KB's index, brought up to the stored revision: the changes since the loaded one, or
        everything when nothing is loaded or the deletion log no longer reaches back that far."""
        with self._lock, self._db:
            self._db.execute("BEGIN")  # one snapshot: the revision and the rows it covers agree
            row = self._db.execute("SELECT revision, floor FROM keyword_revisions WHERE kb = ?", (kb,)).fetchone()
            revision, floor = row or (0, 0)
            loaded = self._loaded.get(kb)
            if loaded is not None and loaded.revision == revision:
                return loaded.index
            self._loaded.pop(kb, None)  # until it is consistent again: a failure below leaves nothing half-applied
            if loaded is None or not floor <= loaded.revision < revision:
                loaded = _Loaded(revision, SegmentedBM25(self.k1, self.b))
                loaded.index.add(self._rows(kb, "", ()))
                self.full_loads += 1
            else:
                gone = self._db.execute(
                    "SELECT chunk_id FROM keyword_deletions WHERE kb = ? AND revision > ?", (kb, loaded.revision)
                )
                # deletions first: a chunk deleted and then added again must end up present
                loaded.index.delete([r[0] for r in gone])
                loaded.index.add(self._rows(kb, " AND revision > ?", (loaded.revision,)))
                loaded.revision = revision
            self._loaded[kb] = loaded
            return loaded.index

    def _rows(self, kb: str, condition: str, args: tuple[int, ...]) -> Iterator[Row]:
        cursor = self._db.execute(
            "SELECT chunk_id, doc_id, terms, metadata FROM keyword_terms WHERE kb = ?" + condition, (kb, *args)
        )
        for chunk_id, doc_id, terms, metadata in cursor:
            self.rows_read += 1
            yield chunk_id, doc_id, terms.split(TERM_SEPARATOR) if terms else [], metadata


def _stored(chunk: Chunk) -> str:
    """A chunk without a vector as this index keeps it: its text and metadata as Chroma would hold them."""
    return json.dumps({"text": chunk.text, "metadata": chroma_metadata(chunk)})


def _restored(chunk_id: str, stored: str) -> Chunk:
    record = json.loads(stored)
    return chunk_from_chroma(chunk_id, record["text"], record["metadata"])


def _filterable(chunk: Chunk) -> dict:
    """The metadata a filter may test, as JSON-safe scalars."""
    meta = {k: v for k, v in chunk.metadata.items() if isinstance(v, str | int | float | bool)}
    meta["doc_id"] = chunk.doc_id
    return meta
