"""The HTTP API, through FastAPI's TestClient over a temporary data directory and the shared embedder."""

from __future__ import annotations

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


@pytest.fixture
def client(settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    engine = Engine(settings)
    engine.embedder = embedder
    with TestClient(create_app(settings, engine=engine)) as test_client:
        yield test_client


def upload(client: TestClient, kb: str, *files: tuple[str, str]) -> Response:
    parts = [("files", (name, text.encode("utf-8"), "text/plain")) for name, text in files]
    return client.post(f"/kbs/{kb}/documents", files=parts)


def ask(client: TestClient, kb: str, question: str, **extra: Any) -> Response:
    return client.post(f"/kbs/{kb}/ask", json={"question": question, **extra})


def names(sources: list[str]) -> list[str]:
    return [PurePosixPath(source).name for source in sources]


@pytest.fixture
def uploaded(client: TestClient) -> TestClient:
    response = upload(client, "t", ("travel.md", ENGLISH_POLICY), ("bridge.txt", ENGLISH_HISTORY))
    assert response.status_code == 200, response.text
    return client


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_create_app_refuses_two_configurations(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not two different"):
        create_app(Settings(data_dir=tmp_path / "other"), engine=Engine(settings))


def test_upload_then_reupload_is_unchanged(client: TestClient) -> None:
    first = upload(client, "t", ("travel.md", ENGLISH_POLICY), ("bridge.txt", ENGLISH_HISTORY))
    assert first.status_code == 200, first.text
    report = first.json()
    assert sorted(names(report["added"])) == ["bridge.txt", "travel.md"]
    assert report["updated"] == [] and report["unchanged"] == [] and report["failed"] == []
    assert report["chunks"] >= 2

    again = upload(client, "t", ("travel.md", ENGLISH_POLICY), ("bridge.txt", ENGLISH_HISTORY)).json()
    assert again["added"] == [] and again["updated"] == []
    assert sorted(names(again["unchanged"])) == ["bridge.txt", "travel.md"]
    assert again["chunks"] == 0

    changed = upload(client, "t", ("bridge.txt", "The Meridian Bridge was repainted green in 2001.\n")).json()
    assert names(changed["updated"]) == ["bridge.txt"] and changed["added"] == []

    documents = client.get("/kbs/t/documents").json()
    assert len(documents) == 2  # one document per file name, however often it was uploaded


def test_documents_are_listed(uploaded: TestClient) -> None:
    response = uploaded.get("/kbs/t/documents")
    assert response.status_code == 200
    documents = response.json()
    assert sorted(names([d["source"] for d in documents])) == ["bridge.txt", "travel.md"]
    assert all(d["status"] == "ready" and d["chunks"] >= 1 and d["doc_id"] for d in documents)
    assert {d["name"]: d["documents"] for d in uploaded.get("/kbs").json()} == {"t": 2}


def test_ask_answers_with_citations(uploaded: TestClient) -> None:
    response = ask(uploaded, "t", FLIGHTS)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["answerable"] is True
    assert "Economy" in answer["answer"]
    assert answer["citations"]
    assert all(c["source"].endswith("travel.md") for c in answer["citations"])
    assert "Economy class is required" in answer["citations"][0]["snippet"]
    assert "[1]" in answer["answer"]


def test_ask_in_chinese(uploaded: TestClient) -> None:
    assert upload(uploaded, "t", ("security.md", CHINESE_POLICY)).status_code == 200
    answer = ask(uploaded, "t", "密码多久必须更换一次？").json()
    assert answer["answerable"] is True and answer["language"] == "zh"
    assert "九十天" in answer["answer"]
    assert set(names([c["source"] for c in answer["citations"]])) == {"security.md"}


def test_ask_refuses_with_evidence(uploaded: TestClient) -> None:
    response = ask(uploaded, "t", ABSENT)
    assert response.status_code == 200
    answer = response.json()
    assert answer["answerable"] is False
    assert answer["answer"] == REFUSAL["en"]
    assert answer["citations"] == []
    assert answer["sources"]  # the passages that were judged not to answer it


def test_search_returns_ranked_passages(uploaded: TestClient) -> None:
    response = uploaded.post("/kbs/t/search", json={"query": "Who designed the Meridian Bridge?", "top_k": 3})
    assert response.status_code == 200, response.text
    results = response.json()
    assert 1 <= len(results) <= 3
    assert [r["n"] for r in results] == list(range(1, len(results) + 1))
    assert results[0]["source"].endswith("bridge.txt")
    assert "Agnes Holloway" in results[0]["snippet"]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


def test_deleted_document_is_no_longer_cited(uploaded: TestClient) -> None:
    documents = uploaded.get("/kbs/t/documents").json()
    [travel] = [d for d in documents if d["source"].endswith("travel.md")]

    response = uploaded.delete(f"/kbs/t/documents/{travel['doc_id']}")
    assert response.status_code == 200
    assert response.json() == {"doc_id": travel["doc_id"], "deleted": True}

    assert names([d["source"] for d in uploaded.get("/kbs/t/documents").json()]) == ["bridge.txt"]
    answer = ask(uploaded, "t", FLIGHTS).json()
    assert not any(c["source"].endswith("travel.md") for c in answer["citations"] + answer["sources"])
    assert "Economy" not in answer["answer"]

    again = uploaded.delete(f"/kbs/t/documents/{travel['doc_id']}")
    assert again.status_code == 404 and "no document" in again.json()["detail"]

    # Uploading it again brings it back as a new document.
    assert names(upload(uploaded, "t", ("travel.md", ENGLISH_POLICY)).json()["added"]) == ["travel.md"]
    assert ask(uploaded, "t", FLIGHTS).json()["answerable"] is True


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/kbs/nope/ask", {"question": FLIGHTS}),
        ("POST", "/kbs/nope/search", {"query": "flights"}),
        ("GET", "/kbs/nope/documents", None),
        ("DELETE", "/kbs/nope/documents/abc", None),
        ("DELETE", "/kbs/nope", None),
    ],
)
def test_unknown_kb_is_404(client: TestClient, method: str, path: str, body: dict[str, str] | None) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == 404
    assert response.json()["detail"] == "unknown knowledge base 'nope'"


