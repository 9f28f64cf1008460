"""The LangChain adapters (rag.langchain) in real LCEL chains over a real knowledge base (Chroma + BM25).

The fast tests drive ``RagLLM`` with test doubles of an LLM (``ScriptedLLM`` from test_llms, ``EchoLLM``
here), so that what reached the model and what came back can be checked exactly; the ``slow`` ones run
the embedded SmolLM2 and the README's LangChain example as written.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough
from pydantic import ValidationError

from rag.engine import Engine
from rag.knowledge_base import KnowledgeBaseError
from rag.langchain import (
    KnowledgeBaseRetriever,
    RagEmbeddings,
    RagLLM,
    citation_prompt,
    format_documents,
    to_messages,
)
from rag.llms.base import LLM, GenerationOptions, Message
from rag.llms.embedded import EmbeddedLLM
from rag.prompts import REFUSAL
from rag.settings import Settings
from rag.text_limits import StopSequences
from rag.types import Citation
from stores import Embedder
from tests.conftest import CHINESE_POLICY, ENGLISH_HISTORY, ENGLISH_POLICY
from tests.test_llms import ScriptedLLM

ROOT = Path(__file__).resolve().parent.parent
FLIGHTS = "Which class is required for flights under six hours?"
PASSWORD = "员工密码多久更换一次？"
LEAVE = "How many days of annual leave do new employees get?"
LEAVE_ZH = "新员工每年有多少天年假？"


class EchoLLM(LLM):
    """Test double of an LLM: replies with the last user message, in 5-character pieces, and records the
    messages and options it was sent and whether its stream was closed before the end. A real model does not
    repeat its prompt on demand, and the chain tests must see that the retrieved text really reached it."""

    name = "echo"

    def __init__(self) -> None:
        self.calls: list[tuple[list[Message], GenerationOptions | None]] = []
        self.closed_early = False

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Iterator[str]:
        self.calls.append(([dict(m) for m in messages], options))
        reply = messages[-1]["content"]
        finished = False
        try:
            for start in range(0, len(reply), 5):
                yield reply[start : start + 5]
            finished = True
        finally:
            self.closed_early = not finished


def format_docs(docs: Sequence[Document]) -> str:
    """The classic LangChain helper: the passages' text, one after another."""
    return "\n\n".join(doc.page_content for doc in docs)


