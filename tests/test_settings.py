from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.engine import Engine
from rag.retrieval import fetch_chunks
from rag.settings import Settings


def test_environment_variables_use_the_rag_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("RAG_TOP_K", "7")
    monkeypatch.setenv("RAG_EMBEDDER_LANGUAGES", '["en", "zh"]')
    settings = Settings()
    assert settings.data_dir == tmp_path / "d" and settings.top_k == 7 and settings.embedder_languages == ["en", "zh"]


def test_config_file_and_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "conf.toml"
    config.write_text('chunk_size = 300\nllm_backend = "openai"\nllm_url = "http://127.0.0.1:8001/v1"\n')
    monkeypatch.setenv("RAG_CONFIG_FILE", str(config))
    monkeypatch.setenv("RAG_CHUNK_SIZE", "400")  # the environment wins over the file
    settings = Settings()
    assert settings.chunk_size == 400 and settings.llm_backend == "openai"


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        Settings()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"llm_backend": "openai"}, "RAG_LLM_URL"),
        ({"llm_backend": "transformers"}, "RAG_LLM_MODEL"),
        ({"chunk_size": 100, "chunk_overlap": 100}, "chunk_overlap"),
        ({"top_k": 0}, "top_k"),
        ({"min_relevance": 1.5}, "min_relevance"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"llm_backend": "chatglm3"}, "llm_backend"),
    ],
)
def test_invalid_settings_say_what_is_wrong(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fields, message) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match=message):
        Settings(**fields)


def test_chunks_measured_in_embedder_tokens(tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = Engine(Settings(data_dir=tmp_path / "d", chunk_unit="tokens", chunk_size=64, chunk_overlap=8))
    engine.embedder = embedder
    text = " ".join(f"Sentence number {i} talks about topic {i * 7}." for i in range(60))
    doc_id, _ = engine.knowledge_bases.add_text("t", "long.txt", text)
    chunks = fetch_chunks(engine.vectors, engine.keywords, "t", sorted(engine.keywords.ids("t", doc_id))).values()
    assert len(chunks) > 3
    assert all(len(embedder.model.tokenizer.tokenize(c.text)) <= 64 for c in chunks)
