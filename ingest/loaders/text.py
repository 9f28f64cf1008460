"""Plain text and Markdown files: decoded with :mod:`ingest.encoding`, split by lines (logs: :mod:`.logs`)."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.document import LoadedDocument, Section
from ingest.encoding import read_text
from ingest.loaders.common import Block, first_heading, make_document, sections_from_blocks
from ingest.loaders.logs import load_log, looks_like_log

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_MATTER_TITLE = re.compile(r"^title:\s*(.+?)\s*$")
# Lines that are list items, quotes or table rows, never setext heading text.
_NOT_PARAGRAPH = re.compile(r"^\s*(?:[-*+>|]|\d+[.)])(?:\s|$)")


def load_txt(path: Path) -> LoadedDocument:
    """A plain text file as one section; the chunker splits it. Syslog-style text saved as .txt is a log."""
    if looks_like_log(path):
        return load_log(path)
    return make_document(path, "txt", [Section(read_text(path))])


def load_markdown(path: Path) -> LoadedDocument:
    """A Markdown file, one section per heading, markup kept; the title is the first H1."""
    return markdown_document(path, read_text(path))


def markdown_document(path: Path, text: str) -> LoadedDocument:
    """The Markdown ``text`` of ``path`` as a document (see :func:`load_markdown`)."""
    lines = text.split("\n")
    front_matter, body = _split_front_matter(lines)
    blocks = [Block(line) for line in front_matter] + _markdown_blocks(body)
    title = first_heading(blocks) or _front_matter_title(front_matter)
    return make_document(path, "md", sections_from_blocks(blocks), title=title)


def _split_front_matter(lines: list[str]) -> tuple[list[str], list[str]]:
    """YAML front matter is kept as text but must not be read as headings (its "---" fences)."""
    if not lines or lines[0].strip() != "---":
        return [], lines
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            return lines[: end + 1], lines[end + 1 :]
    return [], lines


def _front_matter_title(front_matter: list[str]) -> str | None:
    for line in front_matter:
        match = _FRONT_MATTER_TITLE.match(line)
        if match:
            return match.group(1).strip("'\"")
    return None


def _markdown_blocks(lines: list[str]) -> list[Block]:
    """One block per line; heading lines (ATX or setext, outside code fences) carry their level."""
    blocks: list[Block] = []
    fence: str | None = None
    for line in lines:
        fence_match = _FENCE.match(line)
        if fence is not None:
            if fence_match and fence_match.group(1).startswith(fence):
                fence = None
            blocks.append(Block(line))
        elif fence_match:
            fence = fence_match.group(1)
            blocks.append(Block(line))
        elif heading := _ATX_HEADING.match(line):
            blocks.append(Block(line, level=len(heading.group(1)), title=(heading.group(2) or "").strip()))
        elif _is_setext_underline(line, blocks):
            previous = blocks.pop()
            level = 1 if line.strip().startswith("=") else 2
            blocks.append(Block(f"{previous.text}\n{line}", level=level, title=previous.text.strip()))
        else:
            blocks.append(Block(line))
    return blocks


def _is_setext_underline(line: str, blocks: list[Block]) -> bool:
    """An "===" or "---" line under a one-line paragraph makes that line a heading.

    Only one-line paragraphs count (a blank line or nothing before them), so a "---" under a
    longer paragraph stays a rule rather than swallowing the paragraph as a heading.
    """
    if not _SETEXT_UNDERLINE.match(line) or not blocks:
        return False
    previous = blocks[-1]
    if previous.level is not None or not previous.text.strip() or _NOT_PARAGRAPH.match(previous.text):
        return False
    return len(blocks) == 1 or not blocks[-2].text.strip()
