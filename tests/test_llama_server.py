"""``OpenAICompatibleLLM`` against a real OpenAI-compatible server: llama-cpp-python's, serving the bundled SmolLM2.

The server is a subprocess (``llama_cpp.server``, started by ``rag.llms.llama_server``), code this project did
not write, in the same role as vLLM, FastChat or chatglm.cpp serving ChatGLM2-6B in production. llama-cpp-python
is built from source by ``make install`` (its server extras by ``make dev``). Without it these tests fail (they
do not skip), unless ``RAG_SKIP_LLAMA_SERVER_TESTS=1``. SmolLM2-135M is weak, so answers are checked for their contract
(streamed pieces, lengths, determinism, errors), not their wording.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag.citations import split_cited_sentences, support
from rag.engine import Engine
from rag.llms.base import GenerationOptions, LLMError, Message
from rag.llms.openai_compatible import OpenAICompatibleLLM
from rag.llms.transformers_chat import smollm2_path
from rag.prompts import REFUSAL
from rag.settings import Settings
from rag.types import Answer
from stores import Embedder
from tests.conftest import ENGLISH_HISTORY

pytestmark = pytest.mark.slow

SKIP_SWITCH = "RAG_SKIP_LLAMA_SERVER_TESTS"
API_KEY = "sk-rag-kb-test"
ALIAS = "smollm2"
GREEDY = GenerationOptions(max_tokens=24, temperature=0)
COLOURS: list[Message] = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Name three colours."},
]


def require_llama_cpp() -> None:
    """Fail with what to do when llama-cpp-python is missing; skip only when asked to."""
    if importlib.util.find_spec("llama_cpp") is not None:
        return
    if os.environ.get(SKIP_SWITCH) == "1":
        pytest.skip(f"llama-cpp-python is not installed and {SKIP_SWITCH}=1")
    pytest.fail(
        "llama-cpp-python is not installed, so the real OpenAI-compatible server cannot start. Run `make dev` "
        f"(it builds llama-cpp-python[server] from source with portable CPU flags), or set {SKIP_SWITCH}=1 to "
        "skip these tests.",
        pytrace=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refuses_connections(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class LlamaServer:
    """llama-cpp-python's server (``python -m rag.llms.llama_server``: ``llama_cpp.server`` with the CPU variant
    loaded) with the SmolLM2 GGUF on a free port of 127.0.0.1; its output goes to ``log``."""

    def __init__(self, log: Path, n_ctx: int = 2048) -> None:
        self.port = free_port()
        self.log = log
        self.command = [
            sys.executable, "-m", "rag.llms.llama_server",
            "--model", str(smollm2_path()), "--model_alias", ALIAS, "--n_ctx", str(n_ctx),
            "--host", "127.0.0.1", "--port", str(self.port), "--api_key", API_KEY,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds until ``GET /v1/models`` answers; fails with the server's log if it dies or never answers."""
        assert self.process is not None
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                response = httpx.get(f"{self.base_url}/models", headers=self.headers, timeout=2)
                if response.status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"llama_cpp.server did not answer within {timeout} s:\n{self.log_tail()}")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def token_count(self, text: str) -> int:
        """Tokens in ``text`` by the server's own tokenizer (``/extras/tokenize``, without the BOS token)."""
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/extras/tokenize", json={"input": text}, headers=self.headers, timeout=10
        )
        response.raise_for_status()
        tokens = response.json()["tokens"]
        return len(tokens) - (1 if tokens and tokens[0] == self.bos_token_id() else 0)

    def bos_token_id(self) -> int:
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/extras/tokenize", json={"input": ""}, headers=self.headers, timeout=10
        )
        tokens = response.json()["tokens"]
        return tokens[0] if tokens else -1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    require_llama_cpp()
    llama = LlamaServer(tmp_path_factory.mktemp("llama") / "server.log").start()
    try:
        llama.wait_ready()
        yield llama
    finally:
        llama.stop()


@pytest.fixture
def llm(server: LlamaServer) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(server.base_url, model=ALIAS, api_key=API_KEY, timeout=60)


def test_the_server_streams_the_reply_in_pieces(llm: OpenAICompatibleLLM) -> None:
    pieces = list(llm.stream(COLOURS, GREEDY))
    assert len(pieces) > 3 and all(isinstance(p, str) and p for p in pieces)  # token by token, not one block
    assert "".join(pieces).strip()


def test_the_model_name_defaults_to_the_one_the_server_lists(server: LlamaServer) -> None:
    listed = httpx.get(f"{server.base_url}/models", headers=server.headers, timeout=10).json()
    assert [m["id"] for m in listed["data"]] == [ALIAS]
    unnamed = OpenAICompatibleLLM(server.base_url, api_key=API_KEY, timeout=60)
    named = OpenAICompatibleLLM(server.base_url, model=ALIAS, api_key=API_KEY, timeout=60)
    assert unnamed.generate(COLOURS, GREEDY) == named.generate(COLOURS, GREEDY)


def test_max_tokens_caps_the_reply(server: LlamaServer, llm: OpenAICompatibleLLM) -> None:
    short = llm.generate(COLOURS, GenerationOptions(max_tokens=8, temperature=0))
    longer = llm.generate(COLOURS, GenerationOptions(max_tokens=32, temperature=0))
    assert longer.startswith(short) and len(short) < len(longer)  # the same greedy reply, cut at 8 tokens
    assert 0 < server.token_count(short) <= 8 + 1  # +1: re-tokenizing the cut text may split one word differently


