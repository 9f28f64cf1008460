"""What the web page browses: documents a page at a time, a document's chunks and text, one chunk in its
context with the sentence that supports a claim, recent ingest jobs, and what the caller's key may do.

Read-only routes: nothing here changes a knowledge base.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from api.deps import CallerDep, EngineDep, readable
from api.errors import documented
from api.schemas import DocumentInfo, file_name
from ingest.chunk import Chunk
from ingest.splitter import sentence_spans
from rag.citations import support_terms
from rag.engine import Engine
from rag.ingest_jobs import IngestJob
from rag.retrieval import fetch_chunks
from rag.types import section_of
from stores.write_lock import WriteLock

router = APIRouter()
MAX_PAGE = 200
LOCATION_KEYS = frozenset({"source", "page", "section", "line_start", "line_end"})
DocumentSort = Literal["name", "chunks", "size", "ingested_at", "status"]
SORT_COLUMNS = {  # the catalog column each sort uses
    "name": "source",
    "chunks": "chunk_count",
    "size": "size",
    "ingested_at": "ingested_at",
    "status": "status",
}


class DocumentPage(BaseModel):
    total: int = Field(description="Documents matching the search, over all pages.")
    offset: int
    limit: int
    items: list[DocumentInfo]


class ChunkView(BaseModel):
    """A chunk whole, with where it is: file, page, section/sheet/slide, lines, character offsets."""

    chunk_id: str
    doc_id: str
    index: int
    text: str
    start: int
    end: int
    source: str
    name: str
    page: int | None = None
    section: str | None = Field(None, description="Heading, sheet or slide, where the format has one.")
    line_start: int | None = None
    line_end: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, chunk: Chunk) -> ChunkView:
        meta = chunk.metadata
        source = str(meta.get("source", ""))
        section = section_of(meta)
        return cls(
            chunk_id=chunk.id,
            doc_id=chunk.doc_id,
            index=chunk.index,
            text=chunk.text,
            start=chunk.start,
            end=chunk.end,
            source=source,
            name=file_name(source),
            page=meta.get("page") if isinstance(meta.get("page"), int) else None,
            section=str(section) if section else None,
            line_start=meta.get("line_start") if isinstance(meta.get("line_start"), int) else None,
            line_end=meta.get("line_end") if isinstance(meta.get("line_end"), int) else None,
            metadata={k: v for k, v in meta.items() if k not in LOCATION_KEYS},
        )


class ChunkPage(BaseModel):
    doc_id: str
    total: int = Field(description="The document's chunk count.")
    offset: int
    chunks: list[ChunkView]


class ChunkContext(BaseModel):
    chunk: ChunkView
    highlight: tuple[int, int] | None = Field(
        None, description="Character span, in the chunk's text, of the sentence that best supports `claim`."
    )
    before: list[ChunkView] = Field(default_factory=list, description="Neighbours before it, in order.")
    after: list[ChunkView] = Field(default_factory=list, description="Neighbours after it, in order.")


class DocumentText(BaseModel):
    """A stretch of a document's text, rebuilt from its chunks (overlaps removed) so offsets match citations."""

    doc_id: str
    name: str
    source: str
    text: str
    offset: int = Field(description="Character offset of text[0] in the document: a citation's start - offset.")
    first_chunk: int
    last_chunk: int
    total_chunks: int


class KeyInfo(BaseModel):
    keys_required: bool = Field(description="False when the service runs without API keys.")
    name: str | None = None
    access: Literal["read", "write"] = "write"
    kbs: list[str] = Field(default_factory=lambda: ["*"], description='Knowledge bases it opens; "*" = all.')


@router.get("/whoami", tags=["service"], responses=documented(401))
def whoami(request: Request, who: CallerDep) -> KeyInfo:
    """What the key sent may do (the web page checks a key with this before keeping it); 401 if not valid."""
    if who.key is None:
        return KeyInfo(keys_required=bool(request.app.state.api_keys))
    return KeyInfo(keys_required=True, name=who.key.name or None, access=who.key.access, kbs=who.key.kbs)


class WriteLockState(BaseModel):
    holder: str | None = Field(None, description='Another process writing now ("process 1234"), or null.')


@router.get("/write-lock", tags=["service"], responses=documented(401))
def write_lock(engine: EngineDep) -> WriteLockState:
    """Whether another process holds the data directory's write lock: why a change is waiting."""
    lock = engine.knowledge_bases.writing
    return WriteLockState(holder=lock.elsewhere() if isinstance(lock, WriteLock) else None)


