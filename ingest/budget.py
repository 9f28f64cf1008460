"""Parse budgets: how much work one file may cost, whatever its size on disk.

A small file can still be a bomb: nested YAML aliases, a page tree that repeats one page, a
spreadsheet cell in the last column, ten million ``<br>`` tags. Input-size caps do not catch these,
so every parse runs under a :class:`ParseBudget` that bounds what it *produces* (characters per
input byte, pages, chunks, header bytes, alias expansion) and how long it runs. Going over a limit
raises :class:`BudgetExceeded`, a :class:`~ingest.document.LoadError` that names the limit, so the
file fails on its own and the batch goes on.

:func:`load_all` sets the budget for the thread that parses (a context variable, so loaders keep
their one-argument signature); loaders call :func:`spend` as they produce text and ask
:func:`current` for the limits that apply to them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ParseBudget:
    """The limits one file's parse runs under (the faces fill them from their parse_* settings).

    Usage::

        budget = ParseBudget(max_pdf_pages=500)
        documents = load_all(path, budget)
    """

    chars_per_byte: float = 40.0  # text out per byte in (office files are zipped: ~10x is normal)
    min_chars: int = 1_000_000  # what even a tiny file may produce
    max_chunks: int = 100_000  # chunks per document
    max_pdf_pages: int = 5_000
    max_html_tags: int = 200_000  # start tags of one HTML page (each costs the parser ~1 KB)
    max_header_bytes: int = 16 * 1024  # one e-mail header (a Subject, a Content-Type), folded lines included
    max_yaml_nodes: int = 1_000_000  # values a YAML file holds once its aliases are expanded
    max_seconds: float = 300.0  # wall time of one parse

    def __post_init__(self) -> None:
        for name in ("chars_per_byte", "min_chars", "max_chunks", "max_pdf_pages", "max_html_tags", "max_header_bytes",
                     "max_yaml_nodes", "max_seconds"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    def max_chars(self, size: int) -> int:
        return max(self.min_chars, int(size * self.chars_per_byte))


class BudgetExceeded(Exception):
    """A parse went over a limit of its :class:`ParseBudget`; ``limit`` is the setting's name."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(f"refused: {message} (limit: {limit})")
        self.limit = limit


@dataclass(slots=True)
class _Meter:
    budget: ParseBudget
    size: int
    deadline: float
    chars: int = 0
    max_chars: int = field(init=False)

    def __post_init__(self) -> None:
        self.max_chars = self.budget.max_chars(self.size)


_METER: ContextVar[_Meter | None] = ContextVar("parse_meter", default=None)
DEFAULT_BUDGET = ParseBudget()


@contextlib.contextmanager
def metered(budget: ParseBudget, size: int) -> Iterator[None]:
    """Run a parse of a ``size``-byte file under ``budget`` (in this thread)."""
    token = _METER.set(_Meter(budget, size, time.monotonic() + budget.max_seconds))
    try:
        yield
    finally:
        _METER.reset(token)


def current() -> ParseBudget:
    """The budget of the parse running in this thread (the defaults outside one)."""
    meter = _METER.get()
    return meter.budget if meter is not None else DEFAULT_BUDGET


def spend(chars: int) -> None:
    """Count ``chars`` of text produced; raise :class:`BudgetExceeded` past the output or time limit."""
    meter = _METER.get()
    if meter is None:
        return
    meter.chars += chars
    _check_chars(meter, meter.chars)
    check_time()


def check_output(chars: int) -> None:
    """Raise :class:`BudgetExceeded` if a parse's whole output, ``chars`` long, is over its limit."""
    meter = _METER.get()
    if meter is not None:
        _check_chars(meter, chars)


def _check_chars(meter: _Meter, chars: int) -> None:
    if chars > meter.max_chars:
        raise BudgetExceeded(
            "parse_chars_per_byte",
            f"the {meter.size:,}-byte file expands to over {meter.max_chars:,} characters of text",
        )


def check_time() -> None:
    """Raise :class:`BudgetExceeded` when the parse has run past its time limit."""
    meter = _METER.get()
    if meter is not None and time.monotonic() > meter.deadline:
        raise BudgetExceeded("parse_max_seconds", f"parsing took over {meter.budget.max_seconds:g} s")
