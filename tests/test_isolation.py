"""One hostile upload, name or key must not hurt another tenant (issue 17).

Each test is one finding of the audit, replayed: it failed before the fix.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.citations import check_citations, support
from rag.engine import Engine
from rag.knowledge_base import KnowledgeBaseError, validate_kb_name
from rag.prompts import REFUSAL
from rag.settings import Settings
from stores import Embedder
from stores.metadata_filter import validate_filter
from tests.test_api import ENGLISH_POLICY, ask, message, outcomes, upload

FLIGHTS = "Which class is required for flights under six hours?"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    return Settings(data_dir=tmp_path / "data")


def make_client(settings: Settings, embedder: Embedder, **client: object) -> TestClient:
    engine = Engine(settings)
    engine.embedder = embedder
    return TestClient(create_app(settings, engine=engine), **client)  # type: ignore[arg-type]


@pytest.fixture
def client(settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    with make_client(settings, embedder) as test_client:
        yield test_client


# 3. Collections are the catalog's ids, never derived from the name.


def test_a_kb_named_like_anothers_hash_has_its_own_vectors(engine: Engine, tmp_path: Path) -> None:
    victim, attacker = "team docs", hashlib.sha256(b"team docs").hexdigest()[:32]
    (tmp_path / "travel.md").write_text(ENGLISH_POLICY)
    kbs = engine.knowledge_bases
    kbs.ingest(victim, [tmp_path / "travel.md"])
    kbs.ingest(attacker, [tmp_path / "travel.md"])
    assert engine.vectors.collection_name(victim) != engine.vectors.collection_name(attacker)
    vectors = engine.vectors.count(victim)
    assert vectors > 0
    kbs.delete(attacker)
    assert engine.vectors.count(victim) == vectors


def test_a_kb_made_again_after_a_delete_starts_empty(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "travel.md").write_text(ENGLISH_POLICY)
    engine.knowledge_bases.ingest("again", [tmp_path / "travel.md"])
    first = engine.vectors.collection_name("again")
    engine.knowledge_bases.delete("again")
    engine.knowledge_bases.create("again")
    assert engine.vectors.collection_name("again") != first
    assert engine.vectors.count("again") == 0


# 4. Staging is outside the KB namespace.


def test_deleting_a_kb_named_like_the_staging_folder_fails_no_upload(client: TestClient, settings: Settings) -> None:
    for name in (".incoming", "incoming"):
        client.post("/kbs", json={"name": name})
        assert client.delete(f"/kbs/{name}").status_code in {200, 404}
    response = upload(client, "docs", ("travel.md", ENGLISH_POLICY))
    assert outcomes(response) == {"travel.md": "added"}
    assert not (settings.data_dir / "uploads" / ".incoming").exists()


# 5. '#' marks the records of a multi-document file: a real file name may not hold one.


def test_a_file_name_with_a_part_mark_is_refused_and_deletes_nothing(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.md#b.md").write_text("Hotels are reimbursed up to 180 euros.")
    report = engine.knowledge_bases.ingest("k", [folder / "a.md#b.md"])
    assert report.failed and "'#'" in report.failed[0][1]
    (folder / "a.md").write_text("Economy class is required for short flights.")
    engine.knowledge_bases.ingest("k", [folder / "a.md"])
    assert [Path(d.source).name for d in engine.knowledge_bases.documents("k")] == ["a.md"]


def test_a_folder_whose_name_has_a_part_mark_is_not_a_files_records(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "a.md#x").mkdir()
    (tmp_path / "a.md#x" / "b.md").write_text("Hotels are reimbursed up to 180 euros.")
    (tmp_path / "a.md").write_text("Economy class is required for short flights.")
    engine.knowledge_bases.ingest("k", [tmp_path / "a.md#x" / "b.md"])
    report = engine.knowledge_bases.ingest("k", [tmp_path / "a.md"])
    assert report.removed == []
    assert len(engine.knowledge_bases.documents("k")) == 2


# 6. A negation is not support.


@pytest.mark.parametrize(
    ("sentence", "source"),
    [
        ("Employees must not request annual leave two weeks in advance.",
         "Employees must request annual leave two weeks in advance."),
        ("Employees never request annual leave two weeks in advance.",
         "Employees must request annual leave two weeks in advance."),
        ("Economy class is required for flights under six hours.",
         "Economy class is not required for flights under six hours."),
        ("员工不必提前两周申请年假。", "员工必须提前两周申请年假。"),
    ],
)  # fmt: skip
def test_a_sentence_that_says_the_opposite_of_its_source_is_not_supported(sentence: str, source: str) -> None:
    assert support(sentence, source) == 0.0


def test_a_sentence_negated_like_its_source_is_supported() -> None:
    source = "Business class is not allowed for flights under six hours. Hotels are reimbursed."
    assert support("Business class isn't allowed for flights under six hours.", source) >= 0.5
    assert support("员工密码长度不得少于十二位。", "员工密码长度不得少于十二位，且必须每九十天更换一次。") > 0.8


def test_a_negated_answer_is_removed_by_the_check() -> None:
    from ingest.chunk import Chunk
    from stores.hit import Hit

    hit = Hit(Chunk(id="c", doc_id="d", index=0, start=0, end=10,
                    text="Employees must request annual leave two weeks in advance."), 1.0)  # fmt: skip
    check = check_citations("Employees must not request annual leave two weeks in advance [1].", [hit], 0.5)
    assert check.sentences == [] and check.removed


# 7. Cross-site writes and unknown Host headers.


def test_cross_site_writes_are_refused(client: TestClient) -> None:
    files = {"files": ("x.md", b"Hotels are reimbursed up to 180 euros.", "text/plain")}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        response = client.post("/kbs/docs/documents", files=files, headers=headers)
        assert response.status_code == 403, headers
        assert "cross-site" in message(response)
    assert client.post("/kbs", json={"name": "same"}, headers={"Origin": "http://testserver"}).status_code == 201
    assert client.post("/kbs", json={"name": "plain"}).status_code == 201  # curl, SDKs: no Origin


def test_unknown_host_is_refused_on_loopback(settings: Settings, embedder: Embedder) -> None:
    with make_client(settings, embedder, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 5000)) as local:
        assert local.get("/health").status_code == 200
        assert local.get("/health", headers={"Host": "localhost:8000"}).status_code == 200
        response = local.get("/health", headers={"Host": "rebind.evil.example"})
        assert response.status_code == 421 and "allowed_hosts" in message(response)


# 10. Request bodies are bounded on every route.


def test_oversize_json_bodies_are_413_before_parsing(settings: Settings, embedder: Embedder) -> None:
    settings = settings.model_copy(update={"max_request_mb": 0.01})
    with make_client(settings, embedder) as small:
        big = '{"question": "' + "x" * 20_000 + '"}'
        response = small.post("/kbs/docs/ask", content=big, headers={"Content-Type": "application/json"})
        assert response.status_code == 413 and "max_request_mb" in message(response)

        def chunked() -> Iterator[bytes]:
            yield big.encode()

        response = small.post("/v1/chat/completions", content=chunked(), headers={"Content-Type": "application/json"})
        assert response.status_code == 413


# 12. Filters a store would reject are 422, never 500.


@pytest.mark.parametrize(
    "where",
    [
        {"cvss": float("nan")},
        {"cvss": {"$gte": float("inf")}},
        {"vendor": {"$in": ["a", None]}},
        {"vendor": {"$in": [["a"]]}},
        {"vendor": {"$in": list(range(100_000))}},
        {f"k{i}": 1 for i in range(1_000)},
        {"vendor": {}},
        {"cvss": {"$gte": "high"}},
        {"vendor": None},
    ],
)
def test_filters_a_store_rejects_are_refused(where: dict) -> None:
    with pytest.raises(ValueError):
        validate_filter(where)


def test_bad_filters_answer_422_on_search_and_ask(client: TestClient) -> None:
    upload(client, "docs", ("travel.md", ENGLISH_POLICY))
    bad = '{"query": "flights", "filters": {"cvss": NaN}}'
    response = client.post("/kbs/docs/search", content=bad, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert ask(client, "docs", FLIGHTS, filters={"vendor": {"$in": [None]}}).status_code == 422


# 17. KB names and counts do not leak.


def test_chatglm_route_names_no_kb_the_key_cannot_see(tmp_path: Path, embedder: Embedder,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    keys = [{"key": "k" * 16, "kbs": ["mine"], "access": "write"}, {"key": "a" * 16, "access": "write"}]
    settings = Settings(data_dir=tmp_path / "data", api_keys=keys)
    with make_client(settings, embedder) as client:
        admin = {"Authorization": "Bearer " + "a" * 16}
        client.post("/kbs", json={"name": "secret-project"}, headers=admin)
        response = client.post("/", json={"prompt": "hi"}, headers={"Authorization": "Bearer " + "k" * 16})
        assert "secret-project" not in response.text
        assert response.status_code in {403, 404, 422}
        assert "there are" not in response.text
        assert "knowledge_bases" not in client.get("/health").text


# 18. KB names a reader cannot tell apart.


@pytest.mark.parametrize("name", ["admin\u202e", "a\u200bb", "a\u2028b", "a\x7fb", "a\u2066b"])
def test_invisible_and_bidi_characters_are_refused_in_kb_names(name: str) -> None:
    with pytest.raises(KnowledgeBaseError):
        validate_kb_name(name)


def test_ordinary_names_still_pass() -> None:
    for name in ("handbook", "安全 制度", "team-docs_2", "Équipe"):
        assert validate_kb_name(name) == name


# 14. A document that contains the refusal sentence does not make answerable questions refused.


@pytest.mark.parametrize(
    ("name", "text", "question"),
    [
        ("travel.md", "Economy class is required for flights under six hours. " + REFUSAL["en"], FLIGHTS),
        ("安全.md", "员工密码长度不得少于十二位。" + REFUSAL["zh"], "员工密码长度不得少于几位？"),
    ],
)
def test_a_document_quoting_the_refusal_cannot_make_the_answerer_refuse(
    client: TestClient, name: str, text: str, question: str
) -> None:
    upload(client, "docs", (name, text))
    body = ask(client, "docs", question).json()
    assert body["answerable"] is True, body
    assert REFUSAL["en"] not in body["answer"] and REFUSAL["zh"] not in body["answer"]


# 9. The service's vector search sees what another process wrote, on its next query.


@pytest.mark.slow
def test_a_vector_query_sees_another_process_ingest(engine: Engine, tmp_path: Path) -> None:
    from tests.conftest import ENGLISH_HISTORY
    from tests.test_crash_safety import environment, ingest_command

    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "travel.md").write_text(ENGLISH_POLICY)
    engine.knowledge_bases.ingest("k", [tmp_path / "first"])
    vector = engine.embedder.embed(["Who designed the Meridian Bridge over the Calder River?"])[0]
    assert engine.vectors.query("k", vector, k=3)  # this process's index is loaded now
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "bridge.txt").write_text(ENGLISH_HISTORY)
    subprocess.run(ingest_command(tmp_path / "second", "k"), env=environment(tmp_path / "data"), check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    bridge = {d.doc_id for d in engine.knowledge_bases.documents("k") if d.source.endswith("bridge.txt")}
    hits = engine.vectors.query("k", vector, k=3)
    assert hits[0].chunk.doc_id in bridge


def test_staging_left_by_a_crash_is_removed_at_start(tmp_path: Path) -> None:
    from api.uploads import STALE_STAGING_SECONDS, Stager

    incoming = tmp_path / "data" / "incoming"
    (incoming / "old").mkdir(parents=True)
    (incoming / "old" / "a.md").write_text("left by a crash")
    (incoming / "fresh").mkdir()
    long_ago = time.time() - STALE_STAGING_SECONDS - 60
    os.utime(incoming / "old", (long_ago, long_ago))
    Stager(tmp_path / "data" / "uploads", 2**20)
    assert [p.name for p in incoming.iterdir()] == ["fresh"]  # a job may still be about to take it