@pytest.fixture(scope="module")
def kb_engine(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Engine:
    """KB "policies" (the English and Chinese test documents) and KB "samples" (the repo's samples/)."""
    root = tmp_path_factory.mktemp("langchain")
    docs = root / "docs"
    docs.mkdir()
    texts = {"travel.md": ENGLISH_POLICY, "security.md": CHINESE_POLICY, "bridge.txt": ENGLISH_HISTORY}
    for name, text in texts.items():
        (docs / name).write_text(text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # no stray rag-kb.toml from the working directory
        engine = Engine(Settings(data_dir=root / "data"))
    engine.embedder = embedder
    assert not engine.knowledge_bases.ingest("policies", [docs]).failed
    assert not engine.knowledge_bases.ingest("samples", [ROOT / "samples"]).failed
    return engine


def retriever_of(engine: Engine, kb: str, **kwargs: Any) -> KnowledgeBaseRetriever:
    return KnowledgeBaseRetriever(retriever=engine.retriever, kb=kb, **kwargs)


# --------------------------------------------------------------------------------------------------
# RagLLM


def test_messages_become_our_roles_with_text_content() -> None:
    messages = [
        SystemMessage("Answer from the sources."),
        HumanMessage("What is rag-kb?"),
        AIMessage("A question-answering tool."),
        ChatMessage(role="user", content="Does it cite sources?"),
        HumanMessage(content=[{"type": "text", "text": "Two "}, "blocks"]),
        AIMessageChunk(content="a chunk"),
    ]
    assert to_messages(messages) == [
        {"role": "system", "content": "Answer from the sources."},
        {"role": "user", "content": "What is rag-kb?"},
        {"role": "assistant", "content": "A question-answering tool."},
        {"role": "user", "content": "Does it cite sources?"},
        {"role": "user", "content": "Two blocks"},
        {"role": "assistant", "content": "a chunk"},
    ]


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([], "no messages"),
        ([ToolMessage("42", tool_call_id="call-1")], "got a 'tool' message"),
        ([ChatMessage(role="critic", content="meh")], "got a 'critic' message"),
        ([HumanMessage(content=[{"type": "image", "url": "http://x/cat.png"}])], "text only.*'image' block"),
    ],
)
def test_messages_the_backends_cannot_take_are_refused(messages: list, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        to_messages(messages)


def test_rag_llm_streams_the_backends_pieces() -> None:
    reply = "Economy class is required for flights under six hours [1]."
    scripted = ScriptedLLM(reply)
    llm = RagLLM(llm=scripted)
    chunks = list(llm.stream(FLIGHTS))
    pieces = [reply[i : i + 7] for i in range(0, len(reply), 7)]
    assert [c.content for c in chunks] == [*pieces, ""]  # the backend's pieces as they came, then the last chunk
    assert chunks[-1].chunk_position == "last"
    assert chunks[-1].response_metadata["backend"] == "scripted"
    ((messages, options),) = scripted.calls
    assert messages == [{"role": "user", "content": FLIGHTS}]  # a plain string is one human message
    assert options == GenerationOptions()


def test_rag_llm_passes_history_and_options_per_call_and_bound() -> None:
    scripted = ScriptedLLM("First.", "Second.", "Third.")
    llm = RagLLM(llm=scripted, max_tokens=32, temperature=0, top_p=0.5)
    history = [("system", "Be brief."), ("human", "Hi"), ("ai", "Hello."), ("human", FLIGHTS)]
    assert llm.invoke(history).content == "First."
    assert llm.invoke(history, max_tokens=8).content == "Second."
    assert llm.bind(temperature=0.7, top_p=1.0).invoke(history).content == "Third."
    assert [options for _, options in scripted.calls] == [
        GenerationOptions(32, 0.0, 0.5),
        GenerationOptions(8, 0.0, 0.5),
        GenerationOptions(32, 0.7, 1.0),
    ]
    assert [m["role"] for m in scripted.calls[0][0]] == ["system", "user", "assistant", "user"]
    assert llm._identifying_params == {
        "backend": "scripted", "max_tokens": 32, "temperature": 0.0, "top_p": 0.5, "stop": None
    }
    assert llm._llm_type == "rag-kb"


def test_rag_llm_refuses_bad_options() -> None:
    with pytest.raises(ValidationError, match="max_tokens must be a positive integer"):
        RagLLM(llm=ScriptedLLM("x"), max_tokens=0)
    with pytest.raises(ValidationError, match="temperature must be in"):
        RagLLM(llm=ScriptedLLM("x"), temperature=3)
    with pytest.raises(ValidationError):
        RagLLM(llm="not an LLM")
    llm = RagLLM(llm=ScriptedLLM("x"))
    with pytest.raises(TypeError, match="does not take tools; per-call options are max_tokens, temperature, top_p"):
        llm.invoke("hi", tools=[])
    with pytest.raises(ValueError, match="top_p must be in"):
        llm.invoke("hi", top_p=0)


def test_rag_llm_cuts_the_reply_at_a_stop_sequence_and_closes_the_backend_stream() -> None:
    echo = EchoLLM()
    llm = RagLLM(llm=echo)
    # 5-character pieces split "\nQuestion:" across three of them: it must still be found, and not leak.
    text = "Fifteen days [1].\nQuestion: and after five years?"
    chunks = list(llm.stream(text, stop=["\nQuestion:", "never"]))
    assert "".join(c.content for c in chunks) == "Fifteen days [1]."
    assert echo.closed_early  # a local model stops generating here
    answer = llm.invoke(text, stop=["\nQuestion:"])
    assert answer.content == "Fifteen days [1]."
    assert answer.response_metadata["stop_sequence"] == "\nQuestion:"
    assert llm.invoke("No stop here.", stop=["\nQuestion:"]).content == "No stop here."
    assert not echo.closed_early


@pytest.mark.parametrize(
    ("stop", "pieces", "out", "matched"),
    [
        (["\nQ:"], ["Yes.\n", "Q", ": more"], ["Yes.", "", ""], "\nQ:"),
        (["\nQ:"], ["Yes.\n", "Quite"], ["Yes.", "\nQuite"], None),  # held back, then released
        (["END", "##"], ["a#", "b##c", "END"], ["a", "#b", ""], "##"),  # "#" may begin "##"
        ([""], ["kept"], ["kept"], None),  # an empty stop sequence would cut everything: ignored
        ("\n", ["one\ntwo"], ["one"], "\n"),  # one string, not its characters
    ],
)
def test_stop_sequences(stop: Any, pieces: list[str], out: list[str], matched: str | None) -> None:
    cutter = StopSequences(stop)
    assert [cutter.feed(p) for p in pieces] == out
    assert cutter.matched == matched


def test_stop_sequences_flush_what_was_held_back() -> None:
    cutter = StopSequences(["</answer>"])
    assert cutter.feed("done </ans") == "done "
    assert cutter.flush() == "</ans"
    with pytest.raises(TypeError, match="must be strings"):
        StopSequences([1])


def test_rag_llm_reports_tokens_to_callbacks_and_works_async() -> None:
    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            self.tokens.append(token)

    reply = "Hotels are reimbursed up to 180 euros per night."
    handler = Tokens()
    llm = RagLLM(llm=ScriptedLLM(reply))
    assert llm.invoke("hotels?", config={"callbacks": [handler]}).content == reply
    assert len(handler.tokens) > 1 and "".join(handler.tokens) == reply

    async def both() -> tuple[str, list[str]]:
        whole = await llm.ainvoke("hotels?")
        pieces = [chunk.content async for chunk in llm.astream("hotels?")]
        return str(whole.content), pieces

    whole, pieces = asyncio.run(both())
    assert whole == reply and "".join(pieces) == reply and len(pieces) > 2


def test_rag_llm_gives_an_empty_reply_as_an_empty_message() -> None:
    assert RagLLM(llm=ScriptedLLM("")).invoke("hi").content == ""
    assert RagLLM(llm=EchoLLM()).invoke("STOP now", stop=["STOP"]).content == ""


# --------------------------------------------------------------------------------------------------
# KnowledgeBaseRetriever


def test_retriever_puts_the_right_english_passage_first_with_our_metadata(kb_engine: Engine) -> None:
    docs = retriever_of(kb_engine, "policies", top_k=3).invoke(FLIGHTS)
    assert 1 <= len(docs) <= 3
    first = docs[0]
    assert "Economy class is required for flights under six hours." in first.page_content
    meta = first.metadata
    assert meta["source"].endswith("travel.md") and meta["title"] == "Travel policy"
    assert "Flights" in meta["section"] and meta["page"] is None and meta["format"] == "md"
    assert first.id == meta["chunk_id"] and meta["chunk_id"].startswith(meta["doc_id"])
    assert meta["end"] - meta["start"] == len(first.page_content)
    assert [d.metadata["n"] for d in docs] == list(range(1, len(docs) + 1))
    assert all(0 <= d.metadata["score"] <= 1 for d in docs) and meta["score"] >= 0.5
    assert set(meta["scores"]) >= {"dense", "keyword", "coverage", "fused"}
    fused = [d.metadata["scores"]["fused"] for d in docs]
    assert fused == sorted(fused, reverse=True)
    # One mapping: the metadata is what Citation.from_hit says about the same hits.
    hits = kb_engine.retriever.run("policies", FLIGHTS, top_k=3).hits
    for n, (doc, hit) in enumerate(zip(docs, hits, strict=True), start=1):
        citation = Citation.from_hit(n, hit).model_dump(exclude={"snippet", "metadata"})
        assert citation.items() <= doc.metadata.items()
        assert doc.page_content == hit.chunk.text


def test_retriever_finds_the_chinese_passage_by_keywords(kb_engine: Engine) -> None:
    docs = retriever_of(kb_engine, "policies").invoke(PASSWORD)
    first = docs[0]
    assert "员工密码长度不得少于十二位，且必须每九十天更换一次。" in first.page_content
    assert first.metadata["source"].endswith("security.md") and first.metadata["section"].endswith("密码")
    assert "dense" not in first.metadata["scores"]  # MiniLM cannot read Chinese: BM25 alone
    assert first.metadata["score"] >= 0.5


def test_retriever_top_k_and_filters(kb_engine: Engine) -> None:
    assert len(retriever_of(kb_engine, "policies", top_k=1).invoke(FLIGHTS)) == 1
    bridge = next(d.source for d in kb_engine.knowledge_bases.documents("policies") if d.source.endswith("bridge.txt"))
    docs = retriever_of(kb_engine, "policies", filters={"source": bridge}).invoke(FLIGHTS)
    assert docs and {d.metadata["source"] for d in docs} == {bridge}


def test_retriever_takes_k_top_k_and_filters_per_call(kb_engine: Engine) -> None:
    retriever = retriever_of(kb_engine, "policies")
    assert len(retriever.invoke(FLIGHTS)) > 1
    assert len(retriever.invoke(FLIGHTS, k=1)) == 1
    assert len(retriever.invoke(FLIGHTS, top_k=2)) == 2
    assert len(retriever_of(kb_engine, "policies", k=1).invoke(FLIGHTS)) == 1  # LangChain's name in the constructor
    bridge = next(d.source for d in kb_engine.knowledge_bases.documents("policies") if d.source.endswith("bridge.txt"))
    docs = retriever.invoke(FLIGHTS, filters={"source": bridge})
    assert docs and {d.metadata["source"] for d in docs} == {bridge}
    with pytest.raises(ValueError, match="disagree"):
        retriever.invoke(FLIGHTS, k=1, top_k=2)
    with pytest.raises(ValueError, match="positive integer"):
        retriever.invoke(FLIGHTS, k=0)
    with pytest.raises(ValueError, match="unknown filter operator"):
        retriever.invoke(FLIGHTS, filters={"page": {"$near": 3}})


def test_rag_llm_honours_its_constructors_stop_and_refuses_unknown_arguments() -> None:
    llm = RagLLM(llm=EchoLLM(), stop=["\nQuestion:"])
    text = "Fifteen days [1].\nQuestion: and after five years? END more"
    assert llm.invoke(text).content == "Fifteen days [1]."
    assert llm.invoke("a END b", stop=["END"]).content == "a "  # the call's stop is added to the constructor's
    with pytest.raises(ValidationError, match="timeout"):
        RagLLM(llm=EchoLLM(), timeout=30)
    with pytest.raises(ValidationError, match="valid string"):
        RagLLM(llm=EchoLLM(), stop=[1])


def test_rag_llm_reports_usage_metadata() -> None:
    reply = RagLLM(llm=EchoLLM()).invoke([("system", "Be brief."), ("human", "Fifteen days.")])
    assert reply.usage_metadata == {"input_tokens": 6, "output_tokens": 3, "total_tokens": 9}
    assert reply.response_metadata["model_name"] == "echo"
    chunks = list(RagLLM(llm=EchoLLM()).stream("Fifteen days."))
    assert sum(c.usage_metadata["output_tokens"] for c in chunks if c.usage_metadata) == 3


def test_retriever_refuses_bad_settings_and_input(kb_engine: Engine) -> None:
    with pytest.raises(ValidationError, match="invalid knowledge base name"):
        retriever_of(kb_engine, "a/b")
    with pytest.raises(ValidationError, match="top_k must be a positive integer"):
        retriever_of(kb_engine, "policies", top_k=0)
    with pytest.raises(ValidationError, match="unknown filter operator"):
        retriever_of(kb_engine, "policies", filters={"page": {"$near": 3}})
    with pytest.raises(KnowledgeBaseError, match="unknown knowledge base 'nowhere'"):
        retriever_of(kb_engine, "nowhere").invoke(FLIGHTS)
    retriever = retriever_of(kb_engine, "policies")
    with pytest.raises(TypeError, match=r"itemgetter\('question'\) \| retriever"):
        retriever.invoke({"question": FLIGHTS})
    with pytest.raises(ValueError, match="the query is empty"):
        retriever.invoke("  ")


def test_format_documents_numbers_and_fences_the_passages() -> None:
    docs = [
        Document(page_content="Fifteen days.", metadata={"title": "Handbook", "n": 1}),
        Document(page_content="Use <b> tags </source> here.", metadata={"source": "/kb/notes.txt"}),
    ]
    assert format_documents(docs) == (
        '<source n="1" title="Handbook">\nFifteen days.\n</source>\n'
        '<source n="2" title="/kb/notes.txt">\nUse ‹b› tags ‹/source› here.\n</source>'  # cannot close the fence
    )
    assert format_documents([]) == ""


def test_citation_prompt_is_the_answerers_prompt() -> None:
    prompt = citation_prompt("zh")
    assert set(prompt.input_variables) == {"sources", "question"}
    system, user = prompt.invoke({"sources": "S", "question": PASSWORD}).to_messages()
    assert REFUSAL["zh"] in system.content and user.content == f"资料：\nS\n\n问题：{PASSWORD}"
    with pytest.raises(ValueError, match="no prompt for the language 'fr'"):
        citation_prompt("fr")


# --------------------------------------------------------------------------------------------------
# RagEmbeddings


def test_embeddings_are_the_embedders_vectors(embedder: Embedder) -> None:
    texts = ["Hotels are reimbursed up to 180 euros per night.", "The bridge carries two railway tracks."]
    embeddings = RagEmbeddings(embedder)
    vectors = np.array(embeddings.embed_documents(texts))
    assert vectors.shape == (2, embedder.dimension) == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, embedder.embed(texts), atol=1e-6)
    query = np.array(embeddings.embed_query("How much is a hotel night reimbursed?"))
    np.testing.assert_allclose(query, embedder.embed_query("How much is a hotel night reimbursed?"), atol=1e-6)
    assert int(np.argmax(vectors @ query)) == 0
    assert embeddings.embed_documents([]) == []
    with pytest.raises(TypeError, match="list of strings"):
        embeddings.embed_documents("one string")
    with pytest.raises(TypeError, match=r"stores\.Embedder"):
        RagEmbeddings("all-MiniLM-L6-v2")


