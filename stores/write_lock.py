"""One writer per data directory: an exclusive ``flock`` on ``DATA_DIR/write.lock``.

Catalog, Chroma and the keyword index are written in steps that must not interleave with another
process's steps for the same document, so every change (an ingested file, a deletion) holds this lock.
A second process waits its turn, saying once who holds it, and gives up with a clear error after
``timeout`` seconds. The lock is re-entrant within a process (a re-ingest deletes parts while holding
it) and threads of one process take turns. The kernel drops it when the holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from pathlib import Path

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
        self._file: int | None = None

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
            if self._depth == 0 and self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
                os.close(self._file)
                self._file = None
        finally:
            self._threads.release()

    def _acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        waiting = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waiting:
                        log.warning("waiting: %s is writing to %s", self.holder(), self.path.parent)
                        waiting = True
                    if time.monotonic() >= deadline:
                        raise WriteLockTimeout(
                            f"{self.holder()} has been writing to {self.path.parent} for over {self.timeout:g} s; "
                            "try again when it is done"
                        ) from None
                    time.sleep(self.poll)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except BaseException:
            os.close(fd)
            raise
        self._file = fd

    def holder(self) -> str:
        """Who holds the lock, as far as the file says: "process 1234" or "another process"."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.path.read_text().strip())
            return f"process {pid}"
        return "another process"

    def elsewhere(self) -> str | None:
        """Who holds the lock now if it is another process ("process 1234"), else None (free, or held here).

        A probe for status pages: it takes and drops a shared lock at once, so a writer polling for the
        lock (every ``poll`` seconds) is delayed by one poll at most."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None  # no lock file: nobody has written yet
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.holder()
            return None if holder == f"process {os.getpid()}" else holder
        finally:
            os.close(fd)  # closing drops the probe's lock, if it got one
        return None
