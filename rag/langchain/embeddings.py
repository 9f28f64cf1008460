"""Our embedder as LangChain ``Embeddings``, for LangChain vector stores and tools."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from stores.embedder import Embedder


class RagEmbeddings(Embeddings):
    """rag-kb's :class:`~stores.embedder.Embedder`: L2-normalized vectors, the embedder's query and
    document prefixes applied (E5-style models), the bundled all-MiniLM-L6-v2 by default.

    Usage::

        embeddings = RagEmbeddings(engine.embedder)
        vectors = embeddings.embed_documents(["Hotels are reimbursed up to 180 euros."])  # [[384 floats]]
        query = embeddings.embed_query("hotel costs")
    """

    def __init__(self, embedder: Embedder | None = None) -> None:
        if embedder is not None and not isinstance(embedder, Embedder):
            raise TypeError(f"embedder must be a stores.Embedder, got {type(embedder).__name__}")
        self.embedder = embedder or Embedder()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        # A lone string would be embedded character by character.
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("embed_documents takes a list of strings")
        return self.embedder.embed(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        if not isinstance(text, str):
            raise TypeError(f"embed_query takes a string, got {type(text).__name__}")
        return self.embedder.embed_query(text).tolist()
