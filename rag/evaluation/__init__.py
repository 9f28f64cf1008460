"""Measuring rag-kb: ``rag eval`` runs a corpus and its questions through the real retriever and answerer.

``dataset`` reads the files, ``runner`` ingests and asks, ``metrics`` scores (pure functions),
``report`` sums up into the JSON report, ``baseline`` is the classic LangChain pipeline beside it.
"""

from rag.evaluation.dataset import DatasetError, Passage, Query, read_corpus, read_queries
from rag.evaluation.report import summarize
from rag.evaluation.runner import CorpusIngest, Evaluator, QueryResult, corpus_label, default_kb_name

__all__ = [
    "CorpusIngest",
    "DatasetError",
    "Evaluator",
    "Passage",
    "Query",
    "QueryResult",
    "corpus_label",
    "default_kb_name",
    "read_corpus",
    "read_queries",
    "summarize",
]
