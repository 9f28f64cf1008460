"""The OpenAI-compatible endpoint against what the official ``openai`` client expects of OpenAI itself:
the error dialect (400 and ``{"error": {"message", "type", "param", "code"}}``), ``stop``, ``max_tokens`` /
``max_completion_tokens`` with ``finish_reason: "length"``, ``usage`` and ``stream_options.include_usage``
for every backend, and a 400 for what rag-kb does not do (``n > 1``, images, tools, ``response_format``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from api.app import create_app
from rag.engine import Engine
from rag.generators import LLMGenerator
from rag.text_limits import count_tokens
from stores import Embedder
from tests.live_server import serving
from tests.test_api_compat import FLIGHTS, make_engine
from tests.test_llms import ScriptedLLM

USER = [{"role": "user", "content": FLIGHTS}]
SUPPORTED = "Economy class is required for flights under six hours [1]. Hotels are reimbursed up to 180 euros [1]."


@pytest.fixture(params=["extractive", "llm"])
def engine(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> Engine:
    """Every backend: the extractive generator, and an LLM (scripted: it writes two supported sentences)."""
    engine = make_engine(tmp_path, embedder, monkeypatch)
    if request.param == "llm":
        engine.generator = LLMGenerator(ScriptedLLM(SUPPORTED))
    return engine


@pytest.fixture
def client(engine: Engine) -> Iterator[openai.OpenAI]:
    with serving(create_app(engine=engine)) as base_url:
        yield openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def complete(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.create(model="kb:policies", **{"messages": USER, **extra})


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
            "messages[0].content",
        ),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"extra_body": {"top_k": 0}}, "top_k"),
    ],
)
def test_bad_or_unsupported_parameters_are_openai_400s(client: openai.OpenAI, extra: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        complete(client, **extra)
    error = caught.value
    assert error.status_code == 400
    body = error.response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error" and body["param"] == param
    assert isinstance(body["code"], str) and body["message"]


def test_an_unknown_model_is_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


def test_a_text_response_format_is_what_it_answers_anyway(client: openai.OpenAI) -> None:
    completion = complete(client, response_format={"type": "text"})
    assert "Economy class" in completion.choices[0].message.content


def test_usage_counts_the_prompt_and_the_answer(client: openai.OpenAI) -> None:
    completion = complete(client)
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens == count_tokens(FLIGHTS)
    assert usage.completion_tokens == count_tokens(completion.choices[0].message.content) > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
def test_a_token_limit_cuts_the_answer_with_finish_reason_length(client: openai.OpenAI, limit: str) -> None:
    completion = complete(client, **{limit: 4})
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "Economy class is required"
    assert completion.usage.completion_tokens == 4
    assert complete(client, max_tokens=500).choices[0].finish_reason == "stop"


def test_stop_ends_the_answer_before_the_sequence(client: openai.OpenAI) -> None:
    completion = complete(client, stop=[" is required", "never there"])
    assert completion.choices[0].message.content == "Economy class"
    assert completion.choices[0].finish_reason == "stop"
    assert complete(client, stop="class").choices[0].message.content == "Economy "


def test_streaming_honours_the_limits_and_reports_usage_last(client: openai.OpenAI) -> None:
    chunks = list(complete(client, stream=True, max_tokens=4, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Economy class is required"
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finished] == ["length"]
    assert finished[0].model_extra["citations"][0]["source"] == "travel.md"
    *_, last = chunks
    assert last.choices == [] and last.usage.completion_tokens == 4
    assert last.usage.total_tokens == last.usage.prompt_tokens + 4
    without = list(complete(client, stream=True, stop=" is"))
    assert all(c.usage is None for c in without)
    assert "".join(c.choices[0].delta.content or "" for c in without) == "Economy class"


class ScriptedLLMWithTokenizer(ScriptedLLM):
    """A scripted LLM whose "tokenizer" counts characters: usage must come from it, not the approximation."""

    def count_tokens(self, text: str) -> int:
        return len(text)


def test_usage_is_counted_with_the_backends_own_tokenizer(tmp_path: Path, embedder: Embedder, monkeypatch) -> None:
    engine = make_engine(tmp_path, embedder, monkeypatch)
    engine.generator = LLMGenerator(ScriptedLLMWithTokenizer(SUPPORTED))
    with serving(create_app(engine=engine)) as base_url:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
        completion = complete(client)
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens == len(FLIGHTS) != count_tokens(FLIGHTS)
    assert usage.completion_tokens == len(completion.choices[0].message.content)
