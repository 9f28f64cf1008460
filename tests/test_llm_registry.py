"""The one registry of LLM backends, and everything that reads it: settings, engine, health check, README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from rag.engine import Engine, build_llm
from rag.generators import ExtractiveGenerator, LLMGenerator
from rag.llms.chatglm_api import ChatGLMApiLLM
from rag.llms.embedded import EmbeddedLLM
from rag.llms.llama_cpp_chat import LlamaCppLLM
from rag.llms.openai_compatible import OpenAICompatibleLLM
from rag.llms.registry import Backend, backend, backends, register
from rag.llms.transformers_chat import TransformersChatLLM
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def settings(tmp_path: Path, **fields: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", llm_cache_dir=tmp_path / "models", **fields)


@pytest.mark.parametrize(
    ("fields", "built"),
    [
        ({"llm_backend": "embedded"}, EmbeddedLLM),
        ({"llm_backend": "llama-cpp", "llm_model": "/models/x.gguf"}, LlamaCppLLM),
        ({"llm_backend": "openai", "llm_url": "http://127.0.0.1:9/v1"}, OpenAICompatibleLLM),
        ({"llm_backend": "chatglm-api", "llm_url": "http://127.0.0.1:9"}, ChatGLMApiLLM),
        ({"llm_backend": "transformers", "llm_model": "/models/qwen"}, TransformersChatLLM),
    ],
)
def test_the_engine_builds_what_the_registry_names(tmp_path: Path, fields: dict, built: type) -> None:
    llm = build_llm(settings(tmp_path, **fields))  # nothing loads or connects until the first question
    assert type(llm) is built
    assert isinstance(Engine(settings(tmp_path, **fields)).generator, LLMGenerator)


def test_extractive_uses_no_model(tmp_path: Path) -> None:
    assert isinstance(Engine(settings(tmp_path)).generator, ExtractiveGenerator)
    with pytest.raises(ValueError, match="uses no model"):
        build_llm(settings(tmp_path))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"llm_backend": "llama-cpp"}, "RAG_LLM_MODEL"),
        ({"llm_backend": "llama-cpp", "llm_model": "/models/qwen"}, r"\.gguf"),
        ({"llm_backend": "embedded", "llm_model": "qwen-72b"}, "not a bundled model"),
        ({"llm_backend": "chatglm-api"}, "RAG_LLM_URL"),
        ({"llm_backend": "nope"}, "extractive, embedded, llama-cpp"),
        ({"llm_context": 100}, "llm_context"),
        ({"llm_threads": 0}, "llm_threads"),
    ],
)
def test_settings_ask_the_registry_what_a_backend_needs(tmp_path: Path, fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(tmp_path, **fields)


def test_a_second_backend_of_one_name_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(Backend("openai", "again"))


def test_a_registered_backend_is_usable_by_name(tmp_path: Path) -> None:
    spec = register(Backend("test-only-echo", "a test's own backend", lambda s: LlamaCppLLM("/x.gguf")))
    try:
        assert backend("test-only-echo") is spec
        assert isinstance(build_llm(settings(tmp_path, llm_backend="test-only-echo")), LlamaCppLLM)
    finally:
        from rag.llms import registry

        del registry._BACKENDS["test-only-echo"]


def test_the_health_check_pings_remote_backends_only(tmp_path: Path, embedder, monkeypatch) -> None:
    from api.app import create_app

    monkeypatch.chdir(tmp_path)
    for name, remote in [("embedded", False), ("chatglm-api", True)]:
        s = settings(tmp_path, llm_backend=name, llm_url="http://127.0.0.1:9")
        engine = Engine(s)
        engine.embedder = embedder
        with TestClient(create_app(engine=engine)) as client:
            llm = client.get("/health/ready").json()["checks"]["llm"]
        assert llm["backend"] == name
        assert ("does not answer" in llm["detail"]) is remote, llm


def test_the_readme_lists_every_backend() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith("| `RAG_LLM_BACKEND`")]
    assert re.findall(r"`([\w-]+)`", row.split("|")[3]) == [b.name for b in backends()]
    for spec in backends():
        assert f"\n- `{spec.name}`" in readme, f"README has no paragraph on the {spec.name} backend"
