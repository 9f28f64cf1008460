"""Conversations kept per knowledge base, in SQLite beside the catalog: what the web page lists and reopens.

A conversation is a title and its turns in order. A user turn holds the question; an assistant turn
holds the answer text and, as JSON, the whole verified answer (citations, sources), so a reopened
conversation shows its sources as they were. Nothing here knows about HTTP or keys.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stores.sqlite import connect

MAX_TITLE_CHARS = 200

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    conversation_id TEXT PRIMARY KEY, kb TEXT NOT NULL, title TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_kb ON conversations (kb, updated_at);
CREATE TABLE IF NOT EXISTS conversation_turns (
    conversation_id TEXT NOT NULL REFERENCES conversations(conversation_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, answer TEXT,
    created_at REAL NOT NULL, PRIMARY KEY (conversation_id, seq));
"""


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    conversation_id: str
    kb: str
    title: str
    created_at: float
    updated_at: float
    turns: int


@dataclass(frozen=True, slots=True)
class TurnRecord:
    seq: int
    role: str
    content: str
    created_at: float
    answer: dict[str, Any] | None = field(default=None)


class Conversations:
    """Conversations and their turns, per knowledge base.

    Usage::

        conversations = Conversations(data_dir / "conversations.sqlite")
        record = conversations.create("handbook", "Leave days")
        conversations.append(record.conversation_id, "user", "How many leave days?")
        turns = conversations.turns(record.conversation_id)
    """

    def __init__(self, path: Path) -> None:
        self._db = connect(path)
        self._lock = threading.RLock()
        with self._lock:
            self._db.executescript(SCHEMA)

    def create(self, kb: str, title: str) -> ConversationRecord:
        now = time.time()
        conversation_id = uuid.uuid4().hex
        with self._lock:
            self._db.execute(
                "INSERT INTO conversations VALUES (?, ?, ?, ?, ?)", (conversation_id, kb, _title(title), now, now)
            )
        record = self.get(kb, conversation_id)
        assert record is not None
        return record

    def list(self, kb: str, limit: int = 200) -> list[ConversationRecord]:
        """The newest ``limit`` conversations of ``kb``, most recently used first."""
        with self._lock:
            rows = self._db.execute(_SELECT + " WHERE c.kb = ? GROUP BY c.conversation_id"
                                    " ORDER BY c.updated_at DESC LIMIT ?", (kb, limit)).fetchall()
        return [ConversationRecord(*row) for row in rows]

    def get(self, kb: str, conversation_id: str) -> ConversationRecord | None:
        with self._lock:
            row = self._db.execute(
                _SELECT + " WHERE c.kb = ? AND c.conversation_id = ? GROUP BY c.conversation_id", (kb, conversation_id)
            ).fetchone()
        return ConversationRecord(*row) if row else None

    def turns(self, conversation_id: str) -> list[TurnRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, role, content, created_at, answer FROM conversation_turns"
                " WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            ).fetchall()
        return [TurnRecord(seq, role, content, created, json.loads(answer) if answer else None)
                for seq, role, content, created, answer in rows]

    def append(
        self, conversation_id: str, role: str, content: str, answer: dict[str, Any] | None = None,
        replace_from: int | None = None,
    ) -> TurnRecord:
        """Add a turn at the end; with ``replace_from``, the turns from that ``seq`` on are dropped first
        (a regenerated answer replaces the old one)."""
        if role not in {"user", "assistant"}:
            raise ValueError(f"a turn's role is 'user' or 'assistant', not {role!r}")
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if replace_from is not None:
                self._db.execute(
                    "DELETE FROM conversation_turns WHERE conversation_id = ? AND seq >= ?",
                    (conversation_id, replace_from),
                )
            seq = self._db.execute(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM conversation_turns WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()[0]
            self._db.execute(
                "INSERT INTO conversation_turns VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, seq, role, content,
                 json.dumps(answer, ensure_ascii=False) if answer is not None else None, now),
            )
            self._db.execute(
                "UPDATE conversations SET updated_at = ? WHERE conversation_id = ?", (now, conversation_id)
            )
        return TurnRecord(seq, role, content, now, answer)

    def rename(self, kb: str, conversation_id: str, title: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE conversations SET title = ? WHERE kb = ? AND conversation_id = ?",
                (_title(title), kb, conversation_id),
            )
        return cursor.rowcount == 1

    def delete(self, kb: str, conversation_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM conversations WHERE kb = ? AND conversation_id = ?", (kb, conversation_id)
            )
        return cursor.rowcount == 1

    def forget_before(self, kb: str, created_at: float) -> int:
        """Drop conversations of ``kb`` older than ``created_at``: those of an earlier KB of that name."""
        with self._lock:
            return self._db.execute(
                "DELETE FROM conversations WHERE kb = ? AND created_at < ?", (kb, created_at)
            ).rowcount


_SELECT = (
    "SELECT c.conversation_id, c.kb, c.title, c.created_at, c.updated_at, COUNT(t.seq)"
    " FROM conversations c LEFT JOIN conversation_turns t ON t.conversation_id = c.conversation_id"
)


def _title(title: str) -> str:
    cleaned = " ".join(title.split())[:MAX_TITLE_CHARS]
    if not cleaned:
        raise ValueError("a conversation needs a title")
    return cleaned
