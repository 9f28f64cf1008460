"""The HTTP API, through FastAPI's TestClient over a temporary data directory and the shared embedder."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.app import create_app
from rag.engine import Engine
from rag.prompts import REFUSAL
from rag.settings import Settings
from stores import Embedder
from tests.conftest import CHINESE_POLICY, ENGLISH_HISTORY, ENGLISH_POLICY

FLIGHTS = "Which class is required for flights under six hours?"
ABSENT = "Who won the 1998 football world cup?"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)  # no stray rag-kb.toml
    return Settings(data_dir=tmp_path / "data")


def app_client(settings: Settings, embedder: Embedder) -> TestClient:
    engine = Engine(settings)
    engine.embedder = embedder
    return TestClient(create_app(settings, engine=engine))


@pytest.fixture
def client(settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    with app_client(settings, embedder) as test_client:
        yield test_client


def upload(client: TestClient, kb: str, *files: tuple[str, str | bytes], wait: bool = True) -> Response:
    parts = [
        ("files", (name, text.encode("utf-8") if isinstance(text, str) else text, "application/octet-stream"))
        for name, text in files
    ]
    return client.post(f"/kbs/{kb}/documents", files=parts, params={"wait": wait})


def outcomes(response: Response) -> dict[str, str]:
    return {f["name"]: f["outcome"] for f in response.json()["files"]}


def ask(client: TestClient, kb: str, question: str, **extra: Any) -> Response:
    return client.post(f"/kbs/{kb}/ask", json={"question": question, **extra})


def names(sources: list[str]) -> list[str]:
    return [PurePosixPath(source).name for source in sources]


def message(response: Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == response.status_code, body
    return body["error"]["message"]


def sse_events(response: Response) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.fixture
def uploaded(client: TestClient) -> TestClient:
    response = upload(client, "t", ("travel.md", ENGLISH_POLICY), ("bridge.txt", ENGLISH_HISTORY))
    assert response.status_code == 200, response.text
    return client


# Service


def test_health_reports_each_part(client: TestClient, embedder: Embedder) -> None:
    embedder.model  # noqa: B018  (the app loads it in the background; here it must be in)
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["ready"] is True
    assert {name: check["ok"] for name, check in body["checks"].items()} == {"store": True, "embedder": True,
                                                                             "llm": True}
    assert client.get("/health/ready").status_code == 200


def test_health_is_not_ready_while_the_llm_server_is_down(tmp_path: Path, embedder: Embedder,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", llm_backend="openai", llm_url="http://127.0.0.1:9/v1")
    with app_client(settings, embedder) as client:
        response = client.get("/health/ready")
        assert response.status_code == 503
        llm = response.json()["checks"]["llm"]
        assert llm["ok"] is False and "does not answer" in llm["detail"]


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ["/kbs", "/kbs/{kb}/documents", "/kbs/{kb}/documents/{doc_id}", "/kbs/{kb}/jobs/{job_id}",
                 "/kbs/{kb}/ask", "/kbs/{kb}/search", "/v1/chat/completions", "/v1/models", "/chatglm", "/health"]:
        assert path in paths, path
    assert set(paths["/kbs/{kb}/documents/{doc_id}"]) == {"get", "put", "delete"}
    assert client.get("/docs").status_code == 200


def test_create_app_refuses_two_configurations(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not two different"):
        create_app(Settings(data_dir=tmp_path / "other"), engine=Engine(settings))


# Knowledge bases


def test_knowledge_base_lifecycle(client: TestClient) -> None:
    created = client.post("/kbs", json={"name": "hr"})
    assert created.status_code == 201 and created.json() == {"name": "hr", "created": True}
    assert client.post("/kbs", json={"name": "hr"}).json()["created"] is False
    [hr] = client.get("/kbs").json()
    assert hr["name"] == "hr" and hr["documents"] == 0 and hr["created_at"] > 0
    assert client.delete("/kbs/hr").json() == {"deleted": True, "name": "hr", "doc_id": None}
    assert client.get("/kbs").json() == []
    assert client.delete("/kbs/hr").status_code == 404


@pytest.mark.parametrize("name", ["a:b", "../x", "", " x", "a" * 65])
def test_invalid_kb_names_are_422(client: TestClient, name: str) -> None:
    response = client.post("/kbs", json={"name": name})
    assert response.status_code == 422
    assert "invalid knowledge base name" in message(response)
    assert client.get("/kbs").json() == []


# Documents


def test_upload_then_reupload_is_unchanged(client: TestClient) -> None:
    first = upload(client, "t", ("travel.md", ENGLISH_POLICY), ("bridge.txt", ENGLISH_HISTORY))
    assert first.status_code == 200, first.text
    job = first.json()
    assert job["status"] == "done" and job["total_files"] == job["done_files"] == 2
    assert outcomes(first) == {"travel.md": "added", "bridge.txt": "added"}
    assert all(f["doc_id"] and f["chunks"] >= 1 for f in job["files"])

    again = upload(client, "t", ("travel.md", ENGLISH_POLICY), ("bridge.txt", ENGLISH_HISTORY))
    assert outcomes(again) == {"travel.md": "unchanged", "bridge.txt": "unchanged"}
    changed = upload(client, "t", ("bridge.txt", "The Meridian Bridge was repainted green in 2001.\n"))
    assert outcomes(changed) == {"bridge.txt": "updated"}
    assert len(client.get("/kbs/t/documents").json()) == 2  # one document per file name


def test_upload_in_the_background_is_polled_to_the_end(client: TestClient) -> None:
    response = upload(client, "t", ("travel.md", ENGLISH_POLICY), wait=False)
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/kbs/t/jobs/{job['job_id']}"
    deadline = time.monotonic() + 60
    while job["status"] in {"queued", "running"}:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        job = client.get(response.headers["location"]).json()
    assert job["status"] == "done" and job["files"][0]["outcome"] == "added"
    assert ask(client, "t", FLIGHTS).json()["answerable"] is True
    assert client.get("/kbs/t/jobs/nope").status_code == 404
    assert client.get(f"/kbs/other/jobs/{job['job_id']}").status_code == 404  # a job belongs to its KB


def test_json_text_becomes_a_document(client: TestClient) -> None:
    text = "Employees receive twenty-five days of annual leave per calendar year."
    response = client.post("/kbs/hr/documents?wait=true", json={"name": "leave-policy", "text": text})
    assert response.status_code == 200, response.text
    [file] = response.json()["files"]
    assert file["outcome"] == "added" and file["name"] == "leave-policy"
    again = client.post("/kbs/hr/documents?wait=true", json={"name": "leave-policy", "text": text})
    assert again.json()["files"][0] == {**file, "outcome": "unchanged"}

    answer = ask(client, "hr", "How many days of annual leave do employees receive?").json()
    assert answer["answerable"] is True and "twenty-five days" in answer["answer"]
    assert [c["source"] for c in answer["citations"]] == ["leave-policy"]

    for body in [{"name": "", "text": text}, {"name": "x", "text": ""}, {"text": text}, [1, 2]]:
        bad = client.post("/kbs/hr/documents", json=body)
        assert bad.status_code == 422, body
        assert message(bad)


def test_documents_are_listed_and_shown(uploaded: TestClient) -> None:
    documents = uploaded.get("/kbs/t/documents").json()
    assert sorted(d["name"] for d in documents) == ["bridge.txt", "travel.md"]
    assert all(d["status"] == "ready" and d["chunks"] >= 1 and d["doc_id"] and d["size"] > 0 for d in documents)
    assert {d["name"]: d["documents"] for d in uploaded.get("/kbs").json()} == {"t": 2}
    one = uploaded.get(f"/kbs/t/documents/{documents[0]['doc_id']}")
    assert one.status_code == 200 and one.json() == documents[0]
    assert uploaded.get("/kbs/t/documents/nope").status_code == 404


def test_put_replaces_content_under_the_same_id(uploaded: TestClient) -> None:
    [bridge] = [d for d in uploaded.get("/kbs/t/documents").json() if d["name"] == "bridge.txt"]
    new = "The Meridian Bridge was designed by the engineer Tomas Reyes and opened in 1950.\n"
    response = uploaded.put(f"/kbs/t/documents/{bridge['doc_id']}?wait=true",
                            files={"file": ("anything.txt", new.encode(), "text/plain")})
    assert response.status_code == 200, response.text
    assert response.json()["files"][0]["outcome"] == "updated"
    assert response.json()["files"][0]["doc_id"] == bridge["doc_id"]
    after = uploaded.get(f"/kbs/t/documents/{bridge['doc_id']}").json()
    assert after["name"] == "bridge.txt" and after["source"] == bridge["source"]
    assert Path(bridge["source"]).read_text(encoding="utf-8") == new  # the kept upload is the new version
    answer = ask(uploaded, "t", "Who designed the Meridian Bridge?").json()
    assert "Tomas Reyes" in answer["answer"] and "Holloway" not in answer["answer"]
    assert len(uploaded.get("/kbs/t/documents").json()) == 2

    text = uploaded.put(f"/kbs/t/documents/{bridge['doc_id']}?wait=true", json={"text": "Rebuilt by Ada Lin in 1999."})
    assert text.json()["files"][0]["outcome"] == "updated"
    wrong_format = uploaded.put(f"/kbs/t/documents/{bridge['doc_id']}",
                                files={"file": ("x.pdf", b"%PDF-1.4", "application/pdf")})
    assert wrong_format.status_code == 415 and ".txt" in message(wrong_format)
    assert uploaded.put("/kbs/t/documents/nope", json={"text": "x"}).status_code == 404


def test_a_failed_replacement_keeps_the_old_content(uploaded: TestClient) -> None:
    [travel] = [d for d in uploaded.get("/kbs/t/documents").json() if d["name"] == "travel.md"]
    before = Path(travel["source"]).read_bytes()
    response = uploaded.put(f"/kbs/t/documents/{travel['doc_id']}?wait=true",
                            files={"file": ("travel.md", b"", "text/markdown")})
    assert response.json()["files"][0]["outcome"] == "failed"
    assert "empty" in response.json()["files"][0]["reason"]
    assert Path(travel["source"]).read_bytes() == before
    assert ask(uploaded, "t", FLIGHTS).json()["answerable"] is True
    broken = upload(uploaded, "t", ("travel.md", b"\x00\x01"))  # the same name, bad content: the KB keeps the old
    assert outcomes(broken) == {"travel.md": "failed"}
    assert Path(travel["source"]).read_bytes() == before


def test_upload_reports_failures_and_refusals_by_name(client: TestClient, settings: Settings) -> None:
    response = upload(client, "t", ("broken.pdf", b"%PDF-1.4 this is not really a pdf"),
                      ("bridge.txt", ENGLISH_HISTORY), ("tool.exe", b"MZ"))
    assert response.status_code == 200
    files = {f["name"]: f for f in response.json()["files"]}
    assert files["bridge.txt"]["outcome"] == "added"
    assert files["broken.pdf"]["outcome"] == "failed" and "PDF" in files["broken.pdf"]["reason"]
    assert files["tool.exe"]["outcome"] == "refused" and "unsupported format .exe" in files["tool.exe"]["reason"]
    kept = sorted(p.name for p in (settings.data_dir / "uploads" / "t").iterdir())
    assert kept == ["bridge.txt"]  # what never became a document is not kept
    assert list((settings.data_dir / "incoming").iterdir()) == []


def test_unsupported_and_oversize_uploads_are_refused_whole(settings: Settings, embedder: Embedder) -> None:
    small = settings.model_copy(update={"max_upload_mb": 0.01, "max_file_mb": 0.005, "max_upload_files": 2})
    with app_client(small, embedder) as client:
        unsupported = upload(client, "t", ("a.exe", b"MZ"), ("b.bin", b"\x00"))
        assert unsupported.status_code == 415 and "unsupported format" in message(unsupported)
        too_big_file = upload(client, "t", ("big.txt", "x" * 6000))
        assert too_big_file.status_code == 413 and "max_file_mb" in message(too_big_file)
        too_big_upload = upload(client, "t", ("big.txt", "x" * 20_000))
        assert too_big_upload.status_code == 413 and "max_upload_mb" in message(too_big_upload)
        too_many = upload(client, "t", ("a.txt", "a"), ("b.txt", "b"), ("c.txt", "c"))
        assert too_many.status_code == 413 and "too many files" in message(too_many)
        assert client.get("/kbs").json() == []  # nothing was created or kept


def test_upload_needs_files_or_json(client: TestClient) -> None:
    wrong = client.post("/kbs/t/documents", content=b"hello", headers={"content-type": "text/plain"})
    assert wrong.status_code == 415 and "multipart/form-data" in message(wrong)
    empty = client.post("/kbs/t/documents", files={"other": ("a.txt", b"a")})
    assert empty.status_code == 422 and "'files'" in message(empty)


def test_deleted_document_is_no_longer_cited(uploaded: TestClient, settings: Settings) -> None:
    [travel] = [d for d in uploaded.get("/kbs/t/documents").json() if d["name"] == "travel.md"]
    response = uploaded.delete(f"/kbs/t/documents/{travel['doc_id']}")
    assert response.status_code == 200 and response.json()["doc_id"] == travel["doc_id"]
    assert not Path(travel["source"]).exists()  # the kept upload goes with its document

    assert [d["name"] for d in uploaded.get("/kbs/t/documents").json()] == ["bridge.txt"]
    answer = ask(uploaded, "t", FLIGHTS).json()
    assert not any(c["source"].endswith("travel.md") for c in answer["citations"] + answer["sources"])
    again = uploaded.delete(f"/kbs/t/documents/{travel['doc_id']}")
    assert again.status_code == 404 and "no document" in message(again)

    assert outcomes(upload(uploaded, "t", ("travel.md", ENGLISH_POLICY))) == {"travel.md": "added"}
    assert ask(uploaded, "t", FLIGHTS).json()["answerable"] is True
    assert uploaded.delete("/kbs/t").status_code == 200
    assert not (settings.data_dir / "uploads" / "t").exists()
    assert ask(uploaded, "t", FLIGHTS).status_code == 404


@pytest.mark.parametrize("filename", ["../../escape.md", "/etc/escape.md", "..\\..\\escape.md", "sub/dir/escape.md"])
def test_uploaded_names_cannot_escape(client: TestClient, settings: Settings, tmp_path: Path, filename: str) -> None:
    response = upload(client, "t", (filename, ENGLISH_POLICY))
    assert response.status_code == 200, response.text
    assert outcomes(response) == {"escape.md": "added"}
    [document] = client.get("/kbs/t/documents").json()
    assert Path(document["source"]) == (settings.data_dir / "uploads" / "t" / "escape.md").resolve()
    assert Path(document["source"]).read_text(encoding="utf-8") == ENGLISH_POLICY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing written beside the data dir
    assert not Path("/etc/escape.md").exists()


@pytest.mark.parametrize("filename", ["..", "."])
def test_unusable_upload_names_are_422(client: TestClient, filename: str) -> None:
    assert upload(client, "t", (filename, ENGLISH_POLICY)).status_code == 422


# Questions


def test_ask_answers_with_citations(uploaded: TestClient) -> None:
    response = ask(uploaded, "t", FLIGHTS)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["answerable"] is True and answer["grounded"] is True
    assert "Economy" in answer["answer"] and "[1]" in answer["answer"]
    citation = answer["citations"][0]
    assert {"n", "doc_id", "source", "page", "start", "end", "snippet", "score"} <= set(citation)
    assert citation["source"].endswith("travel.md") and "Economy class is required" in citation["snippet"]
    assert answer["timings"]["total"] > 0


def test_ask_in_chinese(uploaded: TestClient) -> None:
    assert upload(uploaded, "t", ("security.md", CHINESE_POLICY)).status_code == 200
    answer = ask(uploaded, "t", "密码多久必须更换一次？").json()
    assert answer["answerable"] is True and answer["language"] == "zh"
    assert "九十天" in answer["answer"]
    assert set(names([c["source"] for c in answer["citations"]])) == {"security.md"}


def test_ask_refuses_with_evidence(uploaded: TestClient) -> None:
    answer = ask(uploaded, "t", ABSENT).json()
    assert answer["answerable"] is False and answer["answer"] == REFUSAL["en"]
    assert answer["citations"] == [] and answer["sources"]


def test_ask_streams_tokens_then_the_answer(uploaded: TestClient) -> None:
    response = ask(uploaded, "t", FLIGHTS, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"  # a reverse proxy passes tokens on as they come
    events = sse_events(response)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "answer" and set(kinds[:-1]) == {"token"} and len(kinds) >= 2
    final = events[-1][1]
    assert final["answerable"] is True and final["citations"]
    assert "".join(data["text"] for kind, data in events if kind == "token").startswith("Economy")

    refusal = sse_events(ask(uploaded, "t", ABSENT, stream=True))
    assert refusal[-1][1]["answerable"] is False


def test_ask_with_history_and_filters(uploaded: TestClient) -> None:
    history = [{"role": "user", "content": "Tell me about travel."}, {"role": "assistant", "content": "Sure."}]
    answer = ask(uploaded, "t", FLIGHTS, history=history, top_k=2).json()
    assert answer["answerable"] is True and len(answer["sources"]) <= 2
    [bridge] = [d for d in uploaded.get("/kbs/t/documents").json() if d["name"] == "bridge.txt"]
    narrowed = ask(uploaded, "t", FLIGHTS, filters={"doc_id": bridge["doc_id"]}).json()
    assert all(s["doc_id"] == bridge["doc_id"] for s in narrowed["sources"])
    bad = ask(uploaded, "t", FLIGHTS, filters={"page": {"$near": 3}})
    assert bad.status_code == 422 and "unknown filter operator" in message(bad)
    bad_stream = ask(uploaded, "t", FLIGHTS, filters={"$or": 1}, stream=True)
    assert bad_stream.status_code == 422  # still an error status, not a broken stream
    assert ask(uploaded, "t", FLIGHTS, history=[{"role": "system", "content": "x"}]).status_code == 422


def test_search_returns_ranked_passages(uploaded: TestClient) -> None:
    response = uploaded.post("/kbs/t/search", json={"query": "Who designed the Meridian Bridge?", "top_k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == "Who designed the Meridian Bridge?" and body["language"] == "en"
    hits = body["hits"]
    assert 1 <= len(hits) <= 3 and [h["n"] for h in hits] == list(range(1, len(hits) + 1))
    assert hits[0]["source"].endswith("bridge.txt") and "Agnes Holloway" in hits[0]["snippet"]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/kbs/nope/ask", {"question": FLIGHTS}),
        ("POST", "/kbs/nope/search", {"query": "flights"}),
        ("GET", "/kbs/nope/documents", None),
        ("GET", "/kbs/nope/documents/abc", None),
        ("PUT", "/kbs/nope/documents/abc", {"text": "x"}),
        ("DELETE", "/kbs/nope/documents/abc", None),
        ("DELETE", "/kbs/nope", None),
    ],
)
def test_unknown_kb_is_404(client: TestClient, method: str, path: str, body: dict[str, str] | None) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == 404
    assert message(response) == "unknown knowledge base 'nope'"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"question": FLIGHTS, "top_k": 0}, "top_k"),
        ({"question": FLIGHTS, "top_k": 1000}, "top_k"),
        ({"question": ""}, "question"),
        ({"question": "x" * 100_000}, "question"),
        ({"question": 42}, "question"),
        ({}, "question"),
    ],
)
def test_malformed_ask_is_422_with_the_field_named(uploaded: TestClient, body: dict[str, Any], expected: str) -> None:
    response = uploaded.post("/kbs/t/ask", json=body)
    assert response.status_code == 422
    assert expected in message(response)


def test_malformed_json_and_blank_questions_are_422(uploaded: TestClient) -> None:
    broken = uploaded.post("/kbs/t/ask", content=b'{"question": ', headers={"content-type": "application/json"})
    assert broken.status_code == 422 and "malformed JSON" in message(broken)
    assert ask(uploaded, "t", "   ").status_code == 422
    assert uploaded.post("/kbs/t/search", json={"query": "x", "top_k": -1}).status_code == 422


def test_a_second_app_over_the_same_data_dir_sees_the_uploads(uploaded: TestClient, settings: Settings,
                                                              embedder: Embedder) -> None:
    with app_client(settings, embedder) as other:
        assert ask(other, "t", FLIGHTS).json()["answerable"] is True
        assert outcomes(upload(other, "t", ("travel.md", ENGLISH_POLICY))) == {"travel.md": "unchanged"}
