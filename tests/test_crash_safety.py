"""Crashes and concurrent writers leave catalog, Chroma and the keyword index in agreement.

``rag ingest`` runs as a real process and is SIGKILLed at several points of a large ingest; after each
kill the stores are checked, in a fresh process: every chunk belongs to a document of the catalog, every
ready document has exactly its chunks in the keyword index (and those with a vector in Chroma), and only
ready documents are served (a document being replaced is ``pending`` until its new chunks are all in).
Running the ingest again completes it. Two processes ingesting into one data directory at once take turns
through ``DATA_DIR/write.lock``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.engine import Engine
from rag.settings import Settings
from stores import Embedder
from stores.write_lock import WriteLock, WriteLockTimeout

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["harbor", "invoice", "journal", "freight", "gateway", "budget", "contract", "deadline", "engineer", "audit"]

CHECK = """
import json, sys
from pathlib import Path
from rag.engine import Engine
from rag.settings import Settings
engine = Engine(Settings(data_dir=Path(sys.argv[1])))
kb = sys.argv[2]
docs = engine.catalog.documents(kb) if engine.catalog.has_kb(kb) else []
known = {d.doc_id for d in docs}
vectors, keywords = engine.vectors.ids(kb), engine.keywords.ids(kb)
problems = []
orphans = {i for i in vectors | keywords if i.split(":")[0] not in known}
if orphans:
    problems.append(f"{len(orphans)} chunks without a document")
for d in docs:
    if d.status != "ready":
        continue
    expected = {f"{d.doc_id}:{n}" for n in range(d.chunk_count)}
    ids, with_vectors = engine.keywords.ids(kb, d.doc_id), engine.vectors.ids(kb, d.doc_id)
    # a chunk without a vector (its template's vector is another chunk's) is kept whole by the keyword index
    kept_whole = set(engine.keywords.chunks(kb, sorted(ids - with_vectors)))
    if ids != expected or not with_vectors <= ids or kept_whole != ids - with_vectors:
        problems.append(f"{d.source}: chunks disagree with the catalog's {d.chunk_count}")
served = engine.catalog.ready_doc_ids(kb, known)
if served != {d.doc_id for d in docs if d.status == "ready"}:
    problems.append("a pending document is served")
print(json.dumps({"ready": sum(d.status == "ready" for d in docs), "pending": sum(d.status != "ready" for d in docs),
                  "problems": problems}))
"""


def environment(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return env | {
        "RAG_DATA_DIR": str(data),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }


def ingest_command(folder: Path, kb: str) -> list[str]:
    return [sys.executable, "-m", "rag.cli", "ingest", str(folder), "--kb", kb]


def check(data: Path, kb: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(data), kb],
        env=environment(data),
        cwd=data.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def corpus(folder: Path, files: int, version: int = 0, big: int = 0) -> Path:
    """``files`` documents of about 25 chunks, plus ``big`` of about 750 (two embedding batches, so a
    kill can land while one is half replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(files + big):
        count = 1500 if n < files else 45_000
        words = [WORDS[(n * 7 + i * 3 + version) % len(WORDS)] for i in range(count)]
        sentences = [" ".join(words[i : i + 12]) + f" {n}-{version}-{i}." for i in range(0, len(words), 12)]
        (folder / f"doc{n:03}.txt").write_text("\n".join(sentences), encoding="utf-8")
    return folder


def count(data: Path, status: str) -> int:
    path = data / "catalog.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM documents WHERE status = ?", (status,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # the tables are not created yet


def kill_when(data: Path, folder: Path, kb: str, status: str, at_least: int, extra_seconds: float = 0.0) -> None:
    """Start ``rag ingest``; SIGKILL it once ``at_least`` documents are ``status``, plus ``extra_seconds``."""
    process = subprocess.Popen(
        ingest_command(folder, kb),
        env=environment(data),
        cwd=data.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while count(data, status) < at_least and process.poll() is None:
            assert time.monotonic() < deadline, "the ingest made no progress"
            time.sleep(0.01)
        time.sleep(extra_seconds)
        assert process.poll() is None, "the ingest ended before the kill"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


@pytest.mark.slow
def test_sigkill_during_ingest_leaves_the_stores_in_agreement(tmp_path: Path) -> None:
    data, folder = tmp_path / "data", corpus(tmp_path / "docs", 10, big=1)
    kills = [("ready", 2, 0.05), ("pending", 1, 0.0), ("ready", 8, 0.0)]  # ready 8: the big one is still to come
    for status, at_least, extra in kills:
        kill_when(data, folder, "t", status, at_least, extra)
        state = check(data, "t")
        assert state["problems"] == [], state
    corpus(folder, 10, version=1, big=1)  # every file changed: the next kills fall inside replacements
    kill_when(data, folder, "t", "pending", 1)
    state = check(data, "t")
    assert state["problems"] == [] and state["pending"], state  # killed with a document half replaced
    done = subprocess.run(
        ingest_command(folder, "t"),
        env=environment(data),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert check(data, "t") == {"ready": 11, "pending": 0, "problems": []}


@pytest.mark.slow
def test_two_processes_ingesting_into_one_data_dir_take_turns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first, second = corpus(tmp_path / "one", 8), corpus(tmp_path / "two", 8, version=5)
    processes = [
        subprocess.Popen(
            ingest_command(folder, "t"),
            env=environment(data),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in (first, second, first)  # the same folder twice, too
    ]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    assert check(data, "t") == {"ready": 16, "pending": 0, "problems": []}


def hold_lock(path: Path) -> subprocess.Popen[str]:
    """Another process that takes the write lock and keeps it (until it is killed)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from stores.write_lock import WriteLock;"
            "lock = WriteLock(Path(sys.argv[1])); lock.__enter__(); print('held', flush=True); time.sleep(60)",
            str(path),
        ],
        cwd=ROOT,
        env=environment(path.parent),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_the_write_lock_is_exclusive_between_processes_and_reentrant(tmp_path: Path) -> None:
    path = tmp_path / "write.lock"
    holder = hold_lock(path)
    try:
        waiting = WriteLock(path, timeout=0.3)
        with pytest.raises(WriteLockTimeout, match=rf"process {holder.pid} has been writing"):
            waiting.__enter__()
    finally:
        holder.send_signal(signal.SIGKILL)  # the kernel releases a dead holder's lock
        holder.wait(timeout=30)
    lock = WriteLock(path, timeout=5)
    with lock, lock:  # re-entrant in one thread
        assert path.read_text() == str(os.getpid())


def test_the_service_answers_503_while_another_process_writes(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = Engine(Settings(data_dir=tmp_path / "data"))
    engine.embedder = embedder
    engine.knowledge_bases.add_text("t", "note.md", "The harbor opens at six.")
    engine.knowledge_bases.writing = WriteLock(tmp_path / "data" / "write.lock", timeout=0.2)
    [document] = engine.knowledge_bases.documents("t")
    holder = hold_lock(tmp_path / "data" / "write.lock")
    try:
        with TestClient(create_app(engine=engine)) as client:
            response = client.delete(f"/kbs/t/documents/{document.doc_id}")
            assert response.status_code == 503 and response.headers["retry-after"] == "60"
            assert f"process {holder.pid} has been writing" in response.json()["error"]["message"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert [d.doc_id for d in engine.knowledge_bases.documents("t")] == [document.doc_id]  # nothing half done
