"""API keys: scoped to knowledge bases and to read or write, with no way around through any endpoint."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.engine import Engine
from rag.settings import ApiKey, Settings
from stores import Embedder
from tests.conftest import CHINESE_POLICY, ENGLISH_POLICY

READ_A = "read-a-0123456789abcdef"
WRITE_A = "write-a-0123456789abcdef"
ADMIN = "admin-0123456789abcdef01"
KEYS = [
    ApiKey(key=READ_A, name="bot-a", kbs=["a"]),
    ApiKey(key=WRITE_A, name="editor-a", kbs=["a"], access="write"),
    ApiKey(key=ADMIN, name="admin", kbs=["*"], access="write"),
]
FLIGHTS = "Which class is required for flights under six hours?"


@pytest.fixture
def client(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.chdir(tmp_path)
    engine = Engine(Settings(data_dir=tmp_path / "data", api_keys=KEYS))
    engine.embedder = embedder
    engine.knowledge_bases.add_text("a", "travel.md", ENGLISH_POLICY)
    engine.knowledge_bases.add_text("b", "secret.md", CHINESE_POLICY + "\nThe vault code of team b is 4471.\n")
    with TestClient(create_app(engine=engine)) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def doc_id(client: TestClient, kb: str) -> str:
    return client.get(f"/kbs/{kb}/documents", headers=bearer(ADMIN)).json()[0]["doc_id"]


def reads(kb: str, doc: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every way to read ``kb``."""
    return [
        ("GET", f"/kbs/{kb}/documents", None),
        ("GET", f"/kbs/{kb}/documents/{doc}", None),
        ("GET", f"/kbs/{kb}/jobs/anything", None),
        ("POST", f"/kbs/{kb}/ask", {"question": "vault code"}),
        ("POST", f"/kbs/{kb}/ask", {"question": "vault code", "stream": True}),
        ("POST", f"/kbs/{kb}/search", {"query": "vault code"}),
        ("POST", "/v1/chat/completions", {"model": f"kb:{kb}", "messages": [{"role": "user", "content": "vault"}]}),
        ("POST", "/v1/chat/completions", {"model": kb, "messages": [{"role": "user", "content": "vault"}],
                                          "stream": True}),
        ("GET", f"/v1/models/kb:{kb}", None),
        ("POST", f"/chatglm?kb={kb}", {"prompt": "vault code"}),
        ("POST", f"/?kb={kb}", {"prompt": "vault code"}),
    ]


