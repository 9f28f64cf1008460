"""Spreadsheets (.xlsx) and CSV files: rows as lines that keep each value next to its column name.

"price: 12 | 城市: 北京" embeds and retrieves far better than a bare "12\t北京", so when the
first row looks like a header every row is written against it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, time
from itertools import zip_longest
from pathlib import Path
from typing import Any

import openpyxl

from ingest.budget import spend
from ingest.document import LoadedDocument, Section
from ingest.encoding import read_text
from ingest.loaders.common import CELL_SEPARATOR, make_document

# CSV sections stay small so a citation's row range points near the row.
CSV_ROWS_PER_SECTION = 50

_FIELD_SEPARATOR = " | "
_CSV_DELIMITERS = ",;\t|"
_CSV_SNIFF_CHARS = 64 * 1024
# Values that make a first row data rather than a header, even when stored as text (CSV).
_NUMBER_OR_DATE = re.compile(r"^[-+]?[\d.,]+%?$|^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}")


def load_xlsx(path: Path) -> LoadedDocument:
    """An .xlsx workbook, one section per worksheet with ``metadata["sheet"]``.

    Read-only mode streams rows from the file once; cached formula results are used
    (``data_only``) because formulas are not what a reader sees.
    """
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sections = [_sheet_section(sheet) for sheet in workbook.worksheets if hasattr(sheet, "iter_rows")]
        title = workbook.properties.title
    finally:
        workbook.close()  # read-only mode keeps the zip file open until closed
    return make_document(path, "xlsx", sections, title=title)


def _sheet_section(sheet: Any) -> Section:
    # Some writers store a wrong used range, which would cut rows off or pad millions of empty ones.
    if hasattr(sheet, "reset_dimensions"):
        sheet.reset_dimensions()
    lines = [line for _, line in table_lines(sheet.iter_rows(values_only=True))]
    return Section("\n".join(lines), {"sheet": sheet.title})


def load_csv(path: Path) -> LoadedDocument:
    """A CSV file (any encoding, sniffed delimiter) in sections of at most
    :data:`CSV_ROWS_PER_SECTION` rows, tagged with 1-based data-row numbers ``row_start``/``row_end``.
    """
    text = read_text(path)
    rows = csv.reader(io.StringIO(text, newline=""), _sniff_dialect(text))
    numbered = list(table_lines(rows))
    sections = [
        Section(
            "\n".join(line for _, line in batch),
            {"row_start": batch[0][0], "row_end": batch[-1][0]},
        )
        for batch in (
            numbered[start : start + CSV_ROWS_PER_SECTION] for start in range(0, len(numbered), CSV_ROWS_PER_SECTION)
        )
    ]
    return make_document(path, "csv", sections)


def _sniff_dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(text[:_CSV_SNIFF_CHARS], delimiters=_CSV_DELIMITERS)
    except csv.Error:
        return csv.excel  # one column, or too irregular to tell: plain commas


def table_lines(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[int, str]]:
    """Render rows as ``(data_row_number, line)``, skipping rows with no values.

    The first non-empty row is taken as the header when it looks like one (see
    :func:`looks_like_header`); data rows are then "name: value | name: value", otherwise
    tab-separated values. Data rows are numbered from 1 after the header; blank rows count,
    so numbers stay positional. Each cell, empty or not, counts against the parse budget
    (:func:`ingest.budget.spend`): one value in the last of 16,384 columns must not cost 16,384 cells a row.
    """
    header: list[str] | None = None
    seen_first = False
    number = 0
    for row in rows:
        spend(len(row))
        cells = [format_cell(value) for value in row]
        if not seen_first and any(cells):
            seen_first = True
            if looks_like_header(row):
                header = cells
                continue
        number += 1
        if any(cells):
            line = render_row(cells, header)
            spend(len(line))
            yield number, line


def render_row(cells: Sequence[str], header: Sequence[str] | None) -> str:
    """One row as a line: "h1: v1 | h2: v2" against a header (empty values left out), else tabs."""
    if header is None:
        values = list(cells)
        while values and not values[-1]:
            values.pop()
        return CELL_SEPARATOR.join(values)
    pairs = zip_longest(header, cells, fillvalue="")
    return _FIELD_SEPARATOR.join(f"{name}: {value}" if name else value for name, value in pairs if value)


def looks_like_header(row: Sequence[Any]) -> bool:
    """A header row is all text (no numbers, dates or number-like strings) with some value."""
    values = [value for value in row if value is not None and str(value).strip()]
    return bool(values) and all(isinstance(value, str) and not _NUMBER_OR_DATE.match(value.strip()) for value in values)


def format_cell(value: Any) -> str:
    """A cell value as one line of text: integral floats without ".0", dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return " ".join(str(value).split())