def test_embeddings_apply_the_embedders_prefixes(embedder: Embedder) -> None:
    prefixed = Embedder(query_prefix="query: ", document_prefix="passage: ")
    prefixed._model = embedder.model  # the same loaded MiniLM; only the prefixes differ
    embeddings = RagEmbeddings(prefixed)
    np.testing.assert_allclose(embeddings.embed_query("hotels"), embedder.embed_query("query: hotels"), atol=1e-6)
    np.testing.assert_allclose(embeddings.embed_documents(["hotels"]), embedder.embed(["passage: hotels"]), atol=1e-6)


# --------------------------------------------------------------------------------------------------
# LCEL chains


def test_lcel_chain_retriever_prompt_llm_parser(kb_engine: Engine) -> None:
    echo = EchoLLM()
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context."), ("human", "Context:\n{context}\n\nWhat does it say?")]
    )
    chain = retriever_of(kb_engine, "policies", top_k=2) | format_docs | prompt | RagLLM(llm=echo) | StrOutputParser()
    answer = chain.invoke(FLIGHTS)
    assert isinstance(answer, str)
    assert "Economy class is required for flights under six hours." in answer  # retrieved text reached the LLM
    assert echo.calls[0][0][0] == {"role": "system", "content": "Answer from the context."}
    pieces = list(chain.stream(FLIGHTS))
    assert len(pieces) > 10 and "".join(pieces) == answer  # streamed through the parser piece by piece


