"""Where chunks live and are found: embedder, Chroma vectors, BM25 keywords, the catalog.

Chunks go in, hits come out. Nothing here reads settings: every store takes its
configuration as constructor arguments.
"""

from stores.catalog import Catalog, DocumentRecord, KnowledgeBaseRecord
from stores.embedder import DEFAULT_EMBEDDER, Embedder
from stores.hit import Hit
from stores.keyword_index import KeywordHit, KeywordIndex
from stores.vector_store import ChromaVectorStore

__all__ = [
    "DEFAULT_EMBEDDER",
    "Catalog",
    "ChromaVectorStore",
    "DocumentRecord",
    "Embedder",
    "Hit",
    "KeywordHit",
    "KeywordIndex",
    "KnowledgeBaseRecord",
]
