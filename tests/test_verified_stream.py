"""Verified streaming: the pieces are whole, checked sentences and join to exactly the final answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answerer import Answerer
from rag.engine import Engine
from rag.generators import LLMGenerator
from rag.prompts import REFUSAL
from rag.types import Answer
from tests.test_llms import ScriptedLLM

FLIGHTS = "Which class is required for flights under six hours?"
PASSWORD = "员工密码多久更换一次？"


@pytest.fixture
def kb(engine: Engine, corpus: Path) -> Engine:
    assert not engine.knowledge_bases.ingest("t", [corpus]).failed
    return engine


def verified(engine: Engine, reply: str, question: str) -> tuple[list[str], Answer]:
    answerer = Answerer(engine.retriever, LLMGenerator(ScriptedLLM(reply)))
    *pieces, answer = answerer.stream("t", question, verified=True)
    assert isinstance(answer, Answer)
    return pieces, answer


@pytest.mark.parametrize(
    ("reply", "question"),
    [
        ("Economy class is required for flights under six hours. [1] Pilots must be vegetarian [1]. "
         "Hotels are reimbursed up to 180 euros per night [1].", FLIGHTS),
        ("Economy class is required for flights under six hours [1][9].", FLIGHTS),
        ("Economy class is required for flights under six hours.[1][2] Business class may be booked for "
         "longer flights with director approval [1]", FLIGHTS),
        ("员工密码必须每九十天更换一次[2]。密码长度不得少于十二位[2]。月球是奶酪做的[1]。", PASSWORD),
    ],
)
def test_pieces_join_to_the_final_answer(kb: Engine, reply: str, question: str) -> None:
    pieces, answer = verified(kb, reply, question)
    assert answer.answerable
    assert "".join(pieces) == answer.answer
    assert len(pieces) >= 1 and all(pieces)


def test_an_invented_sentence_is_never_streamed(kb: Engine) -> None:
    pieces, answer = verified(kb, "Economy class is required for flights under six hours [1]. "
                                  "Pilots must be vegetarian [1].", FLIGHTS)
    assert not any("vegetarian" in p for p in pieces)
    assert answer.removed == ["Pilots must be vegetarian."]


@pytest.mark.parametrize(
    "reply", [REFUSAL["en"] + " But Economy class is required for flights under six hours [1].",
              "The moon is made of green cheese [1]."],
)
def test_a_refusal_streams_only_the_refusal(kb: Engine, reply: str) -> None:
    pieces, answer = verified(kb, reply, FLIGHTS)
    assert pieces == [REFUSAL["en"]]
    assert not answer.answerable and answer.answer == REFUSAL["en"]
