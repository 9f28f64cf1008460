"""Request and response bodies of the knowledge-base API."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel, Field

from rag.knowledge_base import DocumentRecord
from rag.types import Citation

MAX_QUESTION_CHARS = 4000
FILTERS_HELP = (
    'Metadata filter: {"field": value} or {"field": {"$gte": value}} with $eq $ne $gt $gte $lt $lte $in $nin; '
    'every condition must hold. E.g. {"page": {"$lte": 3}}. Advisories: advisory_id, severity_rank (0 none … '
    "4 critical), cvss, vendor, product (lower case), published_ts (YYYYMMDD), format (cisa-kev, csaf, osv, "
    "cve-json5, rustsec, rubysec, vuln-writeup). Logs: host, level_rank (1 debug … 5 error … 8 emergency), "
    "start_ts/end_ts (YYYYMMDDhhmmss of a chunk's first/last line). See rag/filters.py."
)


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class CreateKnowledgeBase(BaseModel):
    name: str = Field(description="1-64 characters, no path separators.")


class KnowledgeBaseInfo(BaseModel):
    name: str
    documents: int
    chunks: int
    created_at: float


def file_name(source: str) -> str:
    """The name a person knows a document by: the last part of its path (the whole source when it has none)."""
    return PurePath(source).name or source


class DocumentInfo(BaseModel):
    doc_id: str
    name: str = Field(description="The file name (or the name given to a text).")
    source: str
    title: str
    chunks: int
    status: Literal["ready", "pending"] = Field(description="pending: being (re)ingested, not served yet.")
    size: int
    ingested_at: float

    @classmethod
    def of(cls, record: DocumentRecord) -> DocumentInfo:
        return cls(
            doc_id=record.doc_id,
            name=file_name(record.source),
            source=record.source,
            title=record.title,
            chunks=record.chunk_count,
            status=record.status,
            size=record.size,
            ingested_at=record.ingested_at,
        )


class TextDocument(BaseModel):
    name: str = Field(min_length=1, max_length=255, description="The document's name; the same name replaces it.")
    text: str = Field(min_length=1)


class ReplacementText(BaseModel):
    text: str = Field(min_length=1)


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    history: list[Turn] = Field(default_factory=list, max_length=50, description="Earlier turns, oldest first.")
    top_k: int | None = Field(None, ge=1, le=50, description="Sources to retrieve; default from settings.")
    filters: dict[str, Any] | None = Field(None, description=FILTERS_HELP)
    stream: bool = Field(False, description="Server-sent events: token events, then one answer event.")


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    top_k: int = Field(5, ge=1, le=100)
    filters: dict[str, Any] | None = Field(None, description=FILTERS_HELP)


class SearchResponse(BaseModel):
    query: str
    language: Literal["zh", "en"]
    hits: list[Citation]


class Deleted(BaseModel):
    deleted: bool = True
    name: str | None = None
    doc_id: str | None = None


class Created(BaseModel):
    name: str
    created: bool
