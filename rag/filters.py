"""The filters a security team asks for (severity at least, since a date, this host …) in the metadata filter language.

``rag ask``/``rag search`` flags build them with :class:`SearchFilters`; API clients send the
resulting filter as the ``filters`` field. The field names it uses are those the advisory and log
loaders put on every chunk:

===================  ==========================================================================
``advisory_id``      the advisory's own id (``CVE-2021-44228``, ``RUSTSEC-2020-0105``, ``RHSA-2021:5186``)
``severity_rank``    0 none, 1 low, 2 medium, 3 high, 4 critical (``severity`` holds the word)
``cvss``             highest CVSS base score (float)
``vendor``           affected vendor, lower case
``product``          affected product or package, lower case
``published_ts``     publication date as ``YYYYMMDD`` (``published`` holds the ISO date)
``format``           the feed or file format: ``cisa-kev``, ``csaf``, ``osv``, ``cve-json5``,
                     ``rustsec``, ``rubysec``, ``vuln-writeup``, ``log``, ``pdf`` …
``host``             log host (a chunk never mixes hosts)
``level_rank``       most severe log level in the chunk: 1 debug … 5 error … 8 emergency
``start_ts``         time of the chunk's first log line, ``YYYYMMDDhhmmss`` (``start_time`` ISO)
``end_ts``           time of its last log line
===================  ==========================================================================

For example ``{"severity_rank": {"$gte": 3}, "published_ts": {"$gte": 20210101}}`` or
``{"host": "web-01", "end_ts": {"$gte": 20261120104000}, "start_ts": {"$lte": 20261120104500}}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ingest.loaders.advisories import normalize_id
from ingest.loaders.advisories.cvss import SEVERITIES, SEVERITY_RANK, normalize_severity
from ingest.loaders.log_layouts import LEVEL_RANK, LEVELS, normalize_level
from stores.metadata_filter import MetadataFilter

_WHEN = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?")


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Search options in a security team's words; :meth:`to_filter` turns them into a metadata filter.

    Dates are ISO (``2021-12-10``); log times ``2015-07-29T17:41`` or ``2015-07-29 17:41:44`` (a bare
    date means the whole day). Every option narrows: they all must hold.

    Usage::

        where = SearchFilters(severity_at_least="high", since="2021-01-01").to_filter()
        retriever.run("sec", "remote code execution in Apache", filters=where)
    """

    advisory_id: str | None = None
    severity_at_least: str | None = None
    cvss_at_least: float | None = None
    vendor: str | None = None
    product: str | None = None
    since: str | None = None
    until: str | None = None
    source: str | None = None
    host: str | None = None
    level_at_least: str | None = None
    after: str | None = None
    before: str | None = None

    def __post_init__(self) -> None:
        if self.severity_at_least is not None and normalize_severity(self.severity_at_least) is None:
            raise ValueError(f"unknown severity {self.severity_at_least!r}; use one of {', '.join(SEVERITIES)}")
        if self.level_at_least is not None and normalize_level(self.level_at_least) is None:
            raise ValueError(f"unknown log level {self.level_at_least!r}; use one of {', '.join(LEVELS)}")
        if self.cvss_at_least is not None and not 0 <= self.cvss_at_least <= 10:
            raise ValueError(f"a CVSS score is between 0 and 10, got {self.cvss_at_least}")
        for name in ("since", "until", "after", "before"):
            value = getattr(self, name)
            if value is not None and not _WHEN.fullmatch(value.strip()):
                raise ValueError(f"--{name}: expected a date like 2021-12-10 or 2021-12-10T10:42, got {value!r}")

    def to_filter(self) -> MetadataFilter | None:
        """The metadata filter, or ``None`` when no option is set."""
        where: dict[str, Any] = {}
        if self.advisory_id:
            where["advisory_id"] = normalize_id(self.advisory_id)
        if self.severity_at_least:
            where["severity_rank"] = {"$gte": SEVERITY_RANK[normalize_severity(self.severity_at_least) or "none"]}
        if self.cvss_at_least is not None:
            where["cvss"] = {"$gte": float(self.cvss_at_least)}
        if self.vendor:
            where["vendor"] = self.vendor.strip().lower()
        if self.product:
            where["product"] = self.product.strip().lower()
        published = {}
        if self.since:
            published["$gte"] = when(self.since) // 10**6
        if self.until:
            published["$lte"] = when(self.until, end=True) // 10**6
        if published:
            where["published_ts"] = published
        if self.source:
            where["format"] = self.source.strip().lower()
        if self.host:
            where["host"] = self.host.strip()
        if self.level_at_least:
            where["level_rank"] = {"$gte": LEVEL_RANK[normalize_level(self.level_at_least) or "debug"]}
        # A chunk of log lines overlaps [after, before] when it ends after the start and starts before the end.
        if self.after:
            where["end_ts"] = {"$gte": when(self.after)}
        if self.before:
            where["start_ts"] = {"$lte": when(self.before, end=True)}
        return where or None


def when(text: str, end: bool = False) -> int:
    """``"2015-07-29T17:41"`` → ``20150729174100``; with ``end`` a missing part means its last second."""
    match = _WHEN.fullmatch(text.strip())
    if not match:
        raise ValueError(f"expected a date like 2021-12-10 or 2021-12-10T10:42, got {text!r}")
    year, month, day, hour, minute, second = match.groups()
    if hour is None:
        hour, minute, second = ("23", "59", "59") if end else ("00", "00", "00")
    elif second is None:
        second = "59" if end else "00"
    return int(f"{year}{month}{day}{hour}{minute}{second}")
