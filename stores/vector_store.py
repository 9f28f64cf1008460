"""Chroma as the dense store: one collection per knowledge base, vectors always computed by us."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np

from ingest.chunk import Chunk
from stores.hit import Hit
from stores.metadata_filter import MetadataFilter, to_chroma_where
from stores.write_lock import WriteLock

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,40}[A-Za-z0-9]|[A-Za-z0-9]")
CHROMA_BATCH = 1000  # Chroma rejects very large single writes
CATCH_UP_ID = "rag-kb:catch-up"  # no chunk has this id: deleting it changes nothing but the index's view
T = TypeVar("T")


def collection_name(kb: str) -> str:
    """The collection of a KB the catalog assigned none (made before collections were ids):
    plain ASCII names as they are, others (Chinese names, say) hashed.

    Two KB names can share one such name (``x y`` and the 32 hex digits of its hash), which is why
    every KB made now gets its own collection from the catalog (``collection_of``), never its name.
    """
    if SAFE_NAME.fullmatch(kb):
        return f"kb-{kb}"
    return "kb-" + hashlib.sha256(kb.encode("utf-8")).hexdigest()[:32]


def chroma_metadata(chunk: Chunk) -> dict[str, str | int | float | bool]:
    """Chunk metadata as Chroma stores it: scalars only, no ``None``."""
    flat: dict[str, str | int | float | bool] = {
        "doc_id": chunk.doc_id,
        "index": chunk.index,
        "start": chunk.start,
        "end": chunk.end,
    }
    for key, value in chunk.metadata.items():
        if isinstance(value, str | int | float | bool):
            flat[key] = value
        elif isinstance(value, list | tuple) and value:
            flat[key] = ", ".join(map(str, value))
    return flat


def chunk_from_chroma(chunk_id: str, text: str, metadata: dict[str, Any]) -> Chunk:
    meta = dict(metadata)
    return Chunk(
        id=chunk_id,
        doc_id=str(meta.pop("doc_id")),
        index=int(meta.pop("index")),
        start=int(meta.pop("start")),
        end=int(meta.pop("end")),
        text=text,
        metadata=meta,
    )


class ChromaVectorStore:
    """Dense vectors in Chroma: embedded ``PersistentClient`` by default, ``HttpClient`` for a server.

    Usage::

        store = ChromaVectorStore(path=Path("data/chroma"))          # embedded
        store = ChromaVectorStore(url="http://chroma.internal:8000")  # a Chroma server
        store.add("handbook", chunks, vectors)
        hits = store.query("handbook", query_vector, k=10)
    """

    def __init__(
        self,
        path: Path | None = None,
        url: str | None = None,
        collection_of: Callable[[str], str | None] | None = None,
        written_elsewhere: Callable[[], int] | None = None,
    ) -> None:
        """``collection_of(kb)`` names the KB's collection (the catalog's id for it); None or absent:
        the name :func:`collection_name` derives from the KB's name.

        ``written_elsewhere()`` is a number that changes when another process has written (the
        catalog's SQLite ``data_version``). Embedded Chroma keeps each collection's vector index in
        memory and catches up with other processes' writes only when this process writes to that
        collection; so before a query, when the number changed, a no-op write makes it catch up, and
        a `rag ingest` beside the service is seen on the service's next query."""
        if (path is None) == (url is None):
            raise ValueError("give exactly one of path (embedded Chroma) or url (a Chroma server)")
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if url is not None:
            parsed = urlparse(url)
            if parsed.scheme not in {"http", "https"} or not parsed.hostname:
                raise ValueError(f"Chroma URL must look like http://host:8000, got {url!r}")
            self._client = chromadb.HttpClient(
                host=parsed.hostname,
                port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=settings,
            )
        else:
            Path(path).mkdir(parents=True, exist_ok=True)
            # Opening runs Chroma's SQLite migrations; processes starting at once (several `rag ingest`)
            # would otherwise meet "database is locked" and fail, so they open it in turn.
            with WriteLock(Path(path) / "open.lock", timeout=120):
                self._client = chromadb.PersistentClient(path=str(path), settings=settings)
        self._collection_of = collection_of or (lambda kb: None)
        self._written_elsewhere = written_elsewhere if url is None else None  # a server has one index
        self._caught_up: dict[str, int] = {}  # collection name -> written_elsewhere() when last caught up
        self._collections: dict[str, Any] = {}  # by collection name

    def collection_name(self, kb: str) -> str:
        """The Chroma collection that holds ``kb``'s vectors."""
        return self._collection_of(kb) or collection_name(kb)

    def _collection(self, kb: str):
        name = self.collection_name(kb)
        collection = self._collections.get(name)
        if collection is None:
            collection = self._client.get_or_create_collection(
                name=name,
                embedding_function=None,  # we embed; Chroma's default would download a model
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"kb": kb},
            )
            self._collections[name] = collection
        return collection

    def _on_collection(self, kb: str, operation: Callable[[Any], T]) -> T:
        """``operation(collection)``, again with a fresh handle if the cached one names a deleted collection.

        Another process (an API worker sharing a Chroma server) may have deleted and recreated the KB:
        the cached handle then points at a collection id that no longer exists.
        """
        from chromadb.errors import NotFoundError

        try:
            return operation(self._collection(kb))
        except NotFoundError:
            self._collections.pop(self.collection_name(kb), None)
            return operation(self._collection(kb))

    def add(self, kb: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")

        def upsert(collection: Any) -> None:  # idempotent, so a retry after a stale handle is safe
            for start in range(0, len(chunks), CHROMA_BATCH):
                batch = chunks[start : start + CHROMA_BATCH]
                collection.upsert(
                    ids=[c.id for c in batch],
                    embeddings=vectors[start : start + CHROMA_BATCH],
                    documents=[c.text for c in batch],
                    metadatas=[chroma_metadata(c) for c in batch],
                )

        self._on_collection(kb, upsert)

    def delete_document(self, kb: str, doc_id: str, chunk_ids: Collection[str] = ()) -> None:
        """Remove a document's chunks: ``chunk_ids`` (those the caller knows of) by id, then any other by filter.

        Ids are exact; the filter, which depends on the store's metadata being current, catches the rest
        (chunks of a write that crashed before the caller recorded them).
        """

        def delete(collection: Any) -> None:
            if chunk_ids:
                collection.delete(ids=list(chunk_ids))
            collection.delete(where={"doc_id": doc_id})

        self._on_collection(kb, delete)

    def _catch_up(self, collection: Any) -> None:
        """Make embedded Chroma's in-memory index take in other processes' writes (see ``__init__``)."""
        if self._written_elsewhere is None:
            return
        mark = self._written_elsewhere()
        if self._caught_up.get(collection.name) != mark:
            collection.delete(ids=[CATCH_UP_ID])  # a write: the index reads every queued write since its last
            self._caught_up[collection.name] = mark

    def delete_kb(self, kb: str) -> None:
        name = self.collection_name(kb)
        self._collections.pop(name, None)
        try:
            self._client.delete_collection(name)
        except Exception as error:  # Chroma raises its own NotFound types across versions
            if "does not exist" not in str(error).lower() and "not found" not in str(error).lower():
                raise

    def heartbeat(self) -> None:
        """Raise if the store cannot be reached (a Chroma server that is down)."""
        self._client.heartbeat()

    def count(self, kb: str) -> int:
        return self._on_collection(kb, lambda collection: collection.count())

    def ids(self, kb: str, doc_id: str | None = None) -> set[str]:
        where = {"doc_id": doc_id} if doc_id else None
        return set(self._on_collection(kb, lambda collection: collection.get(where=where, include=[]))["ids"])

    def query(self, kb: str, vector: np.ndarray, k: int, where: MetadataFilter | None = None) -> list[Hit]:
        """The ``k`` nearest chunks; ``score`` and ``scores["dense"]`` are cosine similarity."""
        if k < 1:
            return []

        def nearest(collection: Any) -> dict[str, Any] | None:
            self._catch_up(collection)
            total = collection.count()
            if total == 0:
                return None
            return collection.query(
                query_embeddings=[vector],
                n_results=min(k, total),
                where=to_chroma_where(where),
                include=["documents", "metadatas", "distances"],
            )

        result = self._on_collection(kb, nearest)
        if result is None:
            return []
        hits = []
        for chunk_id, text, metadata, distance in zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        ):
            if metadata is None or text is None:  # deleted while the query ran: a server's index lags its records
                continue
            similarity = 1.0 - float(distance)
            hits.append(Hit(chunk_from_chroma(chunk_id, text, metadata), similarity, scores={"dense": similarity}))
        return hits

    def get(self, kb: str, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """Chunks by id (missing ids are simply absent)."""
        if not chunk_ids:
            return {}
        result = self._on_collection(
            kb, lambda collection: collection.get(ids=list(chunk_ids), include=["documents", "metadatas"])
        )
        return {
            chunk_id: chunk_from_chroma(chunk_id, text, metadata)
            for chunk_id, text, metadata in zip(result["ids"], result["documents"], result["metadatas"], strict=True)
            if metadata is not None and text is not None
        }

    def vectors(self, kb: str, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of chunks by id (missing ids are simply absent)."""
        if not chunk_ids:
            return {}
        result = self._on_collection(kb, lambda collection: collection.get(ids=list(chunk_ids), include=["embeddings"]))
        return {
            chunk_id: np.asarray(vector, dtype=np.float32)
            for chunk_id, vector in zip(result["ids"], result["embeddings"], strict=True)
            if vector is not None
        }
