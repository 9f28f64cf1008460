"""What a loader produces: a document's text in located sections."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Section:
    """A run of a document's text that shares one location (a page, a sheet, a slide, a heading).

    ``metadata`` holds the location keys the format has: ``page`` (1-based, PDF), ``sheet`` (XLSX),
    ``slide`` (PPTX, 1-based), ``section`` (the nearest heading), ``line_start``/``line_end`` (logs:
    such a section is only ever cut between lines). Values are scalars (str, int, float, bool) so
    every store can filter on them; lists are joined with :data:`LIST_SEPARATOR`.
    """

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LoadedDocument:
    """A parsed file: its sections in reading order plus document-level metadata.

    The document's full text is the sections' texts joined by :data:`SECTION_SEPARATOR`;
    chunk offsets point into that text.

    ``sections`` is a list, or for a big log a re-iterable that reads the file again on each pass,
    so the file never has to be in memory at once. ``part`` names the document inside a file that
    holds several (one advisory of the CISA KEV catalog): such a document is filed under
    ``source#part`` and a re-ingest updates, keeps or removes it record by record.
    """

    source: str
    title: str
    sections: Iterable[Section]
    metadata: dict[str, Any] = field(default_factory=dict)
    part: str = ""

    @property
    def text(self) -> str:
        return SECTION_SEPARATOR.join(section.text for section in self.sections)


SECTION_SEPARATOR = "\n\n"
# Joins list values (aliases, CWEs, affected versions) into one metadata string; commas occur inside versions.
LIST_SEPARATOR = "; "


class LoadError(Exception):
    """A file could not be turned into text; ``reason`` says why in words a user can act on."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
