"""Background ingestion: uploads are ingested in a worker thread, with a status clients can poll.

Jobs are kept in SQLite beside the catalog, so any process serving the same data directory can
answer a poll; the work itself runs in the process that received the upload, one job at a time
(embedding already uses every core, and one writer at a time keeps the stores simple).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ingest.document import LoadError
from rag.knowledge_base import IngestReport, KnowledgeBaseError, KnowledgeBases, document_id, part_source
from stores.sqlite import connect
from stores.write_lock import WriteLock

JobStatus = Literal["queued", "running", "done", "failed"]
FileOutcome = Literal["pending", "added", "updated", "unchanged", "failed", "refused"]
KEEP_SECONDS = 7 * 24 * 3600  # finished jobs are forgotten after a week


class JobFile(BaseModel):
    """One file (or text) of an upload and what became of it."""

    name: str
    outcome: FileOutcome = "pending"
    doc_id: str | None = None
    reason: str | None = Field(None, description="Why it failed or was refused.")
    chunks: int = 0


class IngestJob(BaseModel):
    """An upload being ingested; poll ``GET /kbs/{kb}/jobs/{job_id}`` until ``status`` is done or failed."""

    job_id: str
    kb: str
    status: JobStatus
    total_files: int
    done_files: int
    files: list[JobFile]
    error: str | None = Field(None, description="Why the whole job failed (files say why each one did).")
    waiting: str | None = Field(
        None, description="Set while the job cannot go on because another process is writing: who that is."
    )
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class FileUpload:
    """A received file at ``staged``, to become the document ``source``.

    ``keep_at``, when set, is where the file is kept once it is ingested (an upload's lasting
    place); the staged copy is removed either way, so a refused file leaves nothing behind.
    """

    name: str
    staged: Path
    source: str
    keep_at: Path | None = None


@dataclass(frozen=True, slots=True)
class TextUpload:
    """Text sent as JSON, to become the document ``name``."""

    name: str
    text: str


Upload = FileUpload | TextUpload


class IngestJobs:
    """Queues uploads for ingestion and records their progress.

    Usage::

        jobs = IngestJobs(knowledge_bases, data_dir / "jobs.sqlite")
        job = jobs.submit("handbook", [TextUpload("leave.md", "Employees get 15 days.")])
        job = jobs.wait(job.job_id)
        assert job.status == "done"
    """

    def __init__(self, knowledge_bases: KnowledgeBases, path: Path) -> None:
        self.knowledge_bases = knowledge_bases
        self._db = connect(path)
        self._lock = threading.Lock()
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, kb TEXT NOT NULL, status TEXT NOT NULL, "
            "pid INTEGER NOT NULL, files TEXT NOT NULL, error TEXT, created_at REAL NOT NULL, "
            "updated_at REAL NOT NULL)"
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-ingest")
        self._futures: dict[str, Future[None]] = {}
        lock = knowledge_bases.writing
        self._write_lock = lock if isinstance(lock, WriteLock) else None
        self._forget_dead()

    def submit(self, kb: str, uploads: Sequence[Upload], refused: Sequence[JobFile] = ()) -> IngestJob:
        """Queue ``uploads`` for ``kb``; ``refused`` files are reported in the job as they are."""
        now = time.time()
        job = IngestJob(
            job_id=uuid.uuid4().hex,
            kb=kb,
            status="queued",
            total_files=len(uploads) + len(refused),
            done_files=len(refused),
            files=[JobFile(name=u.name) for u in uploads] + list(refused),
            created_at=now,
            updated_at=now,
        )
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE updated_at < ?", (now - KEEP_SECONDS,))
            self._db.execute(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
                (job.job_id, kb, job.status, os.getpid(), _files_json(job.files), now, now),
            )
        self._futures[job.job_id] = self._executor.submit(self._run, job, uploads)
        return job

    def get(self, kb: str, job_id: str) -> IngestJob | None:
        with self._lock:
            row = self._db.execute(
                "SELECT job_id, kb, status, files, error, created_at, updated_at FROM jobs WHERE kb = ? AND job_id = ?",
                (kb, job_id),
            ).fetchone()
        if row is None:
            return None
        return self._job(row)

    def recent(self, kb: str, limit: int = 20) -> list[IngestJob]:
        """The newest ``limit`` jobs of ``kb`` (kept a week), newest first: every batch's per-file outcomes."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, kb, status, files, error, created_at, updated_at FROM jobs WHERE kb = ?"
                " ORDER BY created_at DESC LIMIT ?",
                (kb, limit),
            ).fetchall()
        return [self._job(row) for row in rows]

    def _job(self, row: tuple) -> IngestJob:
        files = [JobFile(**f) for f in json.loads(row[3])]
        done = sum(f.outcome != "pending" for f in files)
        unfinished = row[2] in ("queued", "running")
        waiting = self._write_lock.elsewhere() if unfinished and self._write_lock is not None else None
        return IngestJob(
            job_id=row[0],
            kb=row[1],
            status=row[2],
            total_files=len(files),
            done_files=done,
            files=files,
            error=row[4],
            waiting=f"waiting for another writer ({waiting})" if waiting else None,
            created_at=row[5],
            updated_at=row[6],
        )

    def wait(self, kb: str, job_id: str, timeout: float | None = None) -> IngestJob:
        """Block until the job (submitted by this process) is finished; its final state."""
        future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout)
        job = self.get(kb, job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def _run(self, job: IngestJob, uploads: Sequence[Upload]) -> None:
        self._save(job, "running")
        try:
            for index, upload in enumerate(uploads):
                job.files[index] = self._ingest(job.kb, upload)
                self._save(job, "running")
            self._save(job, "done")
        except Exception as error:  # the job must end in a state a client can see, whatever went wrong
            for file in job.files:
                if file.outcome == "pending":
                    file.outcome, file.reason = "failed", "not ingested: the job stopped"
            self._save(job, "failed", f"{type(error).__name__}: {error}")
        finally:
            self._futures.pop(job.job_id, None)
            for upload in uploads:
                if isinstance(upload, FileUpload):
                    upload.staged.unlink(missing_ok=True)
                    with contextlib.suppress(OSError):  # the upload's own folder, once empty
                        upload.staged.parent.rmdir()

    def _ingest(self, kb: str, upload: Upload) -> JobFile:
        if isinstance(upload, TextUpload):
            try:
                doc_id, outcome = self.knowledge_bases.add_text(kb, upload.name, upload.text)
            except (LoadError, KnowledgeBaseError) as error:
                reason = error.reason if isinstance(error, LoadError) else str(error)
                return JobFile(name=upload.name, outcome="failed", reason=reason)
            record = self.knowledge_bases.catalog.document(kb, doc_id)
            return JobFile(name=upload.name, outcome=outcome, doc_id=doc_id, chunks=record.chunk_count if record else 0)
        report = IngestReport()
        outcome = self.knowledge_bases.ingest_file(kb, upload.staged, upload.source, report)
        if outcome == "failed":
            return JobFile(name=upload.name, outcome="failed", reason=report.failed[0][1])
        if upload.keep_at is not None:
            upload.keep_at.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(upload.staged, upload.keep_at)  # same file system: an atomic rename
        doc_id = document_id(kb, upload.source)
        record = self.knowledge_bases.catalog.document(kb, doc_id)
        if record is None:  # a file of several documents (a KEV catalog): each record is filed as source#id
            parts = self.knowledge_bases.catalog.parts(kb, part_source(upload.source, ""))
            return JobFile(name=upload.name, outcome=outcome, chunks=sum(p.chunk_count for p in parts))
        return JobFile(name=upload.name, outcome=outcome, doc_id=doc_id, chunks=record.chunk_count)

    def _save(self, job: IngestJob, status: JobStatus, error: str | None = None) -> None:
        job.status, job.error = status, error
        job.done_files = sum(f.outcome != "pending" for f in job.files)
        job.updated_at = time.time()
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = ?, files = ?, error = ?, updated_at = ? WHERE job_id = ?",
                (status, _files_json(job.files), error, job.updated_at, job.job_id),
            )

    def _forget_dead(self) -> None:
        """Jobs of processes that are gone will never finish: say so instead of leaving them running."""
        with self._lock:
            rows = self._db.execute("SELECT job_id, pid FROM jobs WHERE status IN ('queued', 'running')").fetchall()
            for job_id, pid in rows:
                if pid == os.getpid() or _alive(pid):
                    continue
                self._db.execute(
                    "UPDATE jobs SET status = 'failed', error = ?, updated_at = ? WHERE job_id = ?",
                    (
                        "interrupted: the service stopped before this upload was ingested; upload it again",
                        time.time(),
                        job_id,
                    ),
                )


def _files_json(files: list[JobFile]) -> str:
    return json.dumps([f.model_dump() for f in files], ensure_ascii=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
