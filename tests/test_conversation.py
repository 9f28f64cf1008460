"""Follow-ups made standalone before retrieval: the deterministic rewrite and the LLM condense step."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from rag.conversation import QuestionResolver, is_follow_up
from rag.engine import Engine
from rag.llms.base import LLM, GenerationOptions, LLMError, Message
from rag.types import Answer

HISTORY = [
    {"role": "user", "content": "Who did the president nominate to the Supreme Court?"},
    {"role": "assistant", "content": "Circuit Court of Appeals Judge Ketanji Brown Jackson [1]."},
]


def test_a_question_that_points_back_carries_the_previous_subject() -> None:
    query = QuestionResolver().resolve("What was her previous job?", HISTORY)
    assert "Ketanji Brown Jackson" in query and "Supreme Court" in query
    assert query.endswith("What was her previous job?")
    assert "[1]" not in query


def test_chinese_follow_up_carries_the_previous_question() -> None:
    history = [
        {"role": "user", "content": "吴淞路闸桥是什么时候建成的？"},
        {"role": "assistant", "content": "1991年[1]。"},
    ]
    assert "吴淞路闸桥" in QuestionResolver().resolve("它是哪一年拆除的？", history)


def test_a_standalone_question_is_left_alone() -> None:
    assert QuestionResolver().resolve("How many days of annual leave do employees get?", HISTORY) == (
        "How many days of annual leave do employees get?"
    )
    assert QuestionResolver().resolve("What was her previous job?", []) == "What was her previous job?"
    assert not is_follow_up("吴淞路闸桥是哪一年拆除的？") and is_follow_up("What about Tokyo?")


class CondensingLLMFake(LLM):
    """A fake LLM (no model can run in unit tests) that answers the condense prompt with fixed lines."""

    name = "condense-fake"

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Iterator[str]:
        self.prompts.append(messages[-1]["content"])
        if isinstance(self.reply, Exception):
            raise self.reply
        yield self.reply


def test_with_an_llm_the_question_is_condensed_and_restated_in_the_other_language() -> None:
    llm = CondensingLLMFake("What was Ketanji Brown Jackson's previous job?\n凯坦吉·布朗·杰克逊之前的工作是什么？")
    query = QuestionResolver(llm, max_history_chars=60).resolve("What was her previous job?", HISTORY)
    assert query.startswith("What was her previous job?") and "Ketanji Brown Jackson's previous job" in query
    assert "凯坦吉" in query
    assert "Chinese" in llm.prompts[0] and "Supreme Court?" not in llm.prompts[0]  # history bounded to 60 chars


def test_a_failing_llm_falls_back_to_the_question_as_asked() -> None:
    resolver = QuestionResolver(CondensingLLMFake(LLMError("server down")))
    assert resolver.resolve("What was her previous job?", HISTORY) == "What was her previous job?"


def test_follow_ups_and_lists_through_the_answerer(engine: Engine, tmp_path: Path) -> None:
    engine.knowledge_bases.ingest("t", [write_bridge_and_struts(tmp_path / "docs")])
    history = [
        {"role": "user", "content": "Who designed the Meridian Bridge?"},
        {"role": "assistant", "content": "Agnes Holloway [1]."},
    ]
    follow_up = engine.answerer.run("t", "When was it completed?", history)
    assert follow_up.answerable and follow_up.answer.startswith("1932: ")
    assert "bridge.md" in follow_up.citations[0].source

    question = "Which Apache Struts vulnerabilities are known to be exploited?"
    events = list(engine.answerer.stream("t", question, verified=True))
    answer = events[-1]
    assert isinstance(answer, Answer) and "".join(e for e in events if isinstance(e, str)) == answer.answer
    assert "CVE-2017-5638" in answer.answer and "CVE-2018-11776" in answer.answer
    assert answer.answer.endswith("(2 found.)")
    assert len(answer.citations) == 2


def write_bridge_and_struts(folder: Path) -> Path:
    """A small KB's files: a bridge (for follow-ups), two Struts advisories (for a list); test_evaluation too."""
    folder.mkdir()
    (folder / "bridge.md").write_text(
        "# Meridian Bridge\n\nThe Meridian Bridge was designed by the engineer Agnes Holloway. "
        "It was completed in 1932 after four years of construction.\n",
        encoding="utf-8",
    )
    for cve in ("CVE-2017-5638", "CVE-2018-11776"):
        (folder / f"{cve}.md").write_text(
            f"# {cve}\n\n{cve} is an Apache Struts remote code execution vulnerability known to be exploited.\n",
            encoding="utf-8",
        )
    return folder
