"""The answer types every face returns: one ``Citation`` and one ``Answer``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from stores.hit import Hit

SNIPPET_CHARS = 300


def section_of(metadata: dict[str, Any]) -> str | None:
    """Where in its document a chunk is, beside the page: its heading, sheet or slide."""
    slide = f"slide {metadata['slide']}" if "slide" in metadata else None
    return metadata.get("section") or metadata.get("sheet") or slide


class Citation(BaseModel):
    """A numbered source: where the text is (document, file, page, offsets) and how relevant it was."""

    n: int = Field(description="The number used as [n] in the answer.")
    doc_id: str
    chunk_id: str
    source: str = Field(description="File path or name the document came from.")
    title: str = ""
    page: int | None = Field(None, description="1-based page (PDF).")
    section: str | None = Field(None, description="Heading, sheet or slide title, where the format has one.")
    start: int = Field(description="Character offset of the chunk in the document's text.")
    end: int
    snippet: str
    score: float = Field(description="Relevance in [0, 1].")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_hit(cls, n: int, hit: Hit) -> Citation:
        chunk = hit.chunk
        meta = chunk.metadata
        section = section_of(meta)
        snippet = chunk.text if len(chunk.text) <= SNIPPET_CHARS else chunk.text[:SNIPPET_CHARS] + "…"
        return cls(
            n=n,
            doc_id=chunk.doc_id,
            chunk_id=chunk.id,
            source=str(meta.get("source", "")),
            title=str(meta.get("title", "")),
            page=meta.get("page"),
            section=section,
            start=chunk.start,
            end=chunk.end,
            snippet=snippet,
            score=round(hit.relevance, 4),
            metadata={k: v for k, v in meta.items() if k not in {"source", "title", "page", "section"}},
        )


class Answer(BaseModel):
    """A verified answer, or the refusal.

    ``answerable`` is false when the knowledge base was judged not to hold the answer (the text is
    then the refusal sentence). ``grounded`` is true when every sentence the generator wrote was
    supported by a cited source; sentences that were not are listed in ``removed``. ``sources`` are
    all passages retrieved (the evidence, also for a refusal); ``citations`` the ones the answer cites.
    """

    question: str
    answer: str
    answerable: bool
    grounded: bool
    citations: list[Citation] = Field(default_factory=list)
    sources: list[Citation] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    language: str = "en"
    generator: str = ""
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds per stage.")
