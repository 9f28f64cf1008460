"""Any OpenAI-compatible chat server: how ChatGLM2 is served by vLLM, FastChat, chatglm.cpp or Ollama."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence

import httpx

from rag.llms.base import LLM, GenerationOptions, LLMError, Message, fold_system

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class OpenAICompatibleLLM(LLM):
    """Chat completions over HTTP, streamed (server-sent events).

    A refused or dropped connection or a retryable status (``RETRYABLE_STATUS``) is tried again ``retries``
    times, waiting ``backoff * 2**attempt`` seconds in between; nothing is retried once text has come.
    ``timeout`` bounds the connection and each wait for the next piece, not the whole reply. A stream that
    ends with neither ``[DONE]`` nor a ``finish_reason`` (how llama-cpp-python reports a prompt longer than
    its context) is an error, not an empty answer. ``fold_system`` puts the system text in front of the
    first user message, for servers whose ChatGLM2 template drops system messages (vLLM's
    ``template_chatglm2.jinja``, chatglm.cpp).

    Usage::

        llm = OpenAICompatibleLLM("http://127.0.0.1:8001/v1", model="chatglm2-6b")
        for token in llm.stream([{"role": "user", "content": "你好"}]):
            print(token, end="")
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 120,
        retries: int = 2,
        backoff: float = 0.5,
        fold_system: bool = False,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL such as http://127.0.0.1:8001/v1, got {base_url!r}")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if backoff < 0:
            raise ValueError("backoff must be >= 0")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries = retries
        self.backoff = backoff
        self.fold_system = fold_system
        self._server_model: str | None = None  # from GET /models, asked once
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10)), headers=headers)

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Iterator[str]:
        options = options or GenerationOptions()
        body = {
            "model": self.model or self._default_model(),
            "messages": fold_system(messages) if self.fold_system else list(messages),
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "stream": True,
        }
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.retries + 1):
            received = False  # whether text has come: from then on nothing is retried
            try:
                with self._client.stream("POST", url, json=body) as response:
                    if response.status_code in RETRYABLE_STATUS and attempt < self.retries:
                        time.sleep(self.backoff * 2**attempt)
                        continue
                    if response.status_code >= 400:
                        response.read()
                        raise LLMError(f"LLM server {url} answered {response.status_code}: {response.text[:500]}")
                    if response.headers.get("content-type", "").startswith("application/json"):
                        response.read()  # a server that ignores "stream": the whole reply as one JSON object
                        yield _message_content(response, url)
                        return
                    for piece in _sse_deltas(response, url):
                        received = True
                        yield piece
                    return
            except (httpx.RemoteProtocolError, httpx.ReadError) as error:
                # Before any text this is mostly a kept-alive connection the server had already closed or reset.
                if attempt < self.retries and not received:
                    time.sleep(self.backoff * 2**attempt)
                    continue
                raise LLMError(f"the LLM server at {self.base_url} failed: {error!r}") from error
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
                    continue
                raise LLMError(f"cannot reach the LLM server at {self.base_url} ({error}); is it running?") from error
            except httpx.TimeoutException as error:
                raise LLMError(f"the LLM server at {self.base_url} timed out ({error})") from error
            except httpx.HTTPError as error:  # e.g. the connection dropped mid-stream
                raise LLMError(f"the LLM server at {self.base_url} failed: {error!r}") from error

    def _default_model(self) -> str:
        """The server's first model, for servers that serve exactly one."""
        if self._server_model is not None:
            return self._server_model
        url = f"{self.base_url}/models"
        try:
            response = self._client.get(url)
        except httpx.TransportError as error:
            raise LLMError(f"cannot reach the LLM server at {self.base_url} ({error}); is it running?") from error
        try:
            response.raise_for_status()
            self._server_model = str(response.json()["data"][0]["id"])
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as error:
            raise LLMError(
                f"no model name set (RAG_LLM_MODEL) and {url} did not list one "
                f"({response.status_code}: {response.text[:200]})"
            ) from error
        return self._server_model


def _message_content(response: httpx.Response, url: str) -> str:
    try:
        event = response.json()
    except ValueError as error:
        raise LLMError(f"LLM server {url} sent malformed JSON: {response.text[:200]}") from error
    if isinstance(event, dict) and "error" in event:
        raise LLMError(f"the LLM server reported an error: {event['error']}")
    try:
        return event["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as error:
        raise LLMError(f"LLM server {url} sent no choices[0].message.content: {response.text[:200]}") from error


def _sse_deltas(response: httpx.Response, url: str) -> Iterator[str]:
    finished = False  # a choice said why it stopped; some servers (chatglm.cpp) never send [DONE]
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except json.JSONDecodeError as error:
            raise LLMError(f"the LLM server sent a malformed event: {data[:200]}") from error
        if not isinstance(event, dict):
            raise LLMError(f"the LLM server sent a malformed event: {data[:200]}")
        if event.get("error"):
            raise LLMError(f"the LLM server reported an error: {event['error']}")
        for choice in event.get("choices") or []:
            delta = (choice.get("delta") or {}).get("content")
            if delta:
                yield delta
            finished = finished or bool(choice.get("finish_reason"))
    if not finished:
        raise LLMError(
            f"the LLM server {url} ended the reply early (no finish_reason, no [DONE]); its log says why "
            "(e.g. a prompt longer than its context window)"
        )
