"""Everything a face needs, built once from :class:`Settings`: stores, knowledge bases, answerer."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

from ingest.splitter import ChineseRecursiveSplitter
from rag.answerer import Answerer
from rag.conversation import QuestionResolver
from rag.generators import ExtractiveGenerator, Generator, LLMGenerator
from rag.ingest_jobs import IngestJobs
from rag.knowledge_base import KnowledgeBaseError, KnowledgeBases
from rag.llms.base import LLM, GenerationOptions
from rag.llms.registry import backend
from rag.retrieval import HybridRetriever
from rag.settings import Settings
from stores import Catalog, ChromaVectorStore, Embedder, KeywordIndex
from stores.write_lock import WriteLock


def build_llm(settings: Settings) -> LLM:
    """The LLM backend the settings name, built by its registry entry (not for ``extractive``, which uses none)."""
    spec = backend(settings.llm_backend)
    if spec.build is None:
        raise ValueError(f"{spec.name!r} is not an LLM backend: it uses no model")
    return spec.build(settings)


class Engine:
    """rag-kb assembled: parts are built on first use, so ``rag kb list`` never loads a model.

    Usage::

        engine = Engine(Settings())
        engine.knowledge_bases.ingest("demo", [Path("handbook.pdf")])
        print(engine.answerer.run("demo", "How many days of leave?").answer)
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.settings.data_dir / "catalog.sqlite")

    @cached_property
    def keywords(self) -> KeywordIndex:
        s = self.settings
        return KeywordIndex(s.data_dir / "keyword.sqlite", k1=s.bm25_k1, b=s.bm25_b)

    @cached_property
    def vectors(self) -> ChromaVectorStore:
        if self.settings.chroma_url:
            return ChromaVectorStore(url=self.settings.chroma_url, collection_of=self.catalog.collection)
        return ChromaVectorStore(
            path=self.settings.data_dir / "chroma",
            collection_of=self.catalog.collection,
            written_elsewhere=self.catalog.generation,
        )

    @cached_property
    def embedder(self) -> Embedder:
        s = self.settings
        return Embedder(
            s.embedder_model,
            s.embedder_device,
            s.embedder_batch_size,
            s.embedder_languages,
            s.embedder_query_prefix,
            s.embedder_document_prefix,
            runtime=s.embedder_runtime,
            cache_dir=s.embedder_cache(),
            url=s.embedder_url,
            api_key=s.embedder_api_key,
            input_type=s.embedder_input_type,
        )

    @cached_property
    def splitter(self) -> ChineseRecursiveSplitter:
        s = self.settings
        if s.chunk_unit == "tokens":
            tokenizer = self.embedder.model.tokenizer
            return ChineseRecursiveSplitter(s.chunk_size, s.chunk_overlap, lambda t: len(tokenizer.tokenize(t)))
        return ChineseRecursiveSplitter(s.chunk_size, s.chunk_overlap)

    @cached_property
    def knowledge_bases(self) -> KnowledgeBases:
        return KnowledgeBases(
            self.catalog,
            self.vectors,
            self.keywords,
            self.embedder,
            self.splitter,
            max_file_bytes=int(self.settings.max_file_mb * 2**20),
            write_lock=WriteLock(self.settings.data_dir / "write.lock"),
            share_template_vectors=self.settings.share_template_vectors,
            budget=self.settings.parse_budget(),
        )

    @cached_property
    def retriever(self) -> HybridRetriever:
        return HybridRetriever(self.embedder, self.vectors, self.keywords, self.catalog, self.settings.candidates)

    @cached_property
    def generator(self) -> Generator:
        if backend(self.settings.llm_backend).build is None:
            return ExtractiveGenerator()
        s = self.settings
        return LLMGenerator(build_llm(s), GenerationOptions(s.llm_max_tokens, s.llm_temperature, s.llm_top_p))

    @cached_property
    def ingest_jobs(self) -> IngestJobs:
        return IngestJobs(self.knowledge_bases, self.settings.data_dir / "jobs.sqlite")

    @cached_property
    def answerer(self) -> Answerer:
        s = self.settings
        # With an LLM, follow-ups are condensed by it; without one, rewritten deterministically.
        resolver = QuestionResolver(self.generator.llm) if isinstance(self.generator, LLMGenerator) else None
        return Answerer(self.retriever, self.generator, s.top_k, s.min_relevance, s.support_threshold, resolver)

    def knowledge_base_for(
        self, kb: str | None, creating: bool = False, visible: Callable[[str], bool] | None = None
    ) -> str:
        """The knowledge base a request means: ``kb`` when named, else the setting ``default_kb``, else the only
        knowledge base there is (``creating``: else ``"default"``, which ingesting creates). ``visible``: only the
        knowledge bases it admits are counted or named (a caller's key never learns of the others).

        Raises ``KnowledgeBaseError`` with what to do when that leaves none or several to choose from.
        """
        if kb is not None:  # named, even if badly: the name is checked where it is used
            return kb
        if self.settings.default_kb:
            return self.settings.default_kb
        names = [record.name for record in self.knowledge_bases.list() if visible is None or visible(record.name)]
        if len(names) == 1:
            return names[0]
        if not names and creating:
            return "default"
        if not names:
            raise KnowledgeBaseError("there is no knowledge base yet: ingest into one first (--kb NAME)")
        raise KnowledgeBaseError(
            f"which knowledge base? there are {len(names)} ({', '.join(sorted(names)[:5])}"
            f"{', …' if len(names) > 5 else ''}): name one (--kb NAME, ?kb=NAME) or set RAG_DEFAULT_KB"
        )
