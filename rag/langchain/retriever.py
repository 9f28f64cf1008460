"""A knowledge base as a LangChain retriever: hybrid retrieval in, ``Document``s with our metadata out."""

from __future__ import annotations

from typing import Any, Self

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import model_validator

from rag.knowledge_base import KnowledgeBaseError, validate_kb_name
from rag.retrieval import HybridRetriever
from rag.types import Citation
from stores.hit import Hit
from stores.metadata_filter import MetadataFilter, validate_filter


class KnowledgeBaseRetriever(BaseRetriever):
    """The ``top_k`` best passages of the knowledge base ``kb`` for a query (dense + BM25, fused).

    Each ``Document`` holds the whole chunk text and, in ``metadata``, the citation fields of
    :class:`rag.types.Citation` — ``n`` (rank, from 1), ``doc_id``, ``chunk_id``, ``source``, ``title``,
    ``page``, ``section``, ``start``/``end`` (character offsets in the document), ``score`` (relevance
    in [0, 1]) — the chunk's own metadata (``format``, …), and ``scores``: each retriever's figure
    (``dense``, ``keyword``, ``coverage``) and the ``fused`` rank score. ``filters`` uses the metadata
    filter language of the stores (``{"page": {"$gte": 3}}``).

    Usage::

        engine = Engine(Settings())
        retriever = KnowledgeBaseRetriever(retriever=engine.retriever, kb="handbook", top_k=3)
        for doc in retriever.invoke("How many days of annual leave?"):
            print(doc.metadata["n"], doc.metadata["source"], doc.metadata["score"], doc.page_content[:60])
    """

    retriever: HybridRetriever
    kb: str
    top_k: int = 4
    filters: MetadataFilter | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        validate_kb_name(self.kb)
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        validate_filter(self.filters)
        return self

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        if not isinstance(query, str):
            # The usual slip in a chain: the whole input dict reaches the retriever.
            raise TypeError(
                f"KnowledgeBaseRetriever takes the query as a string, got {type(query).__name__}; in a chain "
                "with a dict input, pick the question first: itemgetter('question') | retriever"
            )
        if not query.strip():
            raise ValueError("the query is empty")
        # Checked per query, not at construction: the knowledge base may be filled after the chain is built.
        if not self.retriever.catalog.has_kb(self.kb):
            raise KnowledgeBaseError(f"unknown knowledge base {self.kb!r}")
        retrieval = self.retriever.run(self.kb, query, self.top_k, self.filters)
        return [to_document(n, hit) for n, hit in enumerate(retrieval.hits, start=1)]


def to_document(n: int, hit: Hit) -> Document:
    """A hit as a LangChain ``Document``; the metadata is the :class:`Citation` mapping, flattened.

    Usage::

        docs = [to_document(n, hit) for n, hit in enumerate(retrieval.hits, start=1)]
    """
    citation = Citation.from_hit(n, hit)
    metadata: dict[str, Any] = {
        **citation.metadata,  # the chunk's other metadata; the citation's own fields win a clash
        **citation.model_dump(exclude={"snippet", "metadata"}),  # the snippet is page_content, whole
        "scores": {**hit.scores, "fused": hit.score},
    }
    return Document(id=hit.chunk.id, page_content=hit.chunk.text, metadata=metadata)