@router.get("/kbs/{kb}/document-page", tags=["documents"], responses=documented(401, 403, 404, 422))
def document_page(
    kb: str,
    engine: EngineDep,
    who: CallerDep,
    q: Annotated[str, Query(max_length=200, description="Part of the file's path or title (ASCII in any case).")] = "",
    sort: DocumentSort = "name",
    order: Literal["asc", "desc"] = "asc",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> DocumentPage:
    """One page of a KB's documents, searched and sorted by the server (a KB may hold many thousands).

    The search matches part of the file's path or title (ASCII letters in any case); ``name`` sorts by the path."""
    readable(engine, who, kb)
    total, records = engine.knowledge_bases.catalog.page(
        kb, q.strip(), SORT_COLUMNS[sort], order == "desc", offset, limit
    )
    return DocumentPage(total=total, offset=offset, limit=limit, items=[DocumentInfo.of(r) for r in records])


def chunks_by_index(engine: Engine, kb: str, doc_id: str, first: int, last: int) -> list[ChunkView]:
    """The document's chunks ``first``..``last`` (inclusive) that exist, in order."""
    ids = [Chunk.make_id(doc_id, i) for i in range(max(first, 0), last + 1)]
    found = fetch_chunks(engine.vectors, engine.keywords, kb, ids) if ids else {}
    return [ChunkView.of(found[i]) for i in ids if i in found]


def document_record(engine: Engine, kb: str, doc_id: str) -> DocumentInfo:
    record = engine.knowledge_bases.catalog.document(kb, doc_id)
    if record is None:
        raise HTTPException(404, f"no document {doc_id!r} in the knowledge base {kb!r}")
    return DocumentInfo.of(record)


@router.get("/kbs/{kb}/documents/{doc_id}/chunks", tags=["documents"], responses=documented(401, 403, 404, 422))
def document_chunks(
    kb: str,
    doc_id: str,
    engine: EngineDep,
    who: CallerDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
) -> ChunkPage:
    """A document's chunks in order, whole, each with its metadata."""
    readable(engine, who, kb)
    document = document_record(engine, kb, doc_id)
    chunks = chunks_by_index(engine, kb, doc_id, offset, min(offset + limit, document.chunks) - 1)
    return ChunkPage(doc_id=doc_id, total=document.chunks, offset=offset, chunks=chunks)


@router.get("/kbs/{kb}/documents/{doc_id}/text", tags=["documents"], responses=documented(401, 403, 404, 422))
def document_text(
    kb: str,
    doc_id: str,
    engine: EngineDep,
    who: CallerDep,
    chunk: Annotated[int, Query(ge=0, description="The chunk to centre on.")] = 0,
    radius: Annotated[int, Query(ge=0, le=50, description="Chunks on each side.")] = 10,
) -> DocumentText:
    """The document's text around one chunk, rebuilt from the chunks: what a citation's offsets point into."""
    readable(engine, who, kb)
    document = document_record(engine, kb, doc_id)
    views = chunks_by_index(engine, kb, doc_id, chunk - radius, min(chunk + radius, document.chunks - 1))
    if not views:
        raise HTTPException(404, f"the document {doc_id!r} has no chunk {chunk}")
    return DocumentText(
        doc_id=doc_id,
        name=document.name,
        source=document.source,
        text=merged_text(views),
        offset=views[0].start,
        first_chunk=views[0].index,
        last_chunk=views[-1].index,
        total_chunks=document.chunks,
    )


def merged_text(views: list[ChunkView]) -> str:
    """Chunks laid at their offsets: overlaps written once, the whitespace the splitter trimmed put back
    as line breaks (one space for a one-character gap), so every offset still points where it did."""
    parts: list[str] = []
    cursor = views[0].start
    for view in views:
        if view.start > cursor:
            gap = view.start - cursor
            parts.append(" " if gap == 1 else "\n" * gap)
            cursor = view.start
        if view.end > cursor:
            parts.append(view.text[cursor - view.start :])
            cursor = view.end
    return "".join(parts)


@router.get("/kbs/{kb}/chunks/{chunk_id}", tags=["documents"], responses=documented(401, 403, 404, 422))
def chunk_context(
    kb: str,
    chunk_id: str,
    engine: EngineDep,
    who: CallerDep,
    claim: Annotated[str, Query(max_length=4000, description="A sentence citing this chunk, to highlight.")] = "",
    neighbours: Annotated[int, Query(ge=0, le=5, description="Chunks shown on each side.")] = 1,
) -> ChunkContext:
    """One chunk whole, its neighbours, and the span of its sentence that best supports ``claim``."""
    readable(engine, who, kb)
    found = fetch_chunks(engine.vectors, engine.keywords, kb, [chunk_id])
    if chunk_id not in found:
        raise HTTPException(404, f"no chunk {chunk_id!r} in the knowledge base {kb!r}")
    chunk = found[chunk_id]
    around = chunks_by_index(engine, kb, chunk.doc_id, chunk.index - neighbours, chunk.index + neighbours)
    return ChunkContext(
        chunk=ChunkView.of(chunk),
        highlight=supporting_span(chunk.text, claim) if claim.strip() else None,
        before=[v for v in around if v.index < chunk.index],
        after=[v for v in around if v.index > chunk.index],
    )


def supporting_span(text: str, claim: str) -> tuple[int, int] | None:
    """The sentence of ``text`` holding most of the claim's terms (the citation check's terms); None if none."""
    wanted = support_terms(claim)
    best: tuple[float, int, int] | None = None
    for start, end in sentence_spans(text):
        terms = support_terms(text[start:end])
        shared = len(wanted & terms)
        if not shared:
            continue
        score = shared / len(wanted) + shared / len(terms)  # covers the claim, and is mostly the claim
        if best is None or score > best[0]:
            best = (score, start, end)
    return (best[1], best[2]) if best else None


@router.get("/kbs/{kb}/jobs", tags=["documents"], responses=documented(401, 403, 404, 422))
def recent_jobs(
    kb: str, engine: EngineDep, who: CallerDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[IngestJob]:
    """The newest upload jobs of the KB (kept a week), each with its per-file outcomes."""
    who.require(kb)
    return engine.ingest_jobs.recent(kb, limit)
