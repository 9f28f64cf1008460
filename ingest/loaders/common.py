"""Pieces every loader shares: building the document and cutting text into heading sections."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.document import LoadedDocument, Section

# A loader returns the file's document, or a list of documents for a file that holds several (a KEV catalog).
Loader = Callable[[Path], LoadedDocument | list[LoadedDocument]]

# Table cells are tab-separated in every format that has tables, so rows stay one line each.
CELL_SEPARATOR = "\t"
SECTION_PATH_SEPARATOR = " > "


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph-like piece of a document; ``level`` is set (0 = title, 1-6) for headings."""

    text: str
    level: int | None = None
    title: str | None = None  # the heading's plain text, when ``text`` carries markup


def make_document(
    path: Path, fmt: str, sections: Iterable[Section], title: str | None = None, **metadata: Any
) -> LoadedDocument:
    """A document with the fields every loader fills; empty sections are dropped."""
    kept = [section for section in sections if section.text.strip()]
    clean_title = " ".join((title or "").split())
    return LoadedDocument(
        source=str(path),
        title=clean_title or path.stem,
        sections=kept,
        metadata={"format": fmt, **metadata},
    )


def sections_from_blocks(blocks: Iterable[Block], separator: str = "\n") -> list[Section]:
    """Group blocks into one section per heading, each tagged with its heading path.

    ``separator`` joins the blocks: a blank line where every block is a paragraph (DOCX), so a
    heading or a paragraph without a full stop is not read as the start of the next sentence.

    ``metadata["section"]`` is the path of enclosing headings ("Install > Linux") so a citation
    says where in the document the text sits; text before the first heading has no ``section``.
    """
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []

    def flush() -> None:
        text = separator.join(lines).strip("\n")
        if text.strip():
            metadata = {"section": SECTION_PATH_SEPARATOR.join(t for _, t in path)} if path else {}
            sections.append(Section(text, metadata))
        lines.clear()

    for block in blocks:
        if block.level is not None:
            flush()
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, " ".join((block.title or block.text).split())))
        lines.append(block.text)
    flush()
    return sections


def first_heading(blocks: Iterable[Block], max_level: int = 1) -> str | None:
    """The text of the first heading at ``max_level`` or above: a document title candidate."""
    for block in blocks:
        if block.level is not None and block.level <= max_level:
            return block.title or block.text
    return None
