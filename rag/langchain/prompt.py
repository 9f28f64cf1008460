"""rag-kb's citation-forcing prompt for LangChain chains, and Documents formatted as its numbered sources."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate

from ingest.chunk import Chunk
from rag.prompts import REFUSAL, SYSTEM_PROMPT, USER_PROMPT, format_sources
from stores.hit import Hit


def citation_prompt(language: str = "en") -> ChatPromptTemplate:
    """The answerer's prompt (rules, numbered sources, question) with the inputs ``sources`` and ``question``.

    Usage::

        chain = {"sources": retriever | format_documents, "question": RunnablePassthrough()} | citation_prompt("zh")
    """
    if language not in SYSTEM_PROMPT:
        raise ValueError(f"no prompt for the language {language!r}; use one of {sorted(SYSTEM_PROMPT)}")
    template = ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT[language]), ("human", USER_PROMPT[language])])
    return template.partial(refusal=REFUSAL[language])


def format_documents(documents: Sequence[Document]) -> str:
    """Documents as numbered, fenced sources (``<source n="1" title="…">…</source>``), in their order,
    so that ``[n]`` in an answer is ``metadata["n"]`` of a :class:`KnowledgeBaseRetriever` document.

    Usage::

        context = format_documents(retriever.invoke("年假有几天？"))
    """
    # Rebuilt as hits so the fencing (and its escaping) is the prompt module's, not a second copy.
    hits = [
        Hit(Chunk(doc.id or "", "", i, doc.page_content, 0, len(doc.page_content), _named(doc)), 0.0)
        for i, doc in enumerate(documents)
    ]
    return format_sources(hits)


def _named(doc: Document) -> dict[str, str]:
    return {"title": str(doc.metadata.get("title") or ""), "source": str(doc.metadata.get("source") or "")}