def test_invalid_kb_name_is_422(client: TestClient) -> None:
    response = ask(client, "a:b", FLIGHTS)
    assert response.status_code == 422
    assert "invalid knowledge base name" in response.json()["detail"]
    assert upload(client, "a:b", ("x.txt", "text")).status_code == 422
    assert client.get("/kbs").json() == []


@pytest.mark.parametrize("top_k", [0, 1000])
def test_invalid_top_k_is_422(uploaded: TestClient, top_k: int) -> None:
    assert ask(uploaded, "t", FLIGHTS, top_k=top_k).status_code == 422
    assert uploaded.post("/kbs/t/search", json={"query": "flights", "top_k": top_k}).status_code == 422


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question_is_422(uploaded: TestClient, question: str) -> None:
    response = ask(uploaded, "t", question)
    assert response.status_code == 422


def test_texts_become_answerable(client: TestClient) -> None:
    text = "Employees receive twenty-five days of annual leave per calendar year."
    response = client.post("/kbs/hr/texts", json={"name": "leave-policy", "text": text})
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "added"
    again = client.post("/kbs/hr/texts", json={"name": "leave-policy", "text": text}).json()
    assert again == {"doc_id": response.json()["doc_id"], "outcome": "unchanged"}

    answer = ask(client, "hr", "How many days of annual leave do employees receive?").json()
    assert answer["answerable"] is True
    assert "twenty-five days" in answer["answer"]
    assert [c["source"] for c in answer["citations"]] == ["leave-policy"]

    assert client.post("/kbs/hr/texts", json={"name": "", "text": text}).status_code == 422
    assert client.post("/kbs/hr/texts", json={"name": "x", "text": ""}).status_code == 422


def test_delete_kb(uploaded: TestClient) -> None:
    response = uploaded.delete("/kbs/t")
    assert response.status_code == 200
    assert response.json() == {"name": "t", "deleted": True}
    assert "t" not in [kb["name"] for kb in uploaded.get("/kbs").json()]
    assert ask(uploaded, "t", FLIGHTS).status_code == 404


@pytest.mark.parametrize("filename", ["../../escape.md", "/etc/escape.md", "..\\..\\escape.md", "sub/dir/escape.md"])
def test_uploaded_names_cannot_escape(client: TestClient, settings: Settings, tmp_path: Path, filename: str) -> None:
    response = upload(client, "t", (filename, ENGLISH_POLICY))
    assert response.status_code == 200, response.text
    [source] = response.json()["added"]
    assert PurePosixPath(source).name == "escape.md"  # stored under its base name
    assert Path(source) == (settings.data_dir / "uploads" / "t" / "escape.md").resolve()
    assert Path(source).read_text(encoding="utf-8") == ENGLISH_POLICY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing written beside the data dir
    assert not Path("/etc/escape.md").exists()
    assert ask(client, "t", FLIGHTS).json()["citations"][0]["source"] == source


@pytest.mark.parametrize("filename", ["..", "."])
def test_unusable_upload_names_are_422(client: TestClient, filename: str) -> None:
    response = upload(client, "t", (filename, ENGLISH_POLICY))
    assert response.status_code == 422


def test_upload_reports_failures_by_name(client: TestClient) -> None:
    response = client.post("/kbs/t/documents", files=[
        ("files", ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "application/pdf")),
        ("files", ("bridge.txt", ENGLISH_HISTORY.encode(), "text/plain")),
    ])
    assert response.status_code == 200
    report = response.json()
    assert names(report["added"]) == ["bridge.txt"]
    [failure] = report["failed"]
    assert failure["source"].endswith("broken.pdf") and "PDF" in failure["reason"]
    assert not Path(failure["source"]).exists()  # what never became a document is not kept


def test_stored_uploads_go_with_their_document_and_kb(uploaded: TestClient, settings: Settings) -> None:
    folder = settings.data_dir / "uploads" / "t"
    assert sorted(p.name for p in folder.iterdir()) == ["bridge.txt", "travel.md"]  # no partial files left
    [travel] = [d for d in uploaded.get("/kbs/t/documents").json() if d["source"].endswith("travel.md")]
    assert uploaded.delete(f"/kbs/t/documents/{travel['doc_id']}").status_code == 200
    assert sorted(p.name for p in folder.iterdir()) == ["bridge.txt"]
    assert uploaded.delete("/kbs/t").status_code == 200
    assert not folder.exists()


def test_a_second_app_over_the_same_data_dir_sees_the_uploads(uploaded: TestClient, settings: Settings,
                                                              embedder: Embedder) -> None:
    engine = Engine(settings)
    engine.embedder = embedder
    with TestClient(create_app(engine=engine)) as other:
        assert ask(other, "t", FLIGHTS).json()["answerable"] is True
        assert upload(other, "t", ("travel.md", ENGLISH_POLICY)).json()["unchanged"]
