"""The HTTP API as clients and tools other people wrote see it: a KB named in Chinese on every route, error
statuses from typed errors, each route's error dialect, Bearer keys through FastAPI's security helper."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.engine import Engine
from rag.settings import ApiKey, Settings
from stores import Embedder
from tests.conftest import ENGLISH_POLICY

KB = "文档 ü"  # neither ASCII nor Latin-1 only
FLIGHTS = "Which class is required for flights under six hours?"


@pytest.fixture
def engine(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.chdir(tmp_path)
    engine = Engine(Settings(data_dir=tmp_path / "data"))
    engine.embedder = embedder
    return engine


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine=engine)) as test_client:
        yield test_client


def finished(client: TestClient, location: str) -> None:
    """Polls the job at ``location`` until it is done (and fails the test if it failed or took a minute)."""
    deadline = time.monotonic() + 60
    while (job := client.get(location)).json()["status"] not in {"done", "failed"} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.status_code == 200 and job.json()["status"] == "done", job.text


def test_a_chinese_kb_name_works_on_every_route(client: TestClient) -> None:
    kb = quote(KB, safe="")
    assert client.post("/kbs", json={"name": KB}).status_code == 201
    # No wait: the answer is a 202 whose Location header names the job (percent-encoded: headers are Latin-1).
    accepted = client.post(f"/kbs/{kb}/documents", json={"name": "travel.md", "text": ENGLISH_POLICY})
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["location"]
    assert location == f"/kbs/{kb}/jobs/{accepted.json()['job_id']}"
    finished(client, location)
    [document] = client.get(f"/kbs/{kb}/documents").json()
    doc_id = quote(document["doc_id"], safe="")
    assert client.get(f"/kbs/{kb}/documents/{doc_id}").status_code == 200
    assert client.post(f"/kbs/{kb}/search", json={"query": FLIGHTS}).json()["hits"]
    assert client.post(f"/kbs/{kb}/ask", json={"question": FLIGHTS}).json()["answerable"]
    streamed = client.post(f"/kbs/{kb}/ask", json={"question": FLIGHTS, "stream": True})
    assert streamed.headers["content-type"].startswith("text/event-stream") and "event: answer" in streamed.text
    assert f"kb:{KB}" in [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert client.get(f"/v1/models/{quote('kb:' + KB, safe='')}").json()["id"] == f"kb:{KB}"
    completion = client.post(
        "/v1/chat/completions", json={"model": f"kb:{KB}", "messages": [{"role": "user", "content": FLIGHTS}]}
    )
    assert "Economy class" in completion.json()["choices"][0]["message"]["content"]
    assert client.post("/chatglm", params={"kb": KB}, json={"prompt": FLIGHTS}).json()["answerable"]
    replaced = client.put(f"/kbs/{kb}/documents/{doc_id}", json={"text": ENGLISH_POLICY + "\nAnd more."})
    assert replaced.status_code == 202 and replaced.headers["location"].startswith(f"/kbs/{kb}/jobs/")
    finished(client, replaced.headers["location"])
    assert client.post(f"/kbs/{kb}/documents?wait=true", json={"name": "b.md", "text": "Bees."}).status_code == 200
    assert client.delete(f"/kbs/{kb}").status_code == 200


def test_statuses_come_from_error_types_in_each_routes_dialect(client: TestClient) -> None:
    unknown = client.get("/kbs/nope/documents")
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": {"message": "unknown knowledge base 'nope'", "type": "not_found_error", "code": 404}
    }
    invalid = client.post("/kbs", json={"name": "a/b"})
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == 422
    assert client.post("/kbs/nope/ask", json={"question": ""}).status_code == 422  # rag-kb's own routes: 422
    openai_style = client.post("/v1/chat/completions", json={"model": "kb:nope", "messages": []})
    assert openai_style.status_code == 400
    assert openai_style.json()["error"] == {
        "message": "messages: List should have at least 1 item after validation, not 0",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "invalid_value",
    }
    missing = client.get("/v1/models/kb:nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_bearer_keys_go_through_fastapis_security_helper(tmp_path: Path, engine: Engine) -> None:
    engine.settings = Settings(data_dir=tmp_path / "data", api_keys=[ApiKey(name="ops", key="s3cret-key-00001")])
    with TestClient(create_app(engine=engine)) as client:
        schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
        assert schemes == {
            "HTTPBearer": {"type": "http", "scheme": "bearer", "description": schemes["HTTPBearer"]["description"]}
        }
        assert client.get("/kbs").status_code == 401
        assert client.get("/kbs", headers={"Authorization": "Basic czNjcmV0"}).status_code == 401
        wrong = client.get("/v1/models", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        assert wrong.headers["www-authenticate"] == "Bearer"
        assert client.get("/kbs", headers={"Authorization": "Bearer s3cret-key-00001"}).status_code == 200
