"""Log files, streamed: runs of whole lines tagged with their line numbers, time range, host, process and level.

A 1 GB log is never one string: the file is read line by line each time its sections are walked
(:class:`LogSections`), and ingestion embeds and stores the chunks in batches as they come.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from itertools import islice
from pathlib import Path

from ingest.document import LIST_SEPARATOR, LoadedDocument, Section
from ingest.encoding import open_text
from ingest.loaders.log_layouts import LEVEL_RANK, SAMPLE_LINES, LogLayout, LogRecord, detect_layout, fix_year, iso

# A run fits one chunk of the default 500-character chunk size, so each chunk's metadata is its own.
LOG_SECTION_CHARS = 480
# A record with a long continuation (a stack trace) is cut between lines once its run is this long.
MAX_RUN_CHARS = 4 * LOG_SECTION_CHARS
MAX_PROCESSES = 5
# A .txt file is read as a log when this share of its first lines is in a known layout with a level or host.
TXT_LOG_SHARE = 0.8


def load_log(path: Path) -> LoadedDocument:
    """A log file as runs of whole lines; see :class:`LogSections` for the metadata of each run."""
    layout = sniff_layout(path)
    return LoadedDocument(
        source=str(path),
        title=path.stem,
        sections=LogSections(path, layout),
        metadata={"format": "log", "log_format": layout.name if layout else "plain"},
    )


def sniff_layout(path: Path, lines: int = SAMPLE_LINES) -> LogLayout | None:
    """The line layout of the log at ``path``, judged from its first ``lines`` lines."""
    with open_text(path) as file:
        return detect_layout(line.rstrip("\n") for line in islice(file, lines))


def looks_like_log(path: Path) -> bool:
    """Whether a text file is a log (syslog-style text saved as .txt): most first lines in one known layout."""
    with open_text(path) as file:
        sample = [line.rstrip("\n") for line in islice(file, 50) if line.strip()]
    layout = detect_layout(sample)
    if layout is None or layout.name == "iso-time" or len(sample) < 2:
        return False
    return sum(1 for line in sample if layout.pattern.match(line)) >= TXT_LOG_SHARE * len(sample)


class LogSections:
    """The sections of a log file, read from the file again on every pass (never held in memory).

    Each section is a run of whole lines that fits ``max_chars`` (a longer single line stays whole),
    starting where a record starts, so a stack trace stays with its record. Its metadata:
    ``line_start``/``line_end`` (1-based), and where the layout has them ``start_time``/``end_time``
    (ISO, as written in the log) with ``start_ts``/``end_ts`` (``YYYYMMDDhhmmss`` integers, for range
    filters), ``host`` (a run never mixes hosts), ``process`` (the processes or components, joined
    with ``"; "``), and ``level`` with ``level_rank`` (the most severe level in the run, 1 = debug
    … 8 = emergency).

    Usage::

        for section in LogSections(Path("app.log"), layout):
            print(section.metadata["line_start"], section.metadata.get("level"))
    """

    def __init__(self, path: Path, layout: LogLayout | None, max_chars: int = LOG_SECTION_CHARS) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        self.path = path
        self.layout = layout
        self.max_chars = max_chars
        self.modified = date.fromtimestamp(path.stat().st_mtime)

    def __iter__(self) -> Iterator[Section]:
        layout, year = self.layout, self.modified.year
        run = _Run(1)
        with open_text(self.path) as file:
            for number, raw in enumerate(file, start=1):
                line = raw[:-1] if raw.endswith("\n") else raw
                record = layout.parse(line, year) if layout else None
                if record is not None and layout is not None and layout.needs_year and record.ts:
                    record = LogRecord(fix_year(record.ts, self.modified), record.host, record.process, record.level)
                if run.lines and self._breaks(run, line, record):
                    if section := run.section():
                        yield section
                    run = _Run(number)
                run.add(line, record)
        if run.lines and (section := run.section()):
            yield section

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None

    def _breaks(self, run: _Run, line: str, record: LogRecord | None) -> bool:
        if record is None:  # a continuation line stays with its record unless the run grows too long
            return run.chars + len(line) > MAX_RUN_CHARS
        if record.host and run.host and record.host != run.host:
            return True
        return run.chars + len(line) + 1 > self.max_chars


class _Run:
    """Lines being gathered into one section, with what their records say."""

    def __init__(self, first_line: int) -> None:
        self.first_line = first_line
        self.lines: list[str] = []
        self.chars = 0
        self.start_ts = 0
        self.end_ts = 0
        self.host: str | None = None
        self.processes: dict[str, None] = {}
        self.level: str | None = None

    def add(self, line: str, record: LogRecord | None) -> None:
        self.lines.append(line)
        self.chars += len(line) + 1
        if record is None:
            return
        if record.ts:
            self.start_ts = min(self.start_ts or record.ts, record.ts)
            self.end_ts = max(self.end_ts, record.ts)
        self.host = self.host or record.host
        if record.process and len(self.processes) < MAX_PROCESSES:
            self.processes[record.process] = None
        if record.level and (self.level is None or LEVEL_RANK[record.level] > LEVEL_RANK[self.level]):
            self.level = record.level

    def section(self) -> Section | None:
        text = "\n".join(self.lines)
        if not text.strip():
            return None
        metadata: dict[str, str | int] = {
            "line_start": self.first_line,
            "line_end": self.first_line + len(self.lines) - 1,
        }
        if self.start_ts:
            metadata |= {
                "start_time": iso(self.start_ts),
                "end_time": iso(self.end_ts),
                "start_ts": self.start_ts,
                "end_ts": self.end_ts,
            }
        if self.host:
            metadata["host"] = self.host
        if self.processes:
            metadata["process"] = LIST_SEPARATOR.join(self.processes)
        if self.level:
            metadata |= {"level": self.level, "level_rank": LEVEL_RANK[self.level]}
        return Section(text, metadata)