def test_temperature_and_top_p_reach_the_server(llm: OpenAICompatibleLLM) -> None:
    greedy = llm.generate(COLOURS, GREEDY)
    assert llm.generate(COLOURS, GREEDY) == greedy  # temperature 0 is deterministic
    # top_p keeps the smallest set of tokens reaching that probability: at 0.01 only the likeliest one, so even
    # at a high temperature the reply is the greedy one.
    assert llm.generate(COLOURS, GenerationOptions(max_tokens=24, temperature=1.5, top_p=0.01)) == greedy
    hot = GenerationOptions(max_tokens=24, temperature=2.0, top_p=1.0)
    assert len({llm.generate(COLOURS, hot) for _ in range(3)}) > 1  # sampling at temperature 2 varies


def test_history_reaches_the_model(llm: OpenAICompatibleLLM) -> None:
    history: list[Message] = [
        {"role": "user", "content": "My name is Zorblax."},
        {"role": "assistant", "content": "Nice to meet you, Zorblax."},
    ]
    question: Message = {"role": "user", "content": "What is my name?"}
    without = llm.generate([question], GREEDY)
    with_history = llm.generate([*history, question], GREEDY)
    assert with_history != without
    assert "Zorblax" in with_history and "Zorblax" not in without


def test_a_wrong_api_key_is_a_clear_error(server: LlamaServer) -> None:
    for key in ("sk-wrong", None):
        llm = OpenAICompatibleLLM(server.base_url, model=ALIAS, api_key=key, timeout=60, retries=2, backoff=0.01)
        with pytest.raises(LLMError, match=r"answered 401: .*[Ii]nvalid API key"):
            llm.generate(COLOURS, GREEDY)


def test_a_prompt_beyond_the_context_window_is_an_error_not_an_empty_answer(llm: OpenAICompatibleLLM) -> None:
    # llama-cpp-python answers 200 and then ends the stream without an event (the reason is only in its log).
    too_long: list[Message] = [{"role": "user", "content": "bridge " * 3000}]
    with pytest.raises(LLMError, match=r"ended the reply early"):
        llm.generate(too_long, GREEDY)
    assert llm.generate(COLOURS, GREEDY).strip()  # and the server still serves


def test_a_slow_server_times_out(server: LlamaServer, llm: OpenAICompatibleLLM) -> None:
    # The server reads ~50 prompt tokens before the first one comes: far more than 50 ms on a CPU (about 1-3 s
    # here), and short enough that the abandoned request does not hold the server up for long.
    impatient = OpenAICompatibleLLM(server.base_url, model=ALIAS, api_key=API_KEY, timeout=0.05, retries=3)
    started = time.perf_counter()
    with pytest.raises(LLMError, match="timed out"):
        impatient.generate([{"role": "user", "content": "bridge " * 40}], GREEDY)
    assert time.perf_counter() - started < 2  # a read timeout is not retried
    assert llm.generate(COLOURS, GREEDY).strip()  # the abandoned request does not wedge the server


def test_a_server_still_starting_is_retried_until_it_answers(tmp_path: Path) -> None:
    require_llama_cpp()
    starting = LlamaServer(tmp_path / "server.log").start()
    try:
        assert refuses_connections(starting.port)  # the model is still loading: nothing listens yet
        with pytest.raises(LLMError, match="cannot reach the LLM server"):
            OpenAICompatibleLLM(starting.base_url, model=ALIAS, api_key=API_KEY, retries=0).generate(COLOURS, GREEDY)
        # 0.25 s doubling six times waits up to ~16 s in all, far more than the server needs to start.
        patient = OpenAICompatibleLLM(
            starting.base_url, model=ALIAS, api_key=API_KEY, timeout=60, retries=6, backoff=0.25
        )
        assert patient.generate(COLOURS, GREEDY).strip()
    finally:
        starting.stop()


def test_the_whole_pipeline_answers_through_the_server(
    server: LlamaServer, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray rag-kb.toml
    settings = Settings(
        data_dir=tmp_path / "data",
        llm_backend="openai",
        llm_url=server.base_url,
        llm_api_key=API_KEY,
        llm_max_tokens=60,
        llm_temperature=0,
    )
    engine = Engine(settings)
    engine.embedder = embedder
    engine.knowledge_bases.add_text("bridge", "bridge.txt", ENGLISH_HISTORY)

    *pieces, answer = list(engine.answerer.stream("bridge", "Who designed the Meridian Bridge?"))
    assert isinstance(answer, Answer) and answer.generator == "openai"
    assert len(pieces) > 1 and all(isinstance(p, str) for p in pieces)  # streamed from the server
    sources = answer.sources
    assert sources and any("Agnes Holloway" in s.snippet for s in sources)
    assert all(int(n) <= len(sources) for n in re.findall(r"\[(\d+)\]", answer.answer))
    if not answer.answerable:
        assert answer.answer == REFUSAL["en"]
        return
    kept = split_cited_sentences(answer.answer)
    assert kept and {c.n for c in answer.citations} <= {s.n for s in sources}
    for sentence, markers in kept:
        assert markers and all(1 <= n <= len(sources) for n in markers), sentence
        threshold = engine.answerer.support_threshold
        assert all(support(sentence, sources[n - 1].snippet) >= threshold for n in markers), sentence
