"""A knowledge base as a LangChain retriever: hybrid retrieval in, ``Document``s with our metadata out."""

from __future__ import annotations

from typing import Any, Self

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import AliasChoices, ConfigDict, Field, model_validator

from rag.knowledge_base import UnknownKnowledgeBase, validate_kb_name
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
    filter language of the stores (``{"page": {"$gte": 3}}``). ``k`` (or ``top_k``) and ``filters`` can be
    given per call: ``retriever.invoke(query, k=1, filters={"format": "osv"})``.

    Usage::

        engine = Engine(Settings())
        retriever = KnowledgeBaseRetriever(retriever=engine.retriever, kb="handbook", top_k=3)
        for doc in retriever.invoke("How many days of annual leave?"):
            print(doc.metadata["n"], doc.metadata["source"], doc.metadata["score"], doc.page_content[:60])
    """

    retriever: HybridRetriever
    kb: str
    top_k: int = Field(4, validation_alias=AliasChoices("top_k", "k"), description="Passages per query (alias k).")
    filters: MetadataFilter | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @model_validator(mode="after")
    def _check(self) -> Self:
        validate_kb_name(self.kb)
        _check_top_k(self.top_k)
        validate_filter(self.filters)
        return self

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        top_k: int | None = None,
        filters: MetadataFilter | None = None,
    ) -> list[Document]:
        """The best passages; ``k`` (LangChain's name) or ``top_k``, and ``filters``, override the retriever's
        own for this call (``retriever.invoke(query, k=1)``)."""
        if k is not None and top_k is not None and k != top_k:
            raise ValueError(f"k={k} and top_k={top_k} disagree: give one")
        count = _check_top_k(next((n for n in (k, top_k) if n is not None), self.top_k))
        validate_filter(filters)
        where = self.filters if filters is None else filters
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
            raise UnknownKnowledgeBase(f"unknown knowledge base {self.kb!r}")
        retrieval = self.retriever.run(self.kb, query, count, where)
        return [to_document(n, hit) for n, hit in enumerate(retrieval.hits, start=1)]


def _check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    return top_k


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
