"""The HTTP service: knowledge bases, documents, search and ask over FastAPI.

Sync endpoints run in FastAPI's thread pool, so a long ingest does not block other requests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, HTTPException, UploadFile
from pydantic import BaseModel, Field

from rag.engine import Engine
from rag.knowledge_base import KnowledgeBaseError, document_id
from rag.settings import Settings
from rag.types import Answer, Citation


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    history: list[dict[str, str]] = Field(default_factory=list)
    top_k: int | None = Field(None, ge=1, le=50)
    filters: dict[str, Any] | None = None


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    top_k: int = Field(5, ge=1, le=100)
    filters: dict[str, Any] | None = None


class TextDocument(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    text: str = Field(min_length=1)


class IngestResponse(BaseModel):
    added: list[str]
    updated: list[str]
    unchanged: list[str]
    failed: list[dict[str, str]]
    chunks: int


def upload_name(filename: str | None) -> str:
    """The name an uploaded file is stored under: its base name, without any directory the client sent.

    Both slashes count as separators (browsers on Windows may send ``C:\\dir\\a.pdf``); names that
    cannot be a file (empty, ``.``, ``..``, over 255 bytes) are refused.
    """
    name = (filename or "upload.txt").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    if name in {"", ".", ".."} or len(name.encode("utf-8")) > 255:
        raise HTTPException(422, f"unusable file name {filename!r}")
    return name


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The FastAPI app over one data directory.

    ``engine``, when given, is used as it is, so a caller can share parts it already built (a loaded
    embedder); ``settings`` must then be left out or be the engine's own.

    Usage::

        uvicorn.run(create_app(Settings()), port=8000)
    """
    if engine is None:
        engine = Engine(settings or Settings())
    elif settings is not None and settings is not engine.settings:
        raise ValueError("pass settings or an engine built from them, not two different configurations")
    # Built now, in one thread: the request threads then share one set of stores (models still load lazily).
    engine.knowledge_bases, engine.answerer  # noqa: B018
    app = FastAPI(title="rag-kb", version="0.1.0", description="Cited answers from your documents.")
    # Uploaded files are kept at a fixed place per KB and name: the path is the document's source, so
    # uploading the same name again finds the same document (unchanged, or updated in place).
    uploads = engine.settings.data_dir / "uploads"

    def known_kb(kb: str) -> None:
        try:
            engine.knowledge_bases.require(kb)
        except KnowledgeBaseError as error:
            raise HTTPException(404 if "unknown" in str(error) else 422, str(error)) from error

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "llm": engine.settings.llm_backend, "embedder": engine.settings.embedder_model}

    @app.get("/kbs")
    def list_kbs() -> list[dict[str, Any]]:
        return [{"name": r.name, "documents": r.documents, "chunks": r.chunks} for r in engine.knowledge_bases.list()]

    @app.post("/kbs/{kb}", status_code=201)
    def create_kb(kb: str) -> dict[str, Any]:
        try:
            return {"name": kb, "created": engine.knowledge_bases.create(kb)}
        except KnowledgeBaseError as error:
            raise HTTPException(422, str(error)) from error

    @app.delete("/kbs/{kb}")
    def delete_kb(kb: str) -> dict[str, Any]:
        known_kb(kb)
        deleted = engine.knowledge_bases.delete(kb)
        shutil.rmtree(uploads / kb, ignore_errors=True)
        return {"name": kb, "deleted": deleted}

    @app.get("/kbs/{kb}/documents")
    def list_documents(kb: str) -> list[dict[str, Any]]:
        known_kb(kb)
        return [
            {"doc_id": d.doc_id, "source": d.source, "title": d.title, "chunks": d.chunk_count, "status": d.status}
            for d in engine.knowledge_bases.documents(kb)
        ]

    @app.post("/kbs/{kb}/documents")
    def upload(kb: str, files: Annotated[list[UploadFile], File()]) -> IngestResponse:
        """Upload files; each is ingested under its file name (re-uploading replaces it)."""
        try:
            engine.knowledge_bases.create(kb)
        except KnowledgeBaseError as error:
            raise HTTPException(422, str(error)) from error
        names = [upload_name(upload_file.filename) for upload_file in files]  # all checked before any is written
        folder = uploads / kb
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, upload_file in zip(names, files, strict=True):
            path = folder / name
            # Written beside the target and renamed over it, so a half-written upload never stands.
            handle, partial = tempfile.mkstemp(dir=folder, prefix=".upload-")
            try:
                with os.fdopen(handle, "wb") as out:
                    shutil.copyfileobj(upload_file.file, out)
                Path(partial).replace(path)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
            paths.append(path)
        report = engine.knowledge_bases.ingest(kb, paths)
        for source, _ in report.failed:  # a file that never became a document is not kept
            if engine.knowledge_bases.catalog.document(kb, document_id(kb, source)) is None:
                Path(source).unlink(missing_ok=True)
        return IngestResponse(
            added=report.added,
            updated=report.updated,
            unchanged=report.unchanged,
            failed=[{"source": s, "reason": r} for s, r in report.failed],
            chunks=report.chunks,
        )

    @app.post("/kbs/{kb}/texts")
    def add_text(kb: str, document: TextDocument) -> dict[str, str]:
        try:
            doc_id, outcome = engine.knowledge_bases.add_text(kb, document.name, document.text)
        except (KnowledgeBaseError, ValueError) as error:
            raise HTTPException(422, str(error)) from error
        return {"doc_id": doc_id, "outcome": outcome}

    @app.delete("/kbs/{kb}/documents/{doc_id}")
    def delete_document(kb: str, doc_id: str) -> dict[str, Any]:
        known_kb(kb)
        record = engine.knowledge_bases.catalog.document(kb, doc_id)
        if record is None or not engine.knowledge_bases.delete_document(kb, doc_id):
            raise HTTPException(404, f"no document {doc_id!r} in {kb!r}")
        stored = Path(record.source)
        if stored.parent == (uploads / kb).resolve():  # an uploaded file goes with its document
            stored.unlink(missing_ok=True)
        return {"doc_id": doc_id, "deleted": True}

    @app.post("/kbs/{kb}/ask")
    def ask(kb: str, request: AskRequest) -> Answer:
        known_kb(kb)
        try:
            return engine.answerer.run(kb, request.question, request.history, request.top_k, request.filters)
        except ValueError as error:
            raise HTTPException(422, str(error)) from error

    @app.post("/kbs/{kb}/search")
    def search(kb: str, request: SearchRequest) -> list[Citation]:
        known_kb(kb)
        try:
            retrieval = engine.retriever.run(kb, request.query, request.top_k, request.filters)
        except ValueError as error:
            raise HTTPException(422, str(error)) from error
        return [Citation.from_hit(n, hit) for n, hit in enumerate(retrieval.hits, start=1)]

    return app
