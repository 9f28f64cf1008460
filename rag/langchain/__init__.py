"""LangChain adapters, built on ``langchain-core`` only: rag-kb's LLMs, retrieval and embedder as LangChain parts.

Usage::

    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.runnables import RunnablePassthrough

    from rag.langchain import KnowledgeBaseRetriever, RagLLM, citation_prompt, format_documents

    retriever = KnowledgeBaseRetriever(retriever=engine.retriever, kb="handbook")
    chain = (
        {"sources": retriever | format_documents, "question": RunnablePassthrough()}
        | citation_prompt("en")
        | RagLLM(llm=EmbeddedLLM())
        | StrOutputParser()
    )
    print(chain.invoke("How many days of annual leave do new employees get?"))
"""

from rag.langchain.chat_model import RagLLM, to_messages
from rag.langchain.embeddings import RagEmbeddings
from rag.langchain.prompt import citation_prompt, format_documents
from rag.langchain.retriever import KnowledgeBaseRetriever, to_document

__all__ = [
    "KnowledgeBaseRetriever",
    "RagEmbeddings",
    "RagLLM",
    "citation_prompt",
    "format_documents",
    "to_document",
    "to_messages",
]
