"""Knowledge bases, documents, ingest jobs, ask and search."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sse_starlette import ServerSentEvent

from api.deps import CallerDep, EngineDep, StagerDep, readable
from api.errors import documented
from api.schemas import (
    AskRequest,
    Created,
    CreateKnowledgeBase,
    Deleted,
    DocumentInfo,
    KnowledgeBaseInfo,
    ReplacementText,
    SearchRequest,
    SearchResponse,
    TextDocument,
)
from api.streaming import EVENT_STREAM, event_stream, sse
from api.uploads import TextUpload, is_json, is_multipart, read_files, read_text
from rag.engine import Engine
from rag.ingest_jobs import IngestJob
from rag.knowledge_base import validate_kb_name
from rag.llms.base import LLMError
from rag.types import Answer, Citation

log = logging.getLogger("rag.api")
router = APIRouter()
WaitQuery = Annotated[bool, Query(description="Answer when the ingest is done (200) instead of at once (202).")]
UPLOAD_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            },
            "application/json": {"schema": TextDocument.model_json_schema()},
        }
    }
}


def document_of(engine: Engine, kb: str, doc_id: str) -> DocumentInfo:
    record = engine.knowledge_bases.catalog.document(kb, doc_id)
    if record is None:
        raise HTTPException(404, f"no document {doc_id!r} in the knowledge base {kb!r}")
    return DocumentInfo.of(record)


def job_response(job: IngestJob, waited: bool, kb: str) -> JSONResponse:
    # Percent-encoded: a header is Latin-1, and a KB may be named in Chinese.
    headers = {} if waited else {"Location": f"/kbs/{quote(kb, safe='')}/jobs/{quote(job.job_id, safe='')}"}
    return JSONResponse(job.model_dump(), status_code=200 if waited else 202, headers=headers)


async def finished(engine: Engine, job: IngestJob, wait: bool) -> IngestJob:
    return await run_in_threadpool(engine.ingest_jobs.wait, job.kb, job.job_id) if wait else job


# Knowledge bases


@router.get("/kbs", tags=["knowledge bases"], responses=documented(401))
def list_kbs(engine: EngineDep, who: CallerDep) -> list[KnowledgeBaseInfo]:
    return [
        KnowledgeBaseInfo(name=r.name, documents=r.documents, chunks=r.chunks, created_at=r.created_at)
        for r in engine.knowledge_bases.list()
        if who.may(r.name)
    ]


@router.post("/kbs", status_code=201, tags=["knowledge bases"], responses=documented(400, 401, 403, 422, 503))
def create_kb(body: CreateKnowledgeBase, engine: EngineDep, who: CallerDep) -> Created:
    who.require(body.name, write=True)
    return Created(name=body.name, created=engine.knowledge_bases.create(validate_kb_name(body.name)))


@router.delete("/kbs/{kb}", tags=["knowledge bases"], responses=documented(401, 403, 404, 422, 503))
def delete_kb(kb: str, engine: EngineDep, who: CallerDep, stager: StagerDep) -> Deleted:
    readable(engine, who, kb, write=True)
    engine.knowledge_bases.delete(kb)
    shutil.rmtree(stager.uploads / kb, ignore_errors=True)
    return Deleted(name=kb)


# Documents


@router.get("/kbs/{kb}/documents", tags=["documents"], responses=documented(401, 403, 404, 422))
def list_documents(kb: str, engine: EngineDep, who: CallerDep) -> list[DocumentInfo]:
    readable(engine, who, kb)
    return [DocumentInfo.of(record) for record in engine.knowledge_bases.documents(kb)]


@router.get("/kbs/{kb}/documents/{doc_id}", tags=["documents"], responses=documented(401, 403, 404, 422))
def get_document(kb: str, doc_id: str, engine: EngineDep, who: CallerDep) -> DocumentInfo:
    readable(engine, who, kb)
    return document_of(engine, kb, doc_id)


@router.post(
    "/kbs/{kb}/documents",
    status_code=202,
    response_model=IngestJob,
    tags=["documents"],
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {"model": IngestJob, "description": "with wait=true: the finished job"},
        **documented(401, 403, 413, 415, 422, 503),
    },
)
async def upload(
    kb: str, request: Request, engine: EngineDep, who: CallerDep, stager: StagerDep, wait: WaitQuery = False
) -> JSONResponse:
    """Upload files (multipart, field ``files``, one or many) or a text (JSON ``{name, text}``).

    Each file becomes the document of its name: the same name again is skipped when unchanged and
    replaced when changed. Ingestion runs in the background; poll the job, or pass ``wait=true``.
    """
    who.require(kb, write=True)
    validate_kb_name(kb)
    settings = engine.settings
    if is_multipart(request):
        files = await read_files(request, int(settings.max_upload_mb * 2**20), settings.max_upload_files)
        uploads, refused = await run_in_threadpool(stager.stage, kb, files)
        if not uploads:
            reasons = "; ".join(f"{f.name}: {f.reason}" for f in refused)
            status = 415 if all("unsupported format" in (f.reason or "") for f in refused) else 413
            raise HTTPException(status, f"nothing to ingest: {reasons}")
    elif is_json(request):
        document = await read_text(request, TextDocument, int(settings.max_upload_mb * 2**20))
        uploads, refused = [TextUpload(document.name, document.text)], []
    else:
        raise HTTPException(415, 'send files as multipart/form-data, or JSON {"name": ..., "text": ...}')
    await run_in_threadpool(engine.knowledge_bases.create, kb)
    job = engine.ingest_jobs.submit(kb, uploads, refused)
    return job_response(await finished(engine, job, wait), wait, kb)


@router.put(
    "/kbs/{kb}/documents/{doc_id}",
    status_code=202,
    response_model=IngestJob,
    tags=["documents"],
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
                },
                "application/json": {"schema": ReplacementText.model_json_schema()},
            }
        }
    },
    responses={
        200: {"model": IngestJob, "description": "with wait=true: the finished job"},
        **documented(401, 403, 404, 413, 415, 422, 503),
    },
)
async def replace_document(
    kb: str,
    doc_id: str,
    request: Request,
    engine: EngineDep,
    who: CallerDep,
    stager: StagerDep,
    wait: WaitQuery = False,
) -> JSONResponse:
    """Replace a document's content in place: same id, same name; the old content stays until the new is in."""
    readable(engine, who, kb, write=True)
    current = document_of(engine, kb, doc_id)
    if is_multipart(request):
        files = await read_files(request, int(engine.settings.max_upload_mb * 2**20), 1)
        upload = await run_in_threadpool(
            stager.stage_replacement, files[0], current.source, stager.is_kept(kb, current.source)
        )
    elif is_json(request):
        replacement = await read_text(request, ReplacementText, int(engine.settings.max_upload_mb * 2**20))
        upload = TextUpload(current.source, replacement.text)
    else:
        raise HTTPException(415, "send the new content as multipart/form-data (field 'file') or JSON {\"text\": ...}")
    job = engine.ingest_jobs.submit(kb, [upload])
    return job_response(await finished(engine, job, wait), wait, kb)


