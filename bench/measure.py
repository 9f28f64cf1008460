"""What the benchmark scripts share: stage stopwatches, memory readings, the machine, and tables.

The scripts time rag-kb from outside: a :class:`Stopwatch` wraps an object so every call of the
named methods adds to a stage's total, and a generator's items are timed as they are drawn, so a
lazy splitter counts as "split" and not as whatever consumes it. Nothing in rag-kb is changed.

Usage::

    watch = Stopwatch()
    vectors = watch.wrap(ChromaVectorStore(path=folder), "store", ["add", "delete_document"])
    ...
    print(table(["stage", "s"], [[name, f"{s:.2f}"] for name, s in watch.seconds.items()]))
"""

from __future__ import annotations

import functools
import inspect
import os
import platform
import resource
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the embedder is bundled: nothing may be downloaded
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


class Stopwatch:
    """Seconds and calls per stage, added up across threads."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds
            self.calls[stage] += 1

    def timed(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` timed into ``stage``; a generator it returns is timed item by item."""

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = function(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - started)
            return self._timed_items(stage, result) if inspect.isgenerator(result) else result

        return call

    def _timed_items(self, stage: str, items: Iterator[Any]) -> Iterator[Any]:
        while True:
            started = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                self.add(stage, time.perf_counter() - started)
                return
            self.add(stage, time.perf_counter() - started)
            yield item

    @contextmanager
    def stage(self, stage: str) -> Iterator[None]:
        """Times the ``with`` block into ``stage``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started)

    def wrap(self, target: Any, stage: str, methods: Iterable[str]) -> Any:
        """A stand-in for ``target`` whose ``methods`` are timed into ``stage``; all else passes through."""
        return _Timed(target, {name: self.timed(stage, getattr(target, name)) for name in methods})

    def reset(self) -> None:
        with self._lock:
            self.seconds.clear()
            self.calls.clear()


class _Timed:
    def __init__(self, target: Any, methods: dict[str, Callable[..., Any]]) -> None:
        self.__dict__.update(methods)
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def rss_mb() -> float:
    """The process's resident memory now, in MiB (from /proc: includes Chroma's and torch's native memory)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """The process's highest resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    """CPU model, cores, memory and load: the line every result is printed under."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            total = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal"))) / 2**20
    except (OSError, StopIteration):
        total = float("nan")
    import torch

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} cores, {total:.1f} GiB RAM, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}); load average {load}"
    )


class OtherLoad:
    """How many cores other processes kept busy while something was measured (from /proc/stat).

    The scripts share two cores with other work; this says which figures were taken under load.
    ``pids`` are the processes that count as ours besides this one (a service under test).

    Usage::

        load = OtherLoad()
        ...  # measure
        print(load.note())  # "other processes used 0.8 of 2 cores"
    """

    def __init__(self, pids: Sequence[int] = ()) -> None:
        self.pids = [os.getpid(), *pids]
        self.started = time.monotonic()
        self.busy, self.ours = _busy_ticks(), self._our_ticks()

    def _our_ticks(self) -> int:
        total = 0
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime of all its threads
            except (OSError, IndexError, ValueError):
                pass
        return total

    def cores(self) -> float:
        """Cores other processes used on average since this was made."""
        seconds = time.monotonic() - self.started
        others = (_busy_ticks() - self.busy) - (self._our_ticks() - self.ours)
        return max(0.0, others / os.sysconf("SC_CLK_TCK") / seconds) if seconds > 0 else 0.0

    def note(self) -> str:
        cores = self.cores()
        under = " (under load)" if cores > 0.25 else ""
        return f"other processes used {cores:.2f} of {os.cpu_count()} cores{under}"


def _busy_ticks() -> int:
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


def progress(text: str) -> None:
    """A time-stamped line on stderr, so a long run shows where it is and what it found so far."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table: what the scripts print, ready to paste into docs/performance.md."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(lines)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "n/a"
