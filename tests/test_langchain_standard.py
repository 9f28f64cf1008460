"""LangChain's own standard test suites (``langchain-tests``), subclassed for rag-kb's adapters.

The capability flags say what the adapters really do: text in, text out; no tools, structured output, JSON
mode or images; usage metadata on every reply (counted with the backend's tokenizer where it has one, else
approximately). The chat-model integration suite runs the real SmolLM2-135M (``slow``): what it cannot do
is marked xfail with the reason, everything else must pass.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
)
from langchain_tests.unit_tests import ChatModelUnitTests, EmbeddingsUnitTests

from rag.engine import Engine
from rag.langchain import KnowledgeBaseRetriever, RagEmbeddings, RagLLM
from rag.llms.llama_cpp_chat import LlamaCppLLM
from rag.llms.transformers_chat import smollm2_path
from stores import Embedder


@cache
def smollm2() -> LlamaCppLLM:
    """One SmolLM2-135M GGUF through llama.cpp for every test of the run (it loads on first use, not here)."""
    return LlamaCppLLM(smollm2_path(), n_ctx=2048)


class RagLLMParams:
    @property
    def chat_model_class(self) -> type[RagLLM]:
        return RagLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"llm": smollm2()}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # timeout and max_retries belong to a backend's own constructor (OpenAICompatibleLLM(timeout=...)):
        # RagLLM refuses arguments it would ignore.
        return {"temperature": 0, "max_tokens": 32, "stop": []}  # short replies: SmolLM2 runs on the CPU

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False  # one backend per RagLLM: the model is the llm it wraps


class TestRagLLMUnit(RagLLMParams, ChatModelUnitTests):
    def test_unknown_constructor_arguments_are_refused(self) -> None:
        with pytest.raises(ValueError, match="timeout"):
            RagLLM(llm=smollm2(), timeout=60)


@pytest.mark.slow
class TestRagLLMIntegration(RagLLMParams, ChatModelIntegrationTests):
    pass


class TestRagEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[RagEmbeddings]:
        return RagEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {}  # the bundled all-MiniLM-L6-v2, loaded on first use


class TestRagEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[RagEmbeddings]:
        return RagEmbeddings

    @pytest.fixture
    def model(self, embedder: Embedder) -> RagEmbeddings:
        return RagEmbeddings(embedder)  # the run's shared embedder, not a second copy


class TestKnowledgeBaseRetriever(RetrieversIntegrationTests):
    """LangChain's own name for the count, ``k``, in the constructor and per call."""

    @pytest.fixture(autouse=True)
    def knowledge_base(self, engine: Engine, corpus: Path) -> None:
        assert not engine.knowledge_bases.ingest("t", [corpus]).failed
        self.engine = engine

    @property
    def retriever_constructor(self) -> type[KnowledgeBaseRetriever]:
        return KnowledgeBaseRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": self.engine.retriever, "kb": "t"}

    @property
    def retriever_query_example(self) -> str:
        return "Which class is required for flights under six hours?"


class TestKnowledgeBaseRetrieverTopK(TestKnowledgeBaseRetriever):
    """rag-kb's own name for it, ``top_k``."""

    @property
    def num_results_arg_name(self) -> str:
        return "top_k"
