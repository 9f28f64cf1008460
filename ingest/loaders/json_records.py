"""JSON and JSON Lines files rendered as readable "path: value" text rather than raw syntax.

Braces and quotes only dilute embeddings; "author.name: 张三" keeps each value with its key.
Records that carry their own prose (a ``text``/``content``/``body`` field) use it as the text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.document import LoadedDocument, LoadError, Section
from ingest.encoding import read_text
from ingest.loaders.common import make_document

TEXT_FIELDS = ("text", "content", "body")
TITLE_FIELD = "title"


def load_json(path: Path) -> LoadedDocument:
    """A .json file; a top-level array gives one section per item (``metadata["item"]``, 1-based)."""
    return json_document(path, read_json(path))


def read_json(path: Path) -> Any:
    """The parsed contents of a .json file; :class:`LoadError` says where it is invalid."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise LoadError(str(path), f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def json_document(path: Path, data: Any, fmt: str = "json") -> LoadedDocument:
    """Parsed JSON (or YAML) data as a document: one section per item of a top-level array."""
    if isinstance(data, list):
        sections = [record_section(item, {"item": number}) for number, item in enumerate(data, start=1)]
    else:
        sections = [record_section(data, {})]
    return make_document(path, fmt, sections, title=_title_of(data))


def load_jsonl(path: Path) -> LoadedDocument:
    """A .jsonl file, one section per record with ``metadata["line"]`` (1-based); blank lines skipped."""
    sections = []
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoadError(str(path), f"invalid JSON on line {number}, column {exc.colno}: {exc.msg}") from exc
        sections.append(record_section(record, {"line": number}))
    return make_document(path, "jsonl", sections)


def record_section(record: Any, metadata: dict[str, Any]) -> Section:
    """One record as a section: its prose field (titled) if it has one, else all its values."""
    body = _prose(record)
    if body is None:
        return Section("\n".join(json_lines(record)), metadata)
    title = _title_of(record)
    if title is None:
        return Section(body, metadata)
    # A blank line keeps the title a paragraph of its own: never glued to the first sentence when quoted.
    return Section(f"{title}\n\n{body}", {**metadata, "section": title})


def json_lines(value: Any, path: str = "") -> Iterator[str]:
    """Lines "a.b: value" for every scalar; a list of objects becomes blank-line separated blocks."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_lines(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        yield from _list_lines(value, path)
    else:
        yield f"{path}: {_scalar(value)}" if path else _scalar(value)


def _list_lines(items: list[Any], path: str) -> Iterator[str]:
    if not any(isinstance(item, (dict, list)) for item in items):
        scalars = ", ".join(_scalar(item) for item in items)
        if scalars:
            yield f"{path}: {scalars}" if path else scalars
        return
    for index, item in enumerate(items):
        if index and isinstance(item, dict):
            yield ""
        yield from json_lines(item, f"{path}[{index}]")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _prose(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    for field in TEXT_FIELDS:
        value = record.get(field)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _title_of(record: Any) -> str | None:
    title = record.get(TITLE_FIELD) if isinstance(record, dict) else None
    return title.strip() if isinstance(title, str) and title.strip() else None
