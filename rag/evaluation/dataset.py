"""Evaluation data: a corpus of passages and questions about it, one JSON object a line.

``corpus.jsonl``: ``{"pid", "title", "text", "lang"}``. ``queries.jsonl``: ``{"qid", "question",
"answers": [...], "gold_pid", "answerable"}``, optionally ``"not_in_kb": true`` for a question whose
topic is absent from the corpus, and for conversation and list cases:

- ``"history"``: the earlier turns, oldest first, as ``[{"role": "user" | "assistant", "content"}, ...]``
  or ChatGLM's ``[[question, answer], ...]``; the question is a follow-up to them;
- ``"items"``: for a list question, every item the answer should name (each a string to find in it);
- ``"kind"``: a label the report groups by (``numeric``, ``follow-up``, ``list``, ``near-miss``, ...).

``gold_pid`` may be left out when the questions are asked of a KB filled by ``rag ingest`` (no corpus):
the retrieval ranks are then not scored. Other keys are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DatasetError(ValueError):
    """A corpus or queries file that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Passage:
    pid: str
    title: str
    text: str
    lang: str = ""


@dataclass(frozen=True, slots=True)
class Query:
    qid: str
    question: str
    answers: tuple[str, ...]
    gold_pid: str | None
    answerable: bool
    not_in_kb: bool = False
    history: tuple[dict[str, str], ...] = ()
    items: tuple[str, ...] = ()
    kind: str = ""


def read_corpus(path: Path) -> list[Passage]:
    """The passages of ``path``; pids must be unique."""
    passages: list[Passage] = []
    seen: set[str] = set()
    for line, row in _rows(path):
        pid = _string(row, "pid", path, line)
        if pid in seen:
            raise DatasetError(f"{path}:{line}: pid {pid!r} appears twice")
        seen.add(pid)
        text = _string(row, "text", path, line)
        passages.append(Passage(pid, str(row.get("title") or ""), text, str(row.get("lang") or "")))
    if not passages:
        raise DatasetError(f"{path}: no passages")
    return passages


def read_queries(path: Path) -> list[Query]:
    """The questions of ``path``; an answerable question needs a ``gold_pid`` and at least one answer."""
    queries: list[Query] = []
    for line, row in _rows(path):
        answers = row.get("answers") or []
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise DatasetError(f"{path}:{line}: 'answers' must be a list of strings")
        answerable = row.get("answerable")
        if not isinstance(answerable, bool):
            raise DatasetError(f"{path}:{line}: 'answerable' must be true or false")
        gold = row.get("gold_pid")
        items = row.get("items") or []
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise DatasetError(f"{path}:{line}: 'items' must be a list of non-empty strings")
        if answerable and not (answers or items):
            raise DatasetError(f"{path}:{line}: an answerable question needs answers or items")
        if gold is not None and not isinstance(gold, str):
            raise DatasetError(f"{path}:{line}: 'gold_pid' must be a string")
        queries.append(
            Query(
                qid=str(row.get("qid", line)),
                question=_string(row, "question", path, line),
                answers=tuple(answers),
                gold_pid=gold if isinstance(gold, str) and gold else None,
                answerable=answerable,
                not_in_kb=bool(row.get("not_in_kb", False)),
                history=_history(row.get("history"), path, line),
                items=tuple(items),
                kind=str(row.get("kind") or ""),
            )
        )
    if not queries:
        raise DatasetError(f"{path}: no questions")
    return queries


ROLES = frozenset({"user", "assistant"})


def _history(value: Any, path: Path, line: int) -> tuple[dict[str, str], ...]:
    """Earlier turns as chat messages, from messages or from ChatGLM's [question, answer] pairs."""
    if value is None:
        return ()
    turns: list[dict[str, str]] = []
    for turn in value if isinstance(value, list) else [None]:
        if isinstance(turn, dict) and turn.get("role") in ROLES and isinstance(turn.get("content"), str):
            turns.append({"role": turn["role"], "content": turn["content"]})
        elif isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn):
            turns += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
        else:
            raise DatasetError(f"{path}:{line}: 'history' must be a list of messages or of [question, answer] pairs")
    return tuple(turns)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read {path}: {error}") from error
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{path}:{number}: not JSON ({error.msg})") from error
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{number}: expected a JSON object")
        yield number, row


def _string(row: dict[str, Any], key: str, path: Path, line: int) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{path}:{line}: {key!r} must be a non-empty string")
    return value
