"""One writer per data directory: an exclusive lock (``filelock``: ``flock`` on Unix, ``msvcrt`` on
Windows) on ``DATA_DIR/write.lock``, which holds the holder's PID.

Catalog, Chroma and the keyword index are written in steps that must not interleave with another
process's steps for the same document, so every change (an ingested file, a deletion) holds this lock.
A second process waits its turn, saying once who holds it, and gives up with a clear error after
``timeout`` seconds. The lock is re-entrant within a process (a re-ingest deletes parts while holding
it) and threads of one process take turns. The kernel drops it when the holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)


class WriteLockTimeout(RuntimeError):
    """Another process held the data directory's write lock for longer than the timeout."""


class WriteLock:
    """An exclusive, re-entrant lock on a data directory, shared by threads and processes.

    Usage::

        lock = WriteLock(data_dir / "write.lock")
        with lock:
            ...  # write catalog, vectors and keywords
    """

    def __init__(self, path: Path, timeout: float = 600.0, poll: float = 0.1) -> None:
        if timeout < 0 or poll <= 0:
            raise ValueError("timeout must be >= 0 and poll > 0")
        self.path = path
        self.timeout = timeout
        self.poll = poll
        self._threads = threading.RLock()
        self._depth = 0
        # One lock object for all threads (they take turns on _threads); not a per-path singleton.
        self._file = FileLock(path, thread_local=False)

    def __enter__(self) -> WriteLock:
        self._threads.acquire()
        try:
            if self._depth == 0:
                self._acquire()
        except BaseException:
            self._threads.release()
            raise
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0:
                self._file.release()
        finally:
            self._threads.release()

    def _acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.timeout
        waiting = False
        while True:
            try:
                self._file.acquire(timeout=max(0.0, min(self.poll, deadline - time.monotonic())))
                break
            except Timeout:
                if not waiting:
                    log.warning("waiting: %s is writing to %s", self.holder(), self.path.parent)
                    waiting = True
                if time.monotonic() >= deadline:
                    raise WriteLockTimeout(
                        f"{self.holder()} has been writing to {self.path.parent} for over {self.timeout:g} s; "
                        "try again when it is done"
                    ) from None
        with contextlib.suppress(OSError):  # who holds it is for messages only (Windows may refuse the write)
            self.path.write_text(str(os.getpid()))

    def holder(self) -> str:
        """Who holds the lock, as far as the file says: "process 1234" or "another process"."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.path.read_text().strip())
            return f"process {pid}"
        return "another process"

    def elsewhere(self) -> str | None:
        """Who holds the lock now if it is another process ("process 1234"), else None (free, or held here).

        A probe for status pages: it takes and drops the lock at once through its own handle, so a writer
        polling for the lock (every ``poll`` seconds) is delayed by one poll at most."""
        if self._depth or not self.path.exists():  # held here, or nobody has written yet
            return None
        probe = FileLock(self.path, thread_local=False)
        try:
            probe.acquire(timeout=0)
        except Timeout:
            holder = self.holder()
            return None if holder == f"process {os.getpid()}" else holder
        probe.release()
        return None
