"""Log line layouts: which one a file uses, and the time, host, process and level of each line.

Covers syslog (RFC 3164, RFC 5424, RFC 3339 timestamps), Apache error and access logs (Common and
Combined, nginx alike), HDFS, log4j-style Java logs (Zookeeper, Hadoop), Spark and Proxifier. A
layout is chosen per file from its first lines; a line that does not match it (a stack trace, a
wrapped message) continues the line before.

Times are kept as written (no time zone conversion) as a sortable integer ``YYYYMMDDhhmmss``;
a layout without a year (classic syslog, Proxifier) takes it from the file's modification time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTHS = {name: number for number, name in enumerate(MONTH_NAMES, 1)}

# Syslog severities, lowest first; rank 1 (debug) to 8 (emergency) so "at least error" is ``>= 5``.
LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS, 1)}
_LEVEL_ALIASES = {
    "trace": "debug", "fine": "debug", "finer": "debug", "finest": "debug", "verbose": "debug", "dbg": "debug",
    "information": "info", "informational": "info", "config": "info",
    "warn": "warning",
    "err": "error", "severe": "error", "failure": "error",
    "crit": "critical", "fatal": "critical",
    "emerg": "emergency", "panic": "emergency",
}  # fmt: skip
_PRI_SEVERITY = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")


def normalize_level(word: str | None) -> str | None:
    """``"WARN"`` → ``"warning"``; ``None`` for words that are not a level (Apache's ``trace1`` is debug)."""
    if not word:
        return None
    word = word.lower().rstrip("0123456789") if word.lower().startswith("trace") else word.lower()
    word = _LEVEL_ALIASES.get(word, word)
    return word if word in LEVEL_RANK else None


@dataclass(frozen=True, slots=True)
class LogRecord:
    """What one line says about itself; ``ts`` is ``YYYYMMDDhhmmss`` or 0 when it has no time."""

    ts: int = 0
    host: str | None = None
    process: str | None = None
    level: str | None = None


@dataclass(frozen=True, slots=True)
class LogLayout:
    """A line format: ``pattern`` must match at the start of a line that begins a record."""

    name: str
    pattern: re.Pattern[str]
    record: Callable[[re.Match[str], int], LogRecord]  # (match, year for layouts without one)
    needs_year: bool = False

    def parse(self, line: str, year: int) -> LogRecord | None:
        match = self.pattern.match(line)
        return self.record(match, year) if match else None


def _ts(year: int | str, month: int | str, day: int | str, hms: str) -> int:
    """``YYYYMMDDhhmmss`` from parts; ``hms`` is ``hh:mm:ss`` or ``hhmmss``."""
    digits = hms.replace(":", "")
    return int(f"{int(year):04d}{int(month):02d}{int(day):02d}{digits[:6]:0<6}")


def _iso_ts(match: re.Match[str]) -> int:
    return _ts(match["date"][:4], match["date"][5:7], match["date"][8:10], match["time"])


def _syslog_5424(m: re.Match[str], year: int) -> LogRecord:
    return LogRecord(_iso_ts(m), _dash_none(m["host"]), _dash_none(m["process"]), _PRI_SEVERITY[int(m["pri"]) % 8])


def _syslog(m: re.Match[str], year: int) -> LogRecord:
    level = _PRI_SEVERITY[int(m["pri"]) % 8] if m["pri"] else None
    return LogRecord(_ts(year, MONTHS[m["mon"]], m["day"], m["time"]), m["host"], m["process"], level)


def _syslog_iso(m: re.Match[str], year: int) -> LogRecord:
    return LogRecord(_iso_ts(m), m["host"], m["process"])


def _apache_error(m: re.Match[str], year: int) -> LogRecord:
    return LogRecord(
        _ts(m["year"], MONTHS[m["mon"]], m["day"], m["time"]), None, m["module"], normalize_level(m["level"])
    )


def _access(m: re.Match[str], year: int) -> LogRecord:
    status = int(m["status"])
    level = "error" if status >= 500 else "warning" if status >= 400 else "info"
    return LogRecord(_ts(m["year"], MONTHS[m["mon"]], m["day"], m["time"]), m["vhost"], None, level)


def _hdfs(m: re.Match[str], year: int) -> LogRecord:
    d = m["date"]
    return LogRecord(
        _ts(2000 + int(d[:2]), d[2:4], d[4:6], m["time"]), None, m["component"], normalize_level(m["level"])
    )


def _log4j(m: re.Match[str], year: int) -> LogRecord:
    return LogRecord(_iso_ts(m), None, m["component"], normalize_level(m["level"]))


def _iso_level(m: re.Match[str], year: int) -> LogRecord:
    component = m["component"].rstrip(":") if m["component"] else None
    return LogRecord(_iso_ts(m), None, component, normalize_level(m["level"]))


def _spark(m: re.Match[str], year: int) -> LogRecord:
    d = m["date"]
    return LogRecord(
        _ts(2000 + int(d[:2]), d[3:5], d[6:8], m["time"]), None, m["component"], normalize_level(m["level"])
    )


def _proxifier(m: re.Match[str], year: int) -> LogRecord:
    return LogRecord(_ts(year, m["mon"], m["day"], m["time"]), None, m["process"])


def _iso_only(m: re.Match[str], year: int) -> LogRecord:
    return LogRecord(_iso_ts(m))


def _dash_none(value: str) -> str | None:
    return None if value == "-" else value


_MON = r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_ISO = r"(?P<date>\d{4}-\d\d-\d\d)[ T](?P<time>\d\d:\d\d:\d\d)"
_LEVEL_WORD = r"(?i:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|SEVERE|CRITICAL|FATAL)"

# Most specific first: on a tie in matched lines the earlier layout wins.
LAYOUTS: tuple[LogLayout, ...] = (
    LogLayout(
        "syslog-rfc5424",
        re.compile(rf"<(?P<pri>\d{{1,3}})>1 {_ISO}(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)? (?P<host>\S+) (?P<process>\S+) \S+ "),
        _syslog_5424,
    ),
    LogLayout(
        "syslog",
        re.compile(
            rf"(?:<(?P<pri>\d{{1,3}})>)?{_MON} {{1,2}}(?P<day>\d{{1,2}}) (?P<time>\d\d:\d\d:\d\d) "
            r"(?P<host>[^\s:]+) (?P<process>[^\s\[:]+)(?:\[\d+\])?: "
        ),
        _syslog,
        needs_year=True,
    ),
    LogLayout(
        "syslog-rfc3339",
        re.compile(rf"{_ISO}(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d) (?P<host>[^\s:]+) (?P<process>[^\s\[:]+)(?:\[\d+\])?: "),
        _syslog_iso,
    ),
    LogLayout(
        "apache-error",
        re.compile(
            rf"\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) {_MON} (?P<day>\d\d) (?P<time>\d\d:\d\d:\d\d)(?:\.\d+)? "
            r"(?P<year>\d{4})\] \[(?:(?P<module>[\w-]+):)?(?P<level>\w+)\]"
        ),
        _apache_error,
    ),
    LogLayout(
        "access",
        re.compile(
            r"(?:(?P<vhost>[\w.-]+(?::\d+)?) )?(?P<client>[\w.:-]+) \S+ \S+ "
            rf"\[(?P<day>\d\d)/{_MON}/(?P<year>\d{{4}}):(?P<time>\d\d:\d\d:\d\d) [+-]\d{{4}}\] "
            r'"[^"]*" (?P<status>\d{3}) '
        ),
        _access,
    ),
    LogLayout(
        "hdfs",
        re.compile(r"(?P<date>\d{6}) (?P<time>\d{6}) \d+ (?P<level>[A-Z]+) (?P<component>[\w.$]+): "),
        _hdfs,
    ),
    LogLayout(
        "log4j",  # Zookeeper: "2015-07-29 17:41:44,747 - INFO  [thread:Class@774] - message"
        re.compile(rf"{_ISO}(?:[,.]\d+)? - (?P<level>[A-Z]+) +\[(?:.*:)?(?P<component>[\w$.]+)@\d+\]"),
        _log4j,
    ),
    LogLayout(
        "iso-level",  # Hadoop, Windows CBS, most applications: "<date> <time>[,ms] [tz] LEVEL [thread] rest"
        re.compile(
            rf"{_ISO}(?:[,.]\d+)?(?:Z|[+-]\d\d:?\d\d)?,? +(?:\[[^\]]*\] +)?(?P<level>{_LEVEL_WORD})\b:? *"
            r"(?:\[[^\]]*\] +)?(?P<component>[\w.$-]+:(?=\s))?"
        ),
        _iso_level,
    ),
    LogLayout(
        "spark",
        re.compile(r"(?P<date>\d\d/\d\d/\d\d) (?P<time>\d\d:\d\d:\d\d) (?P<level>[A-Z]+) (?P<component>[\w.$]+): "),
        _spark,
    ),
    LogLayout(
        "proxifier",
        re.compile(r"\[(?P<mon>\d\d)\.(?P<day>\d\d) (?P<time>\d\d:\d\d:\d\d)\] (?P<process>[^\s]+) - "),
        _proxifier,
        needs_year=True,
    ),
    LogLayout("iso-time", re.compile(rf"\[?{_ISO}"), _iso_only),
)
LAYOUT_NAMES = tuple(layout.name for layout in LAYOUTS)

# A file uses a layout when at least this share of its first non-blank lines match it.
MIN_SHARE = 0.5
SAMPLE_LINES = 200


def detect_layout(lines: Iterable[str]) -> LogLayout | None:
    """The layout most of the (first) ``lines`` match, or ``None`` when none fits half of them."""
    sample = [line for line in lines if line.strip()]
    if not sample:
        return None
    counts = [sum(1 for line in sample if layout.pattern.match(line)) for layout in LAYOUTS]
    best = max(range(len(LAYOUTS)), key=lambda i: (counts[i], -i))
    return LAYOUTS[best] if counts[best] >= MIN_SHARE * len(sample) else None


def fix_year(ts: int, modified: date) -> int:
    """A yearless time after the file was last written is from the year before (a log spanning New Year)."""
    if ts // 10**10 == modified.year and (ts // 10**6) % 10**4 > modified.month * 100 + modified.day:
        return ts - 10**10
    return ts


def iso(ts: int) -> str:
    """``20151029174144`` → ``"2015-10-29T17:41:44"``."""
    s = f"{ts:014d}"
    return f"{s[:4]}-{s[4:6]}-{s[6:8]}T{s[8:10]}:{s[10:12]}:{s[12:14]}"