def test_classic_ask_script_shape_over_the_chroma_kb(kb_engine: Engine) -> None:
    """``{"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | llm | parser``."""
    echo = EchoLLM()
    prompt = ChatPromptTemplate.from_template(
        "Use the following pieces of context to answer the question.\n{context}\n\nQuestion: {question}\nAnswer:"
    )
    retriever = retriever_of(kb_engine, "samples", top_k=2)
    chain = (
        RunnableParallel({"context": retriever | format_docs, "question": RunnablePassthrough()})
        | prompt
        | RagLLM(llm=echo, max_tokens=64)
        | StrOutputParser()
    )
    answer = chain.invoke(LEAVE)
    assert "New employees get 15 days of paid annual leave per calendar year." in answer
    assert answer.endswith(f"Question: {LEAVE}\nAnswer:")
    answer_zh = chain.invoke(LEAVE_ZH)
    assert "新员工每个日历年享有十五天带薪年假。" in answer_zh
    assert echo.calls[0][1] == GenerationOptions(max_tokens=64)

    # The same with rag-kb's own prompt; a dict input needs the question picked out for the retriever.
    cited = (
        {"sources": itemgetter("question") | retriever | format_documents, "question": itemgetter("question")}
        | citation_prompt("en")
        | RagLLM(llm=echo)
        | StrOutputParser()
    )
    text = cited.invoke({"question": LEAVE})
    assert text.startswith('Sources:\n<source n="1" title="Northwind Trading Employee Handbook">\n## Annual leave')
    assert echo.calls[-1][0][0]["content"].startswith("You answer questions using only the numbered sources")


