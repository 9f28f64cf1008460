"""HTML pages: visible text in reading order, one block per paragraph, sections by h1-h6.

The same conversion serves e-mail HTML bodies (:mod:`ingest.loaders.mail`).
"""

from __future__ import annotations

import re
from itertools import islice
from pathlib import Path

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

from ingest.budget import BudgetExceeded, current
from ingest.document import LoadedDocument, Section
from ingest.encoding import read_text
from ingest.loaders.common import CELL_SEPARATOR, Block, first_heading, make_document, sections_from_blocks

# Never visible, or site chrome repeated on every page: noise for retrieval. Not <head> itself:
# html.parser does not repair markup, so a page missing </head> has its body inside <head>.
_DROPPED_TAGS = ("script", "style", "nav", "noscript", "template", "title", "svg", "iframe", "object")
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
# Elements that start a new line of text; everything else flows inline.
_BLOCK_TAG_NAMES = """
    address article aside blockquote body caption center dd details dialog div dl dt fieldset
    figcaption figure footer form header hr html legend li main menu ol p section summary table
    tbody tfoot thead ul
"""
_BLOCK_TAGS = frozenset(_BLOCK_TAG_NAMES.split())
_NON_TEXT = (Comment, Declaration, Doctype, ProcessingInstruction)
_SPACES = re.compile(r"\s+")
_START_TAG = re.compile(r"<[A-Za-z]")


def load_html(path: Path) -> LoadedDocument:
    """An HTML file; the title is ``<title>``, else the first ``<h1>``, else the file name."""
    title, sections = parse_html(read_text(path))
    return make_document(path, "html", sections, title=title)


def parse_html(markup: str) -> tuple[str | None, list[Section]]:
    """The page title (if any) and its text as heading sections.

    A page with more start tags than the budget's ``max_html_tags`` is refused before the tree is
    built: ten million ``<br>`` in a 10 MB file would take gigabytes as parsed elements.
    """
    limit = current().max_html_tags
    tags = sum(1 for _ in islice(_START_TAG.finditer(markup), limit + 1))
    if tags > limit:
        raise BudgetExceeded("parse_max_html_tags", f"the HTML has over {limit:,} tags")
    soup = BeautifulSoup(markup, "html.parser")
    title_tag = soup.find("title")
    title = _collapse(title_tag.get_text()) if title_tag else None
    for tag in soup.find_all(_DROPPED_TAGS):
        tag.decompose()
    blocks = _BlockWriter().write(soup)
    return title or first_heading(blocks), sections_from_blocks(blocks)


def html_to_text(markup: str) -> str:
    """The visible text of an HTML fragment or page, paragraphs on their own lines."""
    _, sections = parse_html(markup)
    return "\n".join(section.text for section in sections)


class _BlockWriter:
    """Walks the tree once, turning block elements into separate blocks of collapsed text."""

    def __init__(self) -> None:
        self._blocks: list[Block] = []
        self._inline: list[str] = []

    def write(self, root: Tag) -> list[Block]:
        self._walk(root)
        self._flush()
        return self._blocks

    def _walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, _NON_TEXT):
                    # Source line breaks are plain spaces; only <br> (below) breaks a line.
                    self._inline.append(_SPACES.sub(" ", child))
            elif isinstance(child, Tag):
                self._element(child)

    def _element(self, tag: Tag) -> None:
        name = tag.name
        if name == "br":
            self._inline.append("\n")
        elif name in _HEADINGS:
            self._flush()
            text = _collapse(tag.get_text())  # no separator: "中<b>文</b>" must not become "中 文"
            if text:
                self._blocks.append(Block(text, level=_HEADINGS[name]))
        elif name == "pre":
            self._flush()
            self._blocks.append(Block(tag.get_text().strip("\n")))  # whitespace is the content
        elif name == "tr":
            self._flush()
            cells = [_collapse(cell.get_text(" ")) for cell in tag.find_all(("td", "th"), recursive=False)]
            if any(cells):
                self._blocks.append(Block(CELL_SEPARATOR.join(cells)))
        elif name in _BLOCK_TAGS:
            self._flush()
            if name == "li":
                self._inline.append("- ")
            self._walk(tag)
            self._flush()
        else:
            self._walk(tag)

    def _flush(self) -> None:
        """End the current line(s) of inline text as one block; ``<br>`` splits lines."""
        lines = [line.strip() for line in "".join(self._inline).split("\n")]
        self._inline.clear()
        text = "\n".join(_SPACES.sub(" ", line) for line in lines if line)
        if text and text != "-":
            self._blocks.append(Block(text))


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()
