"""Background ingestion: uploads are ingested in worker threads, with a status clients can poll.

Jobs are kept in SQLite beside the catalog, so any process serving the same data directory can
answer a poll. The work runs in the process that received the upload, fairly across KBs: each KB's
jobs run in order, one at a time, and the workers take KBs in turn, so one tenant's slow file does
not stall another's upload (writes still take turns on the write lock; parsing does not).

A job is owned by a per-process token, not a PID (a restarted container reuses PIDs): the owner
holds ``DATA_DIR/job-owners/TOKEN.lock`` while it lives. On start, jobs whose owner is gone are
taken over and resumed from their staged files; on shutdown the running file is finished and the
rest stay queued for the next start. A job whose KB was deleted (or deleted and made again) after
it was queued ingests nothing more: the KB stays deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, Field

from ingest.document import LoadError
from rag.knowledge_base import (
    IngestReport,
    KnowledgeBaseError,
    KnowledgeBases,
    WriteLockTimeout,
    document_id,
    part_source,
)
from stores.sqlite import connect
from stores.write_lock import WriteLock

JobStatus = Literal["queued", "running", "done", "failed"]
FileOutcome = Literal["pending", "added", "updated", "unchanged", "failed", "refused"]
KEEP_SECONDS = 7 * 24 * 3600  # finished jobs are forgotten after a week
log = logging.getLogger(__name__)


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


WORKERS = 2


@dataclass(slots=True)
class _Queued:
    job: IngestJob
    uploads: Sequence[Upload]
    kb_id: str | None


class IngestJobs:
    """Queues uploads for ingestion and records their progress.

    Usage::

        jobs = IngestJobs(knowledge_bases, data_dir / "jobs.sqlite")
        job = jobs.submit("handbook", [TextUpload("leave.md", "Employees get 15 days.")])
        job = jobs.wait("handbook", job.job_id)
        assert job.status == "done"
    """

    def __init__(self, knowledge_bases: KnowledgeBases, path: Path, workers: int = WORKERS) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.knowledge_bases = knowledge_bases
        self.token = uuid.uuid4().hex
        self._db = connect(path)
        self._lock = threading.Lock()
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, kb TEXT NOT NULL, status TEXT NOT NULL, "
            "pid INTEGER NOT NULL, files TEXT NOT NULL, error TEXT, created_at REAL NOT NULL, "
            "updated_at REAL NOT NULL)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column in ("owner", "kb_id", "uploads"):  # tables made before jobs were resumable
            if column not in columns:
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
        lock = knowledge_bases.writing  # to say a job waits for another process's write lock
        self._write_lock = lock if isinstance(lock, WriteLock) else None
        self._owners = path.parent / "job-owners"
        self._owners.mkdir(parents=True, exist_ok=True)
        self._owner_lock = FileLock(self._owners / f"{self.token}.lock", thread_local=False)
        self._owner_lock.acquire(timeout=0)
        self._queues: dict[str, deque[_Queued]] = {}  # by KB, in arrival order
        self._busy: set[str] = set()  # KBs a worker is on
        self._finished: dict[str, threading.Event] = {}
        self._turn = threading.Condition()
        self._stopping = False
        self._workers = [
            threading.Thread(target=self._work, name=f"rag-ingest-{n}", daemon=True) for n in range(workers)
        ]
        try:
            self.recovered = knowledge_bases.recover()  # before any job: what a crash left pending
        except WriteLockTimeout as busy:  # another process writes for long: the next start recovers
            log.warning("crash recovery skipped: %s", busy)
            self.recovered = IngestReport()
        for worker in self._workers:
            worker.start()
        self._adopt_orphans()

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
        kb_id = self.knowledge_bases.catalog.collection(kb)
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE updated_at < ?", (now - KEEP_SECONDS,))
            self._db.execute(
                "INSERT INTO jobs (job_id, kb, status, pid, files, error, created_at, updated_at, owner, kb_id, "
                "uploads) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
                (job.job_id, kb, job.status, os.getpid(), _files_json(job.files), now, now, self.token, kb_id,
                 _uploads_json(uploads)),
            )  # fmt: skip
        self._enqueue(_Queued(job, uploads, kb_id))
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
        finished = self._finished.get(job_id)
        if finished is not None and not finished.wait(timeout):
            raise TimeoutError(f"job {job_id} is still running")
        job = self.get(kb, job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def close(self, timeout: float | None = None) -> None:
        """Stop: the files being ingested are finished, queued jobs stay queued for the next start."""
        with self._turn:
            self._stopping = True
            self._turn.notify_all()
        for worker in self._workers:
            worker.join(timeout)
        with contextlib.suppress(Exception):
            self._owner_lock.release()
            (self._owners / f"{self.token}.lock").unlink(missing_ok=True)

    # Scheduling: one job per KB at a time, KBs in turn.

    def _enqueue(self, queued: _Queued) -> None:
        self._finished.setdefault(queued.job.job_id, threading.Event())
        with self._turn:
            self._queues.setdefault(queued.job.kb, deque()).append(queued)
            self._turn.notify()

    def _next(self) -> _Queued | None:
        with self._turn:
            while True:
                if self._stopping:
                    return None
                for kb in list(self._queues):  # oldest-waiting KB first; a KB goes to the back once served
                    if kb not in self._busy:
                        queue = self._queues.pop(kb)
                        queued = queue.popleft()
                        if queue:
                            self._queues[kb] = queue
                        self._busy.add(kb)
                        return queued
                self._turn.wait()

    def _work(self) -> None:
        while (queued := self._next()) is not None:
            try:
                self._run(queued)
            finally:
                with self._turn:
                    self._busy.discard(queued.job.kb)
                    self._turn.notify_all()

    def _run(self, queued: _Queued) -> None:
        job, uploads = queued.job, queued.uploads
        self._save(job, "running")
        finished = True
        try:
            for index, upload in enumerate(uploads):
                if job.files[index].outcome != "pending":
                    continue  # done before a restart
                if self._stopping:
                    finished = False  # the rest waits, queued, for the next start
                    self._save(job, "queued")
                    return
                if self.knowledge_bases.catalog.collection(job.kb) != queued.kb_id:
                    job.files[index] = JobFile(
                        name=upload.name, outcome="failed", reason="not ingested: the knowledge base was deleted"
                    )
                else:
                    job.files[index] = self._ingest(job.kb, upload)
                self._save(job, "running")
            self._save(job, "done")
        except Exception as error:  # the job must end in a state a client can see, whatever went wrong
            self._fail(job, f"{type(error).__name__}: {error}", "not ingested: the job stopped")
        finally:
            if finished:
                _remove_staged(uploads)
                self._finished.setdefault(job.job_id, threading.Event()).set()

    def _fail(self, job: IngestJob, error: str, reason: str) -> None:
        for file in job.files:
            if file.outcome == "pending":
                file.outcome, file.reason = "failed", reason
        self._save(job, "failed", error)

    def _ingest(self, kb: str, upload: Upload) -> JobFile:
        report = IngestReport()
        try:
            if isinstance(upload, TextUpload):
                doc_id, outcome = self.knowledge_bases.add_text(kb, upload.name, upload.text, create=False)
                record = self.knowledge_bases.catalog.document(kb, doc_id)
                return JobFile(
                    name=upload.name, outcome=outcome, doc_id=doc_id, chunks=record.chunk_count if record else 0
                )
            outcome = self.knowledge_bases.ingest_file(kb, upload.staged, upload.source, report, create=False)
        except (LoadError, KnowledgeBaseError) as error:
            reason = error.reason if isinstance(error, LoadError) else str(error)
            return JobFile(name=upload.name, outcome="failed", reason=reason)
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

    def _adopt_orphans(self) -> None:
        """Take over the unfinished jobs of processes that are gone: resume them from their staged files,
        or fail them (files and job alike) when those are gone too."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, pid, owner, kb_id, uploads FROM jobs WHERE status IN ('queued', 'running')"
            ).fetchall()
        for job_id, pid, owner, kb_id, uploads_json in rows:
            if owner == self.token or self._owner_alive(owner, pid):
                continue
            with self._lock:
                claimed = self._db.execute(
                    "UPDATE jobs SET owner = ?, pid = ? WHERE job_id = ? AND owner IS ?",
                    (self.token, os.getpid(), job_id, owner),
                ).rowcount
                kb = self._db.execute("SELECT kb FROM jobs WHERE job_id = ?", (job_id,)).fetchone()[0]
            job = self.get(kb, job_id) if claimed else None
            if job is None:
                continue  # another process took it
            uploads = _uploads_from_json(uploads_json)
            pending = [u for u, f in zip(uploads or [], job.files, strict=False) if f.outcome == "pending"]
            if uploads is None or any(isinstance(u, FileUpload) and not u.staged.exists() for u in pending):
                self._fail(job, INTERRUPTED, INTERRUPTED)
                if uploads:
                    _remove_staged(uploads)
                continue
            self._save(job, "queued")
            self._enqueue(_Queued(job, uploads, kb_id))

    def _owner_alive(self, owner: str | None, pid: int) -> bool:
        """Whether the owner of a job still runs: its token's lock is held (legacy rows: its PID lives)."""
        if owner is None:
            return pid == os.getpid() or _alive(pid)
        lock = FileLock(self._owners / f"{owner}.lock", thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        with contextlib.suppress(OSError):
            (self._owners / f"{owner}.lock").unlink()
        return False


INTERRUPTED = "interrupted: the service stopped before this upload was ingested; upload it again"


def _remove_staged(uploads: Sequence[Upload]) -> None:
    for upload in uploads:
        if isinstance(upload, FileUpload):
            upload.staged.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the upload's own folder, once empty
                upload.staged.parent.rmdir()


def _uploads_json(uploads: Sequence[Upload]) -> str:
    def record(upload: Upload) -> dict[str, str | None]:
        if isinstance(upload, TextUpload):
            return {"name": upload.name, "text": upload.text}
        keep_at = str(upload.keep_at) if upload.keep_at else None
        return {"name": upload.name, "staged": str(upload.staged), "source": upload.source, "keep_at": keep_at}

    return json.dumps([record(u) for u in uploads], ensure_ascii=False)


def _uploads_from_json(text: str | None) -> list[Upload] | None:
    if not text:
        return None
    uploads: list[Upload] = []
    for item in json.loads(text):
        if "text" in item:
            uploads.append(TextUpload(item["name"], item["text"]))
        else:
            keep_at = Path(item["keep_at"]) if item["keep_at"] else None
            uploads.append(FileUpload(item["name"], Path(item["staged"]), item["source"], keep_at))
    return uploads


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