@router.delete("/kbs/{kb}/documents/{doc_id}", tags=["documents"], responses=documented(401, 403, 404, 422, 503))
def delete_document(kb: str, doc_id: str, engine: EngineDep, who: CallerDep, stager: StagerDep) -> Deleted:
    readable(engine, who, kb, write=True)
    current = document_of(engine, kb, doc_id)
    if not engine.knowledge_bases.delete_document(kb, doc_id):
        raise HTTPException(404, f"no document {doc_id!r} in the knowledge base {kb!r}")
    if stager.is_kept(kb, current.source):  # an uploaded file goes with its document
        Path(current.source).unlink(missing_ok=True)
    return Deleted(doc_id=doc_id)


@router.get("/kbs/{kb}/jobs/{job_id}", tags=["documents"], responses=documented(401, 403, 404, 422))
def get_job(kb: str, job_id: str, engine: EngineDep, who: CallerDep) -> IngestJob:
    who.require(kb)
    job = engine.ingest_jobs.get(kb, job_id)
    if job is None:
        raise HTTPException(404, f"no upload job {job_id!r} for the knowledge base {kb!r}")
    return job


# Questions


@router.post(
    "/kbs/{kb}/ask",
    tags=["questions"],
    response_model=Answer,
    responses={
        200: {"content": EVENT_STREAM, "description": "The answer, or server-sent events when stream=true"},
        **documented(400, 401, 403, 404, 422, 502),
    },
)
def ask(kb: str, body: AskRequest, engine: EngineDep, who: CallerDep) -> Any:
    """Answer from the knowledge base with cited sources, or refuse.

    With ``stream: true`` the answer comes as server-sent events: ``token`` events (``{"text"}``) with the
    verified text, a sentence at a time as the generator finishes it (unsupported sentences never shown),
    then one ``answer`` event with the verified answer, or an ``error`` event.
    """
    readable(engine, who, kb)
    history = [turn.model_dump() for turn in body.history]
    try:
        events = engine.answerer.stream(kb, body.question, history, body.top_k, body.filters, verified=True)
        first = next(events)  # retrieval runs now, so a bad filter is still a 422, not a broken stream
    except ValueError as error:
        raise HTTPException(422, str(error)) from error
    if not body.stream:
        return next(e for e in chain([first], events) if isinstance(e, Answer))
    return event_stream(answer_events(chain([first], events)))


def answer_events(events: Iterator[str | Answer]) -> Iterator[ServerSentEvent]:
    try:
        for event in events:
            if isinstance(event, Answer):
                yield sse(event.model_dump(mode="json"), "answer")
            else:
                yield sse({"text": event}, "token")
    except LLMError as error:
        yield sse({"message": f"the language model failed: {error}"}, "error")
    except Exception:
        log.exception("answer stream failed")
        yield sse({"message": "internal error; the server log has the details"}, "error")


@router.post("/kbs/{kb}/search", tags=["questions"], responses=documented(400, 401, 403, 404, 422))
def search(kb: str, body: SearchRequest, engine: EngineDep, who: CallerDep) -> SearchResponse:
    """Retrieval only: the best chunks with their scores, for bots that write their own answers."""
    readable(engine, who, kb)
    try:
        retrieval = engine.retriever.run(kb, body.query, body.top_k, body.filters)
    except ValueError as error:
        raise HTTPException(422, str(error)) from error
    hits = [Citation.from_hit(n, hit) for n, hit in enumerate(retrieval.hits, start=1)]
    return SearchResponse(query=body.query, language=retrieval.language, hits=hits)