def writes(kb: str, doc: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every way to change ``kb``."""
    return [
        ("POST", "/kbs", {"name": kb}),
        ("POST", f"/kbs/{kb}/documents?wait=true", {"name": "n.md", "text": "new text"}),
        ("PUT", f"/kbs/{kb}/documents/{doc}?wait=true", {"text": "replaced"}),
        ("DELETE", f"/kbs/{kb}/documents/{doc}", None),
        ("DELETE", f"/kbs/{kb}", None),
    ]


def test_without_a_key_only_the_page_and_health_answer(client: TestClient) -> None:
    for method, path, body in reads("a", "x") + writes("a", "x") + [("GET", "/kbs", None), ("GET", "/v1/models", None)]:
        for headers in [{}, bearer("not-a-key-0123456789"), {"Authorization": f"Basic {ADMIN}"}]:
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "API key" in response.json()["error"]["message"]
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_a_key_for_a_cannot_reach_b_through_any_endpoint(client: TestClient) -> None:
    b_doc = doc_id(client, "b")
    for key in [READ_A, WRITE_A]:
        for method, path, body in reads("b", b_doc) + writes("b", b_doc):
            response = client.request(method, path, json=body, headers=bearer(key))
            assert response.status_code == 403, (key, method, path, response.text)
            assert "4471" not in response.text and "secret" not in response.text
        assert [kb["name"] for kb in client.get("/kbs", headers=bearer(key)).json()] == ["a"]
        assert [m["id"] for m in client.get("/v1/models", headers=bearer(key)).json()["data"]] == ["kb:a"]
    # Not even whether b exists: a KB that does not exist is refused the same way.
    for method, path, body in reads("nope", "x"):
        assert client.request(method, path, json=body, headers=bearer(READ_A)).status_code == 403
    assert client.post("/chatglm?kb=b", json={"prompt": "vault"}, headers=bearer(ADMIN)).json()["status"] == 200


def test_a_read_key_reads_but_does_not_write(client: TestClient) -> None:
    a_doc = doc_id(client, "a")
    for method, path, body in reads("a", a_doc):
        response = client.request(method, path, json=body, headers=bearer(READ_A))
        assert response.status_code in {200, 404}, (method, path, response.text)  # 404: the job does not exist
    ask = client.post("/kbs/a/ask", json={"question": FLIGHTS}, headers=bearer(READ_A)).json()
    assert ask["answerable"] is True
    for method, path, body in writes("a", a_doc):
        response = client.request(method, path, json=body, headers=bearer(READ_A))
        assert response.status_code == 403, (method, path)
        assert "may not change" in response.json()["error"]["message"]
    assert client.get(f"/kbs/a/documents/{a_doc}", headers=bearer(ADMIN)).status_code == 200  # nothing changed


def test_a_write_key_changes_its_own_kb_only(client: TestClient) -> None:
    a_doc = doc_id(client, "a")
    for method, path, body in writes("a", a_doc):
        response = client.request(method, path, json=body, headers=bearer(WRITE_A))
        assert response.status_code in {200, 201}, (method, path, response.text)
    assert client.post("/kbs", json={"name": "c"}, headers=bearer(WRITE_A)).status_code == 403
    assert client.post("/kbs", json={"name": "c"}, headers=bearer(ADMIN)).status_code == 201


def test_keys_are_never_logged_or_echoed(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses = [
        client.get("/kbs/b/documents", headers=bearer(READ_A)),
        client.get("/kbs", headers=bearer(READ_A + "x")),
        client.post("/kbs/a/ask", json={"question": FLIGHTS}, headers=bearer(READ_A)),
    ]
    for key in [READ_A, WRITE_A, ADMIN]:
        assert key not in caplog.text
        assert all(key not in r.text for r in responses)
    assert READ_A not in repr(KEYS[0])


def test_keys_file_in_toml_or_json(tmp_path: Path) -> None:
    toml = tmp_path / "keys.toml"
    toml.write_text('[[keys]]\nkey = "from-toml-0123456789"\nkbs = ["a"]\naccess = "write"\n', encoding="utf-8")
    both = Settings(data_dir=tmp_path, api_keys=[KEYS[0]], api_keys_file=toml).load_api_keys()
    assert [(k.key, k.access) for k in both] == [(READ_A, "read"), ("from-toml-0123456789", "write")]

    as_json = tmp_path / "keys.json"
    as_json.write_text(json.dumps([{"key": "from-json-0123456789", "kbs": ["*"]}]), encoding="utf-8")
    [key] = Settings(data_dir=tmp_path, api_keys_file=as_json).load_api_keys()
    assert key.may("anything") and not key.may("anything", write=True)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('[[keys]]\nkey = "short"\n', "at least 16"),
        ('[[keys]]\nkey = "0123456789abcdef0"\naccess = "admin"\n', "access"),
        ("[[keys]\n", "cannot read API keys"),
        ('[[keys]]\nkey = "0123456789abcdef0"\n[[keys]]\nkey = "0123456789abcdef0"\n', "twice"),
    ],
)
def test_bad_keys_files_stop_the_start(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(content, encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", api_keys_file=path)
    with pytest.raises(ValueError, match=problem):
        create_app(settings)
    with pytest.raises(ValueError, match="cannot read API keys"):
        Settings(data_dir=tmp_path, api_keys_file=tmp_path / "missing.toml").load_api_keys()


def test_keys_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_API_KEYS", json.dumps([{"key": "env-key-0123456789ab", "kbs": ["hr"]}]))
    [key] = Settings(data_dir=tmp_path).load_api_keys()
    assert key.may("hr") and not key.may("finance")
