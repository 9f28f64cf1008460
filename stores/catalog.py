"""The catalog: which knowledge bases exist and which documents each holds, in SQLite."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from stores.sqlite import connect

READY, PENDING = "ready", "pending"


@dataclass(frozen=True, slots=True)
class KnowledgeBaseRecord:
    name: str
    created_at: float
    documents: int
    chunks: int


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """A document as the catalog knows it.

    ``status`` is ``pending`` from the moment its chunks start changing until all stores hold the
    new version; a pending document is redone by the next ingest and never served.
    """

    kb: str
    doc_id: str
    source: str
    title: str
    sha256: str
    chunk_count: int
    size: int
    ingested_at: float
    status: str


class Catalog:
    """Knowledge bases and their documents: name, id, source, content hash, chunk count, time.

    Usage::

        catalog = Catalog(Path("data/catalog.sqlite"))
        catalog.create_kb("handbook")
        catalog.documents("handbook")
    """

    def __init__(self, path: Path) -> None:
        self._db = connect(path)
        self._lock = threading.RLock()
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS kbs (name TEXT PRIMARY KEY, created_at REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS documents (
                kb TEXT NOT NULL REFERENCES kbs(name) ON DELETE CASCADE,
                doc_id TEXT NOT NULL, source TEXT NOT NULL, title TEXT NOT NULL,
                sha256 TEXT NOT NULL, chunk_count INTEGER NOT NULL, size INTEGER NOT NULL,
                ingested_at REAL NOT NULL, status TEXT NOT NULL,
                PRIMARY KEY (kb, doc_id));
            """
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(kbs)")}
        if "collection" not in columns:  # catalogs made before KBs had their own collection id
            with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
                self._db.execute("ALTER TABLE kbs ADD COLUMN collection TEXT")

    def create_kb(self, name: str) -> bool:
        """Create ``name``, with a collection id of its own; False if it already existed."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO kbs (name, created_at, collection) VALUES (?, ?, ?)",
                (name, time.time(), f"kb-{uuid.uuid4().hex}"),
            )
            return cursor.rowcount == 1

    def generation(self) -> int:
        """A number that changes whenever another connection (another process) has changed the catalog."""
        with self._lock:
            return self._db.execute("PRAGMA data_version").fetchone()[0]

    def collection(self, name: str) -> str | None:
        """The vector collection of KB ``name``: an id given when it was made, never derived from the
        name, so no two KBs (and no KB made again after a delete) share one. None for an unknown KB
        or one made before KBs had ids (its collection is still named after it)."""
        with self._lock:
            row = self._db.execute("SELECT collection FROM kbs WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def has_kb(self, name: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM kbs WHERE name = ?", (name,)).fetchone() is not None

    def kbs(self) -> list[KnowledgeBaseRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT k.name, k.created_at, COUNT(d.doc_id), COALESCE(SUM(d.chunk_count), 0) "
                "FROM kbs k LEFT JOIN documents d ON d.kb = k.name AND d.status = ? "
                "GROUP BY k.name ORDER BY k.name",
                (READY,),
            ).fetchall()
        return [KnowledgeBaseRecord(*row) for row in rows]

    def delete_kb(self, name: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM kbs WHERE name = ?", (name,)).rowcount == 1

    def document(self, kb: str, doc_id: str) -> DocumentRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM documents WHERE kb = ? AND doc_id = ?", (kb, doc_id)).fetchone()
        return DocumentRecord(*row) if row else None

    def documents(self, kb: str, status: str | None = None) -> list[DocumentRecord]:
        sql, args = "SELECT * FROM documents WHERE kb = ?", [kb]
        if status is not None:
            sql, args = sql + " AND status = ?", [kb, status]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY source", args).fetchall()
        return [DocumentRecord(*row) for row in rows]

    def parts(self, kb: str, prefix: str) -> list[DocumentRecord]:
        """Documents of ``kb`` whose source starts with ``prefix`` (the records filed under one file)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM documents WHERE kb = ? AND substr(source, 1, ?) = ? ORDER BY source",
                (kb, len(prefix), prefix),
            ).fetchall()
        return [DocumentRecord(*row) for row in rows]

    def mark_pending(self, kb: str, doc_id: str, source: str, title: str, size: int) -> None:
        """Record that ``doc_id``'s chunks are about to change; its old hash is cleared."""
        with self._lock:
            self._db.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?, '', 0, ?, ?, ?) "
                "ON CONFLICT(kb, doc_id) DO UPDATE SET source = excluded.source, title = excluded.title, "
                "sha256 = '', size = excluded.size, ingested_at = excluded.ingested_at, status = excluded.status",
                (kb, doc_id, source, title, size, time.time(), PENDING),
            )

    def mark_ready(self, kb: str, doc_id: str, sha256: str, chunk_count: int) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE documents SET sha256 = ?, chunk_count = ?, ingested_at = ?, status = ? "
                "WHERE kb = ? AND doc_id = ?",
                (sha256, chunk_count, time.time(), READY, kb, doc_id),
            )

    def remove_document(self, kb: str, doc_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM documents WHERE kb = ? AND doc_id = ?", (kb, doc_id)).rowcount == 1

    def ready_doc_ids(self, kb: str, among: set[str]) -> set[str]:
        """Which of ``among`` are ready documents of ``kb`` (asked per query: only the hits' documents)."""
        return set(self.ready_chunk_counts(kb, among))

    def ready_chunk_counts(self, kb: str, among: set[str]) -> dict[str, int]:
        """The ready documents of ``kb`` among ``among``, with their current chunk counts."""
        if not among:
            return {}
        marks = ",".join("?" * len(among))
        with self._lock:
            rows = self._db.execute(
                f"SELECT doc_id, chunk_count FROM documents WHERE kb = ? AND status = ? AND doc_id IN ({marks})",
                (kb, READY, *among),
            )
            return {row[0]: row[1] for row in rows}

    PAGE_ORDERS = ("source", "chunk_count", "size", "ingested_at", "status")

    def page(
        self, kb: str, search: str = "", order_by: str = "source", descending: bool = False, offset: int = 0,
        limit: int = 50,
    ) -> tuple[int, list[DocumentRecord]]:
        """One page of ``kb``'s documents whose source or title contains ``search`` (ASCII case ignored),
        sorted by the column ``order_by`` (one of :attr:`PAGE_ORDERS`); also how many match in all."""
        if order_by not in self.PAGE_ORDERS:
            raise ValueError(f"documents sort by one of {', '.join(self.PAGE_ORDERS)}, not {order_by!r}")
        where, args = "kb = ?", [kb]
        if search:
            where, args = where + " AND instr(lower(source || char(10) || title), lower(?)) > 0", [kb, search]
        direction = "DESC" if descending else "ASC"
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM documents WHERE {where}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM documents WHERE {where} ORDER BY {order_by} {direction}, doc_id {direction}"
                " LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return total, [DocumentRecord(*row) for row in rows]
