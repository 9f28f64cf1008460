"""The routes the web page adds: conversations, documents a page at a time, chunks and document text,
the supporting sentence of a citation, recent jobs, a job waiting for another writer, and /whoami."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.engine import Engine
from rag.settings import Settings
from stores import Embedder
from stores.conversations import Conversations
from tests.conftest import ENGLISH_HISTORY, ENGLISH_POLICY
from tests.write_lock_holder import another_writer

READ_KEY = "read-only-key-0123456789"
WRITE_KEY = "write-key-0123456789abcdef"
OTHER_KEY = "other-team-key-0123456789"
KEYS = [
    {"key": READ_KEY, "name": "reader", "access": "read"},
    {"key": WRITE_KEY, "name": "writer", "access": "write"},
    {"key": OTHER_KEY, "name": "other", "kbs": ["other"], "access": "write"},
]


def make_client(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, **settings: object) -> TestClient:
    tmp_path.mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path)
    engine = Engine(Settings(data_dir=tmp_path / "data", **settings))
    engine.embedder = embedder
    return TestClient(create_app(engine.settings, engine=engine))


@pytest.fixture
def client(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with make_client(tmp_path, embedder, monkeypatch) as test_client:
        yield test_client


def upload(client: TestClient, kb: str, *files: tuple[str, str], wait: bool = True, **headers: str) -> dict:
    parts = [("files", (name, text.encode("utf-8"), "text/plain")) for name, text in files]
    response = client.post(f"/kbs/{kb}/documents", files=parts, params={"wait": wait}, headers=headers)
    assert response.status_code in (200, 202), response.text
    return response.json()


def test_conversations_are_kept_renamed_and_deleted(client: TestClient) -> None:
    client.post("/kbs", json={"name": "t"})
    created = client.post("/kbs/t/conversations", json={"title": "  Flights   and hotels "})
    assert created.status_code == 201
    conversation = created.json()
    assert conversation["title"] == "Flights and hotels" and conversation["turns"] == 0
    path = f"/kbs/t/conversations/{conversation['conversation_id']}"

    answer = {"answer": "Economy [1]", "answerable": True, "citations": [{"n": 1}]}
    assert client.post(path + "/turns", json={"role": "user", "content": "Which class?"}).json()["seq"] == 0
    assert client.post(path + "/turns", json={"role": "assistant", "content": "Economy [1]", "answer": answer}).json()[
        "seq"
    ] == 1
    opened = client.get(path).json()
    assert [(m["seq"], m["role"], m["content"]) for m in opened["messages"]] == [
        (0, "user", "Which class?"),
        (1, "assistant", "Economy [1]"),
    ]
    assert opened["messages"][1]["answer"] == answer and opened["turns"] == 2

    # Regenerate: the answer from seq 1 on is replaced.
    again = client.post(path + "/turns", json={"role": "assistant", "content": "Economy.", "replace_from": 1})
    assert again.json()["seq"] == 1
    assert [m["content"] for m in client.get(path).json()["messages"]] == ["Which class?", "Economy."]

    assert client.patch(path, json={"title": "Renamed"}).json()["title"] == "Renamed"
    assert [c["title"] for c in client.get("/kbs/t/conversations").json()] == ["Renamed"]
    assert client.patch(path, json={"title": ""}).status_code == 422
    assert client.post(path + "/turns", json={"role": "system", "content": "x"}).status_code == 422
    assert client.delete(path).json()["deleted"] is True
    assert client.get(path).status_code == 404
    assert client.get("/kbs/t/conversations").json() == []
    assert client.get("/kbs/nope/conversations").status_code == 404


def test_conversations_of_a_deleted_kb_do_not_come_back_with_a_new_one(client: TestClient) -> None:
    client.post("/kbs", json={"name": "t"})
    client.post("/kbs/t/conversations", json={"title": "old"})
    client.delete("/kbs/t")
    time.sleep(0.01)
    client.post("/kbs", json={"name": "t"})
    assert client.get("/kbs/t/conversations").json() == []


def test_conversation_store_survives_reopening(tmp_path: Path) -> None:
    store = Conversations(tmp_path / "c.sqlite")
    record = store.create("kb", "title")
    store.append(record.conversation_id, "user", "q")
    reopened = Conversations(tmp_path / "c.sqlite")
    assert [t.content for t in reopened.turns(record.conversation_id)] == ["q"]
    assert reopened.list("other") == []
    with pytest.raises(ValueError):
        reopened.append(record.conversation_id, "robot", "q")


def test_two_thousand_documents_are_searched_sorted_and_paged_by_the_server(client: TestClient) -> None:
    catalog = client.app.state.engine.knowledge_bases.catalog
    client.post("/kbs", json={"name": "big"})
    for i in range(2000):  # catalog rows only: the listing reads nothing else
        catalog.mark_pending("big", f"doc{i:04d}", f"/data/uploads/big/report-{i:04d}.txt", f"Report {i}", 100 + i)
        catalog.mark_ready("big", f"doc{i:04d}", "sha", i % 7)
    page = client.get("/kbs/big/document-page", params={"limit": 50}).json()
    assert page["total"] == 2000 and len(page["items"]) == 50
    assert page["items"][0]["name"] == "report-0000.txt"
    last = client.get("/kbs/big/document-page", params={"offset": 1950, "limit": 50}).json()
    assert last["items"][-1]["name"] == "report-1999.txt"
    found = client.get("/kbs/big/document-page", params={"q": "REPORT-123"}).json()
    assert found["total"] == 10  # report-1230 … report-1239
    by_size = client.get("/kbs/big/document-page", params={"sort": "size", "order": "desc", "limit": 1}).json()
    assert by_size["items"][0]["size"] == 2099
    assert client.get("/kbs/big/document-page", params={"sort": "nonsense"}).status_code == 422
    assert client.get("/kbs/big/document-page", params={"limit": 1000}).status_code == 422


def test_chunks_text_and_the_supporting_sentence(client: TestClient) -> None:
    long_text = ENGLISH_POLICY + "\n\n" + "\n\n".join(f"## Rule {i}\n{ENGLISH_HISTORY}" for i in range(12))
    job = upload(client, "t", ("travel.md", long_text))
    doc_id = job["files"][0]["doc_id"]
    first = client.get(f"/kbs/t/documents/{doc_id}/chunks", params={"limit": 200}).json()
    assert first["total"] == len(first["chunks"]) > 3
    assert [c["index"] for c in first["chunks"]] == list(range(first["total"]))
    assert first["chunks"][0]["name"] == "travel.md" and first["chunks"][0]["section"]

    # The document's text around a chunk: every chunk's offsets point at its text.
    text = client.get(f"/kbs/t/documents/{doc_id}/text", params={"chunk": 3, "radius": 2}).json()
    assert (text["first_chunk"], text["last_chunk"]) == (1, 5)
    for chunk in first["chunks"][1:6]:
        assert text["text"][chunk["start"] - text["offset"] : chunk["end"] - text["offset"]] == chunk["text"]
    assert client.get(f"/kbs/t/documents/{doc_id}/text", params={"chunk": 999}).status_code == 404

    # One chunk, its neighbours and the sentence that supports a claim.
    flights = next(c for c in first["chunks"] if "Economy class" in c["text"])
    context = client.get(
        f"/kbs/t/chunks/{flights['chunk_id']}",
        params={"claim": "Economy class is required for flights under six hours", "neighbours": 1},
    ).json()
    start, end = context["highlight"]
    assert context["chunk"]["text"][start:end] == "Economy class is required for flights under six hours."
    assert [n["index"] for n in context["before"] + context["after"]] == [
        i for i in (flights["index"] - 1, flights["index"] + 1) if 0 <= i < first["total"]
    ]
    assert client.get(f"/kbs/t/chunks/{flights['chunk_id']}").json()["highlight"] is None
    assert client.get("/kbs/t/chunks/nope:0").status_code == 404


def test_every_batch_keeps_its_per_file_outcomes(client: TestClient) -> None:
    upload(client, "t", ("travel.md", ENGLISH_POLICY))
    upload(client, "t", ("bridge.txt", ENGLISH_HISTORY), ("travel.md", ENGLISH_POLICY))
    jobs = client.get("/kbs/t/jobs").json()
    assert [{f["name"]: f["outcome"] for f in job["files"]} for job in jobs] == [
        {"bridge.txt": "added", "travel.md": "unchanged"},
        {"travel.md": "added"},
    ]
    assert all(job["waiting"] is None for job in jobs)


def test_a_job_waiting_for_the_write_lock_says_so(client: TestClient, tmp_path: Path) -> None:
    client.post("/kbs", json={"name": "t"})
    with another_writer(tmp_path / "data" / "write.lock") as pid:
        job = upload(client, "t", ("travel.md", ENGLISH_POLICY), wait=False)
        polled = client.get(f"/kbs/t/jobs/{job['job_id']}").json()
        assert polled["status"] in ("queued", "running")
        assert polled["waiting"] == f"waiting for another writer (process {pid})"
        assert client.get("/kbs/t/jobs").json()[0]["waiting"] == polled["waiting"]
        assert client.get("/write-lock").json() == {"holder": f"process {pid}"}
    done = client.app.state.engine.ingest_jobs.wait("t", job["job_id"], timeout=120)
    assert done.status == "done" and done.waiting is None
    assert client.get("/write-lock").json() == {"holder": None}


def test_whoami_says_what_a_key_may_do(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    with make_client(tmp_path / "open", embedder, monkeypatch) as open_client:
        assert open_client.get("/whoami").json()["keys_required"] is False
    with make_client(tmp_path / "keyed", embedder, monkeypatch, api_keys=KEYS) as keyed:
        assert keyed.get("/whoami").status_code == 401
        assert keyed.get("/whoami", headers={"Authorization": "Bearer wrong-key-0123456789"}).status_code == 401
        reader = keyed.get("/whoami", headers={"Authorization": f"Bearer {READ_KEY}"}).json()
        assert reader == {"keys_required": True, "name": "reader", "access": "read", "kbs": ["*"]}
        other = keyed.get("/whoami", headers={"Authorization": f"Bearer {OTHER_KEY}"}).json()
        assert other["kbs"] == ["other"] and other["access"] == "write"
        # Asking is reading: a read-only key keeps conversations; a key for another KB sees none of them.
        keyed.post("/kbs", json={"name": "t"}, headers={"Authorization": f"Bearer {WRITE_KEY}"})
        mine = keyed.post("/kbs/t/conversations", json={"title": "q"}, headers={"Authorization": f"Bearer {READ_KEY}"})
        assert mine.status_code == 201
        assert keyed.get("/kbs/t/conversations", headers={"Authorization": f"Bearer {OTHER_KEY}"}).status_code == 403
        assert keyed.get("/kbs/t/document-page", headers={"Authorization": f"Bearer {OTHER_KEY}"}).status_code == 403
