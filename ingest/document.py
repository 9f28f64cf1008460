"""What a loader produces: a document's text in located sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Section:
    """A run of a document's text that shares one location (a page, a sheet, a slide, a heading).

    ``metadata`` holds the location keys the format has: ``page`` (1-based, PDF), ``sheet`` (XLSX),
    ``slide`` (PPTX, 1-based), ``section`` (the nearest heading), ``line_start``/``line_end`` (logs).
    """

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LoadedDocument:
    """A parsed file: its sections in reading order plus document-level metadata.

    The document's full text is the sections' texts joined by :data:`SECTION_SEPARATOR`;
    chunk offsets point into that text.
    """

    source: str
    title: str
    sections: list[Section]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return SECTION_SEPARATOR.join(section.text for section in self.sections)


SECTION_SEPARATOR = "\n\n"


class LoadError(Exception):
    """A file could not be turned into text; ``reason`` says why in words a user can act on."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
