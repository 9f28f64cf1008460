"""Running an evaluation: the corpus into a knowledge base, every question through the real answerer."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.document import LoadedDocument, Section
from rag.answerer import Answerer
from rag.evaluation.dataset import Passage, Query
from rag.evaluation.metrics import (
    CitationCounts,
    answer_scores,
    contains_answer,
    count_citations,
    passage_ranking,
    without_markers,
)
from rag.knowledge_base import IngestReport, KnowledgeBases, ProgressCallback
from rag.prompts import is_refusal
from rag.relevance import GATE_DEPTH
from rag.retrieval import fetch_chunks
from rag.types import Answer
from stores.hit import Hit

DEPTH = 30  # chunks retrieved to rank passages: enough to find 10 distinct ones


def corpus_label(path: Path) -> str:
    """How a corpus file names its passages' documents: ``folder/file``, so two corpora in one KB stay apart."""
    path = path.resolve()
    return f"{path.parent.name}/{path.name}"


def passage_source(label: str, pid: str) -> str:
    """The document name of passage ``pid`` of the corpus ``label``."""
    return f"{label}#{pid}"


def default_kb_name(corpus: Path) -> str:
    """A KB name of its own for each corpus file: ``eval-<folder>-<hash of the path>``."""
    path = corpus.resolve()
    folder = re.sub(r"[^\w.-]", "_", path.parent.name)[:40]
    return f"eval-{folder}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


@dataclass(frozen=True, slots=True)
class CorpusIngest:
    report: IngestReport
    removed: int
    seconds: float


@dataclass(slots=True)
class QueryResult:
    """What one question got. ``relevance`` is what the refusal compares with its threshold (None: nothing
    retrieved); ``evidence`` whether the chunks the answer rests on hold a reference answer (answerable only)."""

    query: Query
    language: str
    ranking: list[str]
    relevance: float | None
    refused: bool
    evidence: bool | None
    timings: dict[str, float] = field(default_factory=dict)
    answer: str | None = None
    em: float | None = None
    f1: float | None = None
    citations: CitationCounts | None = None
    raw_citations: CitationCounts | None = None
    right: bool | None = None  # answered with a reference answer (or, unanswerable, refused)
    items_found: float | None = None  # list questions: share of the items the answer names


