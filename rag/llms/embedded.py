"""The embedded LLM: a bundled Qwen2.5-Coder-Instruct GGUF through llama.cpp, offline, on the CPU."""

from __future__ import annotations

from pathlib import Path

from rag.llms.bundled_models import DEFAULT_MODEL, assemble, bundled, default_cache_dir
from rag.llms.llama_cpp_chat import LlamaCppLLM


class EmbeddedLLM(LlamaCppLLM):
    """The bundled model (``DEFAULT_MODEL`` unless ``model`` names another of ``BUNDLED``), assembled into
    ``cache_dir`` from its installed parts on first use if ``make install`` has not done it already.

    Usage::

        llm = EmbeddedLLM()
        print(llm.generate([{"role": "user", "content": "吴淞路闸桥是哪一年拆除的？"}]))
    """

    name = "embedded"

    def __init__(
        self,
        model: str | None = None,
        cache_dir: Path | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
    ) -> None:
        self.bundled = bundled(model or DEFAULT_MODEL)
        self.cache_dir = cache_dir or default_cache_dir()
        super().__init__(self.cache_dir / self.bundled.file_name, n_ctx=n_ctx, n_threads=n_threads)

    def model_file(self) -> Path:
        return assemble(self.bundled, self.cache_dir)
