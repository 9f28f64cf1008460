"""One way to open SQLite files for the stores: WAL, a busy timeout, usable from any thread."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several threads (the API's workers) and processes share the file; WAL lets readers run while
    # one writer works, and the timeout makes a busy writer wait instead of failing.
    connection = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection
