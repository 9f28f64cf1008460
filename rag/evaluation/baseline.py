"""The baseline beside rag-kb: the classic LangChain pipeline, as its users write it.

Passages become LangChain ``Document``s, ``RecursiveCharacterTextSplitter(chunk_size=1000,
chunk_overlap=0)`` cuts them, the same embedder (the bundled all-MiniLM-L6-v2 through
sentence-transformers) embeds them into an in-memory Chroma through ``langchain-chroma``, and a
question gets the top-k of ``similarity_search``: no keyword side, no language awareness, no refusal.
It needs the ``bench`` extra (``pip install 'rag-kb[bench]'``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from rag.evaluation.dataset import Passage, Query
from rag.evaluation.metrics import contains_answer, mean, passage_ranking, percentiles, retrieval_scores
from rag.evaluation.runner import DEPTH
from rag.langchain.embeddings import RagEmbeddings
from stores.embedder import Embedder


class LangChainBaseline:
    """Load, split (1000, 0), embed, Chroma, top-k similarity.

    Usage::

        baseline = LangChainBaseline(Embedder())
        baseline.index(read_corpus(Path("corpus.jsonl")))
        documents = baseline.search("In what country is Normandy located?", k=4)
        baseline.close()
    """

    def __init__(self, embedder: Embedder, chunk_size: int = 1000, chunk_overlap: int = 0) -> None:
        try:
            from langchain_chroma import Chroma
            from langchain_text_splitters import RecursiveCharacterTextSplitter
        except ImportError as error:
            raise RuntimeError(f"the LangChain baseline needs {error.name}: pip install 'rag-kb[bench]'") from error
        from chromadb.config import Settings

        self.splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        self.store = Chroma(
            collection_name=f"baseline-{uuid.uuid4().hex}",  # in-memory; a fresh collection per run
            embedding_function=RagEmbeddings(embedder),
            client_settings=Settings(anonymized_telemetry=False),
        )
        self.chunks = 0

    def index(self, passages: Sequence[Passage]) -> int:
        """Split and store the passages; returns the number of chunks."""
        from langchain_core.documents import Document

        documents = [Document(p.text, metadata={"pid": p.pid, "title": p.title, "lang": p.lang}) for p in passages]
        chunks = self.splitter.split_documents(documents)
        self.store.add_documents(chunks)
        self.chunks += len(chunks)
        return len(chunks)

    def search(self, question: str, k: int) -> list[Any]:
        """The ``k`` most similar chunks (LangChain ``Document``s, ``metadata["pid"]`` their passage)."""
        return self.store.similarity_search(question, k=k)

    def close(self) -> None:
        self.store.delete_collection()


def evaluate_baseline(
    embedder: Embedder,
    passages: Sequence[Passage],
    queries: Sequence[Query],
    top_k: int,
    depth: int = DEPTH,
    on_question: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The baseline's retrieval scores on ``queries`` (answerable ones), with its indexing and search times.

    As for rag-kb, passages are ranked from ``depth`` chunks and the evidence is the first ``top_k``.
    """
    baseline = LangChainBaseline(embedder)
    try:
        started = time.perf_counter()
        chunks = baseline.index(passages)
        index_seconds = time.perf_counter() - started
        if queries:
            baseline.search(queries[0].question, top_k)  # untimed warm-up, as for rag-kb
        rankings, golds, evidence, times = [], [], [], []
        for query in queries:
            started = time.perf_counter()
            documents = baseline.search(query.question, max(depth, top_k))
            times.append((time.perf_counter() - started) * 1000)
            if query.answerable and query.gold_pid:
                rankings.append(passage_ranking([str(d.metadata.get("pid")) for d in documents]))
                golds.append(query.gold_pid)
                evidence.append(contains_answer([d.page_content for d in documents[:top_k]], query.answers))
            if on_question:
                on_question()
    finally:
        baseline.close()
    return {
        **retrieval_scores(rankings, golds),
        "contains_answer": mean(evidence),
        "chunks": chunks,
        "ingest_s": round(index_seconds, 2),
        "latency_ms": {"retrieve": percentiles(times)},
    }
