"""Word (.docx) files: paragraphs and tables in reading order, sections by heading styles."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from ingest.document import LoadedDocument
from ingest.loaders.common import CELL_SEPARATOR, Block, first_heading, make_document, sections_from_blocks

# Built-in styles are stored under English names, but documents from WPS or localised templates
# may carry "标题 1"; "Title" ranks above "Heading 1".
_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)
_TITLE_STYLES = frozenset({"title", "标题"})


def load_docx(path: Path) -> LoadedDocument:
    """A .docx file; the title is the document's Title property, else its first top heading."""
    document = docx.Document(str(path))
    blocks = list(_blocks(document.iter_inner_content()))
    properties = document.core_properties
    title = properties.title or first_heading(blocks)
    extra = {"author": properties.author} if properties.author else {}
    return make_document(path, "docx", sections_from_blocks(blocks, separator="\n\n"), title=title, **extra)


def _blocks(items: Iterator[Paragraph | Table]) -> Iterator[Block]:
    for item in items:
        if isinstance(item, Table):
            yield from _table_blocks(item)
        elif text := item.text.strip():
            yield Block(text, level=_heading_level(item))


def _heading_level(paragraph: Paragraph) -> int | None:
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    if name.strip().lower() in _TITLE_STYLES:
        return 0
    match = _HEADING_STYLE.match(name.strip())
    return int(match.group(1)) if match else None


def _table_blocks(table: Table) -> Iterator[Block]:
    """One line per row, cells tab-separated; a merged cell is written once, not per grid column."""
    for row in table.rows:
        cells = []
        previous = None
        for cell in row.cells:
            if cell._tc is not previous:  # merged cells come back once per spanned column
                cells.append(" ".join(cell.text.split()))
            previous = cell._tc
        if any(cells):
            yield Block(CELL_SEPARATOR.join(cells))