def test_chain_batch_runs_each_question(kb_engine: Engine) -> None:
    chain = (
        retriever_of(kb_engine, "policies", top_k=1)
        | RunnableLambda(lambda docs: docs[0].metadata["source"])
    )
    sources = chain.batch([FLIGHTS, PASSWORD, "Who designed the Meridian Bridge?"])
    assert [Path(s).name for s in sources] == ["travel.md", "security.md", "bridge.txt"]


# --------------------------------------------------------------------------------------------------
# The embedded SmolLM2 (real model, CPU) and the README example


@pytest.fixture(scope="module")
def smollm2() -> EmbeddedLLM:
    llm = EmbeddedLLM()
    llm._load()  # once per module: about 16 s
    return llm


@pytest.mark.slow
def test_chain_with_the_embedded_llm_keeps_the_contract(kb_engine: Engine, smollm2: EmbeddedLLM) -> None:
    retriever = retriever_of(kb_engine, "policies", top_k=2)
    llm = RagLLM(llm=smollm2, max_tokens=40, temperature=0)  # greedy: the same text whether streamed or not
    chain = (
        {"sources": retriever | format_documents, "question": RunnablePassthrough()}
        | citation_prompt("en")
        | llm
        | StrOutputParser()
    )
    question = "Who designed the Meridian Bridge?"
    answer = chain.invoke(question)
    assert isinstance(answer, str) and answer.strip()
    pieces = list(chain.stream(question))
    assert len([p for p in pieces if p]) > 1
    assert "".join(pieces) == answer


@pytest.mark.slow
def test_readme_langchain_example_runs_as_written() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## LangChain\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)  # one block
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()
