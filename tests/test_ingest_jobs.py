"""Ingest jobs: fair across KBs, owned by a process token, resumable after a stop, and a deleted KB
stays deleted (issue 17, items 13, 15, 16 and 18's interrupted jobs)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rag.engine import Engine
from rag.ingest_jobs import FileUpload, IngestJobs, TextUpload


class SlowReading:
    """Wraps ``KnowledgeBases.ingest_file``: files named ``slow*`` take until ``release`` is set (a test
    stand-in for a file that parses for a minute)."""

    def __init__(self, engine: Engine) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        original = engine.knowledge_bases.ingest_file

        def ingest_file(kb: str, path: Path, source: str | None = None, report: object = None, **options: bool) -> str:
            if path.name.startswith("slow"):
                self.started.set()
                assert self.release.wait(60)
            return original(kb, path, source, report, **options)  # type: ignore[arg-type]

        engine.knowledge_bases.ingest_file = ingest_file  # type: ignore[method-assign]


def staged(folder: Path, name: str, text: str) -> FileUpload:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return FileUpload(name, path, f"/uploads/{name}")


def test_one_tenants_slow_file_does_not_stall_anothers_upload(engine: Engine, tmp_path: Path) -> None:
    slow = SlowReading(engine)
    jobs = IngestJobs(engine.knowledge_bases, tmp_path / "data" / "jobs.sqlite")
    try:
        engine.knowledge_bases.create("a")
        engine.knowledge_bases.create("b")
        blocked = jobs.submit("a", [staged(tmp_path / "in", "slow.md", "Hotels cost 180 euros.")])
        assert slow.started.wait(30)
        quick = jobs.submit("b", [TextUpload("leave.md", "Employees get fifteen days of leave.")])
        assert jobs.wait("b", quick.job_id, timeout=60).status == "done"
        assert jobs.get("a", blocked.job_id).status == "running"
    finally:
        slow.release.set()
        jobs.close()


def test_a_kb_deleted_with_queued_uploads_stays_deleted(engine: Engine, tmp_path: Path) -> None:
    slow = SlowReading(engine)
    jobs = IngestJobs(engine.knowledge_bases, tmp_path / "data" / "jobs.sqlite", workers=1)
    try:
        engine.knowledge_bases.create("x")
        first = jobs.submit("x", [staged(tmp_path / "in", "slow.md", "Hotels cost 180 euros.")])
        assert slow.started.wait(30)
        queued = jobs.submit("x", [TextUpload("leave.md", "Employees get fifteen days of leave.")])
        engine.knowledge_bases.delete("x")  # waits for the running file's write, if any
        slow.release.set()
        jobs.wait("x", first.job_id, timeout=60)
        job = jobs.wait("x", queued.job_id, timeout=60)
        assert [f.outcome for f in job.files] == ["failed"]
        assert "deleted" in (job.files[0].reason or "")
        assert not engine.knowledge_bases.exists("x")
    finally:
        slow.release.set()
        jobs.close()


def test_a_stopped_service_leaves_queued_jobs_for_the_next_start(engine: Engine, tmp_path: Path) -> None:
    slow = SlowReading(engine)
    path = tmp_path / "data" / "jobs.sqlite"
    jobs = IngestJobs(engine.knowledge_bases, path, workers=1)
    engine.knowledge_bases.create("k")
    running = jobs.submit("k", [staged(tmp_path / "in", "slow.md", "Hotels cost 180 euros."),
                                staged(tmp_path / "in", "later.md", "Trains are second class.")])  # fmt: skip
    queued = jobs.submit("k", [TextUpload("leave.md", "Employees get fifteen days of leave.")])
    assert slow.started.wait(30)
    stopping = threading.Thread(target=jobs.close)
    stopping.start()
    time.sleep(0.2)
    slow.release.set()  # the running file finishes; nothing else starts
    stopping.join(60)
    assert not stopping.is_alive()
    assert [f.outcome for f in jobs.get("k", running.job_id).files] == ["added", "pending"]
    assert jobs.get("k", queued.job_id).status == "queued"

    restarted = IngestJobs(engine.knowledge_bases, path)  # a new process token: the old owner is gone
    try:
        assert restarted.token != jobs.token
        assert [f.outcome for f in restarted.wait("k", running.job_id, timeout=60).files] == ["added", "added"]
        assert restarted.wait("k", queued.job_id, timeout=60).status == "done"
    finally:
        restarted.close()
    assert not (tmp_path / "in" / "later.md").exists()  # staged files go once ingested


def test_jobs_of_a_live_owner_are_left_alone(engine: Engine, tmp_path: Path) -> None:
    slow = SlowReading(engine)
    path = tmp_path / "data" / "jobs.sqlite"
    owner = IngestJobs(engine.knowledge_bases, path)
    try:
        engine.knowledge_bases.create("k")
        job = owner.submit("k", [staged(tmp_path / "in", "slow.md", "Hotels cost 180 euros.")])
        assert slow.started.wait(30)
        other = IngestJobs(engine.knowledge_bases, path)  # a second worker process over the same data
        try:
            assert other.get("k", job.job_id).status == "running"
        finally:
            other.close()
    finally:
        slow.release.set()
        owner.wait("k", job.job_id, timeout=60)
        owner.close()


def test_an_unresumable_job_fails_with_its_files(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "data" / "jobs.sqlite"
    slow = SlowReading(engine)
    jobs = IngestJobs(engine.knowledge_bases, path, workers=1)
    engine.knowledge_bases.create("k")
    upload = staged(tmp_path / "in", "slow.md", "Hotels cost 180 euros.")
    second = staged(tmp_path / "in", "gone.md", "Trains.")
    job = jobs.submit("k", [upload, second])
    assert slow.started.wait(30)
    stopping = threading.Thread(target=jobs.close)
    stopping.start()
    second.staged.unlink()  # a crash lost the staged file
    slow.release.set()
    stopping.join(60)
    restarted = IngestJobs(engine.knowledge_bases, path)
    try:
        final = restarted.get("k", job.job_id)
        assert final.status == "failed"
        assert [f.outcome for f in final.files] == ["added", "failed"]  # never "failed" with files "pending"
    finally:
        restarted.close()




def test_a_document_left_pending_by_a_crash_is_whole_again_after_a_restart(engine: Engine, tmp_path: Path) -> None:
    """The state a SIGKILL in the middle of a replacement leaves: catalog ``pending``, some chunks gone."""
    kbs = engine.knowledge_bases
    kept = tmp_path / "uploads" / "travel.md"
    kept.parent.mkdir()
    kept.write_text("Economy class is required for flights under six hours.\n\n" * 40)
    kbs.ingest_file("k", kept)
    [before] = kbs.documents("k")
    lost = tmp_path / "gone.md"
    lost.write_text("Hotels are reimbursed up to 180 euros per night.")
    kbs.ingest_file("k", lost)
    lost.unlink()
    for record in kbs.documents("k"):  # killed between "pending" and "ready"
        kbs.catalog.mark_pending("k", record.doc_id, record.source, record.title, record.size)
        some = sorted(kbs.keywords.ids("k", record.doc_id))[:1]
        kbs.vectors.delete_document("k", record.doc_id, some)
        kbs.keywords.delete_document("k", record.doc_id)

    jobs = IngestJobs(kbs, tmp_path / "data" / "jobs.sqlite")  # the restart
    jobs.close()
    [after] = kbs.documents("k")  # the file that is gone is gone whole; the other is whole again
    assert after.status == "ready" and after.doc_id == before.doc_id and after.chunk_count == before.chunk_count
    assert kbs.keywords.ids("k", after.doc_id) and kbs.catalog.documents("k", status="pending") == []
