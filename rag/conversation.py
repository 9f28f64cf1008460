"""Follow-up questions made standalone before retrieval: one path for every face's history.

``/ask``'s ``history``, OpenAI ``messages``, ChatGLM's ``[[question, answer], ...]``, the web page and
``rag chat`` all hand the earlier turns to :class:`~rag.answerer.Answerer`, which asks a
:class:`QuestionResolver` for the question to retrieve with.

A question is a follow-up when it leans on the previous turn (a pronoun such as "her", "it", 它, 其; or
one with almost no content words of its own, "And elsewhere?"); any other question stands as asked.

- With an LLM backend, the standard condense step: the model rewrites the follow-up as a standalone
  question from the last turns (bounded in characters), and restates it in the other language the
  knowledge base may be written in, so it finds Chinese and English text alike. On any error the raw
  question is used.
- Without one, a deterministic rewrite: the follow-up gets the previous question and the names its
  answer gave, so "What was her previous job?" after a question about Ketanji Brown Jackson retrieves
  her passage.

Usage::

    resolver = QuestionResolver()  # or QuestionResolver(llm)
    query = resolver.resolve("它是哪一年拆除的？", [{"role": "user", "content": "吴淞路闸桥是什么？"}, ...])
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from rag.llms.base import LLM, GenerationOptions, LLMError, Message
from stores.text_analysis import analyze, language_of

log = logging.getLogger(__name__)

# Words that point back at the previous turn's subject.
ENGLISH_REFERENCES = frozenset(
    "it its it's they them their theirs he him his she her hers this that these those there such".split()  # noqa: SIM905
)
CHINESE_REFERENCES = re.compile(r"它|他|她|其|该|此|这个|那个|这些|那些|这里|那里|上述|前者|后者")
MARKER = re.compile(r"\s*\[\d+(?:\s*[,，、]\s*\d+)*\]")
# Capitalized names of the previous answer ("Ketanji Brown Jackson"), not its first word alone.
NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)*")
SHORT_QUESTION_TERMS = 1  # a question with this few content terms of its own needs its context

CONDENSE_PROMPT = (
    "Rewrite the last question of the conversation below as one standalone question that names what it "
    "refers to, in its own language. Then, on a second line, write the same question in {other}. "
    "Reply with the two lines only, no answers.\n\n{conversation}\n\nLast question: {question}"
)
OTHER_LANGUAGE = {"en": "Chinese", "zh": "English"}


class QuestionResolver:
    """Turns a question and its history into the question to retrieve with (see the module docstring).

    ``llm`` enables the condense step; ``max_history_chars`` bounds what of the history it reads.
    """

    def __init__(self, llm: LLM | None = None, max_history_chars: int = 2000, max_tokens: int = 128) -> None:
        if max_history_chars < 1 or max_tokens < 1:
            raise ValueError("max_history_chars and max_tokens must be at least 1")
        self.llm = llm
        self.max_history_chars = max_history_chars
        self.max_tokens = max_tokens

    def resolve(self, question: str, history: Sequence[Message] = ()) -> str:
        turns = [m for m in history if m.get("role") in {"user", "assistant"} and m.get("content", "").strip()]
        if not turns or not is_follow_up(question):
            return question  # a question that stands alone costs no model call
        if self.llm is not None:
            return self._condense(question, turns)
        return carry_subject(question, turns)

    def _condense(self, question: str, turns: Sequence[Message]) -> str:
        conversation = "\n".join(f"{m['role']}: {MARKER.sub('', m['content']).strip()}" for m in turns)
        conversation = conversation[-self.max_history_chars :]
        prompt = CONDENSE_PROMPT.format(
            other=OTHER_LANGUAGE[language_of(question)], conversation=conversation or "(none)", question=question
        )
        options = GenerationOptions(max_tokens=self.max_tokens, temperature=0.0, top_p=1.0)
        try:
            text = self.llm.generate([{"role": "user", "content": prompt}], options) if self.llm else ""
        except (LLMError, OSError, ValueError) as error:
            log.warning("condensing the question failed, using it as asked: %s", error)
            return question
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()][:2]
        if not lines:
            return question
        # The question as asked stays first: its own words rank best, the rewrite adds what it refers to.
        return " ".join(dict.fromkeys([question, *lines]))


def is_follow_up(question: str) -> bool:
    """Whether ``question`` leans on an earlier turn: a pronoun pointing back, or almost no content of its own."""
    if CHINESE_REFERENCES.search(question):
        return True
    words = {w.lower() for w in re.findall(r"[A-Za-z']+", question)}
    if words & ENGLISH_REFERENCES:
        return True
    return len(set(analyze(question))) <= SHORT_QUESTION_TERMS


def carry_subject(question: str, turns: Sequence[Message]) -> str:
    """``question`` with the previous question's text and the names its answer gave, for retrieval."""
    previous_question = next((m["content"] for m in reversed(turns) if m["role"] == "user"), "")
    previous_answer = next((m["content"] for m in reversed(turns) if m["role"] == "assistant"), "")
    answer = MARKER.sub("", previous_answer)
    names = list(dict.fromkeys(NAME.findall(answer)))
    subject = " ".join([previous_question.strip(), *names])
    return f"{subject} {question}".strip() if subject else question