class Evaluator:
    """Puts a corpus into a knowledge base and runs questions through its retriever and answerer.

    Without generation a question is retrieved and passed through the answerer's refusal gate only;
    with it, the answerer runs whole (retrieve, generate, verify citations) as ``rag ask`` does.
    Passages are ranked from a retrieval of ``depth`` chunks; the answer rests on the first ``top_k``.

    Usage::

        evaluator = Evaluator(engine.knowledge_bases, engine.answerer)
        evaluator.ingest("eval-zh", Path("corpus.jsonl"), read_corpus(Path("corpus.jsonl")))
        results = evaluator.run("eval-zh", corpus_label(Path("corpus.jsonl")), queries, generate=False)
    """

    def __init__(
        self, knowledge_bases: KnowledgeBases, answerer: Answerer, top_k: int | None = None, depth: int = DEPTH
    ) -> None:
        self.top_k = top_k or answerer.top_k
        if self.top_k < 1 or depth < 1:
            raise ValueError("top_k and depth must be at least 1")
        self.knowledge_bases = knowledge_bases
        self.answerer = answerer
        self.depth = max(depth, self.top_k)

    def ingest(
        self, kb: str, corpus: Path, passages: Sequence[Passage], progress: ProgressCallback | None = None
    ) -> CorpusIngest:
        """One document per passage, unless the KB already holds it unchanged; passages gone from the corpus go."""
        started = time.perf_counter()
        label = corpus_label(corpus)
        documents = [
            LoadedDocument(
                source=passage_source(label, p.pid),
                title=p.title or p.pid,
                sections=[Section(p.text)],
                metadata={"pid": p.pid, "lang": p.lang} if p.lang else {"pid": p.pid},
            )
            for p in passages
        ]
        report = self.knowledge_bases.add_documents(kb, documents, progress)
        current = {d.source for d in documents}
        stale = [
            r.doc_id
            for r in self.knowledge_bases.documents(kb)
            if r.source.startswith(f"{label}#") and r.source not in current
        ]
        for doc_id in stale:
            self.knowledge_bases.delete_document(kb, doc_id)
        return CorpusIngest(report, len(stale), time.perf_counter() - started)

    def run(
        self,
        kb: str,
        label: str,
        queries: Sequence[Query],
        generate: bool,
        on_question: Callable[[], None] | None = None,
    ) -> list[QueryResult]:
        if queries:  # untimed: the first search loads the keyword index and the embedder
            self.answerer.retriever.run(kb, queries[0].question, self.depth)
        results = []
        for query in queries:
            results.append(self.ask(kb, label, query, generate))
            if on_question:
                on_question()
        return results

    def ask(self, kb: str, label: str, query: Query, generate: bool) -> QueryResult:
        started = time.perf_counter()
        question = self.answerer.resolver.resolve(query.question, query.history)  # a follow-up made standalone
        retrieval = self.answerer.retriever.run(kb, question, self.depth)
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        hits = retrieval.hits
        top = hits[: self.top_k]  # what the answerer retrieves for itself: the same ranking, cut shorter
        gated = hits[: max(self.top_k, GATE_DEPTH)]  # what its relevance gate reads
        result = QueryResult(
            query=query,
            language=retrieval.language,
            ranking=passage_ranking([_passage_of(h) for h in hits]),
            relevance=self.answerer.relevance(gated) if gated else None,
            refused=self.answerer.refuses(gated),
            evidence=contains_answer([h.chunk.text for h in top], query.answers) if query.answerable else None,
            timings={"retrieve": elapsed},
        )
        if generate:
            self._answer(kb, query, hits, result)
        self._score(result)
        return result

    @staticmethod
    def _score(result: QueryResult) -> None:
        query = result.query
        if not query.answerable:
            result.right = result.refused
            return
        if result.answer is None:  # the gate alone: answered, with the answer among the passages it rests on
            result.right = not result.refused and bool(result.evidence)
            return
        text = without_markers(result.answer)
        if query.items:
            result.items_found = sum(contains_answer([text], [item]) for item in query.items) / len(query.items)
            result.right = not result.refused and result.items_found >= 0.5
        else:
            result.right = not result.refused and contains_answer([text], query.answers)

    def _answer(self, kb: str, query: Query, hits: list[Hit], result: QueryResult) -> None:
        streamed: list[str] = []
        answer: Answer | None = None
        for event in self.answerer.stream(kb, query.question, query.history, top_k=self.top_k):
            if isinstance(event, Answer):
                answer = event
            else:
                streamed.append(event)
        assert answer is not None
        texts = self._texts(kb, hits, [s.chunk_id for s in answer.sources])
        result.refused = not answer.answerable
        result.timings = dict(answer.timings)
        result.answer = answer.answer
        if query.answerable:
            result.evidence = contains_answer([texts[c.chunk_id] for c in answer.citations], query.answers)
            prediction = "" if result.refused else without_markers(answer.answer)
            result.em, result.f1 = answer_scores(prediction, query.answers, result.language)
        sources = [texts[s.chunk_id] for s in answer.sources]
        threshold = self.answerer.support_threshold
        if answer.answerable:
            result.citations = count_citations(answer.answer, sources, threshold)
        raw = "".join(streamed)
        if "generate" in answer.timings and not is_refusal(raw):  # the generator wrote an answer of its own
            result.raw_citations = count_citations(raw, sources, threshold)

    def _texts(self, kb: str, hits: list[Hit], chunk_ids: list[str]) -> dict[str, str]:
        """Whole chunk texts (citations carry snippets only), from the hits or else the stores."""
        texts = {h.chunk.id: h.chunk.text for h in hits}
        missing = [c for c in chunk_ids if c not in texts]
        if missing:
            kbs = self.knowledge_bases
            texts.update({i: c.text for i, c in fetch_chunks(kbs.vectors, kbs.keywords, kb, missing).items()})
        return texts


def _passage_of(hit: Hit) -> str:
    """The passage a chunk was cut from: its document's name (another document's chunk is its own passage)."""
    return str(hit.chunk.metadata.get("source") or hit.chunk.doc_id)
