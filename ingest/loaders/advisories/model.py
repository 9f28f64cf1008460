"""One advisory, whatever feed it came from, and how it becomes a document people and filters can read.

Every feed's loader fills an :class:`Advisory`; :meth:`Advisory.document` writes it as readable
sections (overview, affected, remediation, details), each naming the advisory, and puts the same
normalized metadata on all of them (see :data:`ADVISORY_FIELDS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ingest.document import LIST_SEPARATOR, LoadedDocument, LoadError, Section
from ingest.loaders.advisories.cvss import (
    SEVERITY_RANK,
    base_score,
    cvss_version,
    normalize_severity,
    severity_of_score,
)
from stores.text_analysis import ADVISORY_PREFIXES

# The metadata every advisory chunk may carry (all scalars; lists joined with "; ").
ADVISORY_FIELDS = {
    "format": "the feed: cisa-kev, csaf, osv, cve-json5, rustsec, rubysec, vuln-writeup",
    "advisory_id": "the advisory's own id (CVE-…, GHSA-…, RUSTSEC-…, RHSA-…); upper case but GHSA's tail",
    "aliases": "other ids of the same advisory",
    "cves": "every CVE id the advisory covers",
    "severity": "none, low, medium, high or critical",
    "severity_rank": "0 (none) … 4 (critical)",
    "cvss": "the highest CVSS base score (float)",
    "cvss_vector": "its vector",
    "vendor": "affected vendor, lower case",
    "product": "affected product or package, lower case",
    "products": "all affected products or packages, as written",
    "ecosystem": "package ecosystem (crates.io, RubyGems, PyPI, npm, Maven, Go …)",
    "affected_versions": "affected version ranges",
    "fixed_versions": "patched or fixed versions",
    "cwes": "CWE ids",
    "published": "ISO date the advisory was published (CISA KEV: added to the catalog)",
    "published_ts": "the same as an integer YYYYMMDD, for range filters",
    "modified": "ISO date of the last change",
    "modified_ts": "YYYYMMDD",
    "due_date": "CISA KEV: date by which the required action is due",
    "due_date_ts": "YYYYMMDD",
    "required_action": "CISA KEV: what must be done",
    "known_exploited": "true when a catalog of exploited vulnerabilities lists it",
    "ransomware": "CISA KEV: known use in ransomware campaigns (known / unknown)",
    "references": "number of references",
    "reference": "the first reference URL",
    "withdrawn": "true for a withdrawn or rejected advisory",
    "lang": "language of a write-up (en, zh)",
}

_ID_PREFIXES = re.compile(rf"^(?:{'|'.join(ADVISORY_PREFIXES)})-", re.I)
CVE_ID = re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.IGNORECASE)


def normalize_id(identifier: str) -> str:
    """``cve-2021-44228`` → ``CVE-2021-44228``; GitHub ids keep their lower-case tail (``GHSA-jfh8-c2jp-5v3q``)."""
    identifier = identifier.strip()
    if identifier[:5].upper() == "GHSA-":
        return "GHSA-" + identifier[5:].lower()
    return identifier.upper() if _ID_PREFIXES.match(identifier) else identifier


def as_date(value: object) -> str | None:
    """An ISO date (``YYYY-MM-DD``) from a date, a datetime or an ISO-like string; ``None`` otherwise."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        match = re.match(r"\s*(\d{4})-(\d{2})-(\d{2})", value)
        if match:
            return "-".join(match.groups())
    return None


def date_number(iso_date: str) -> int:
    """``"2021-12-10"`` → ``20211210``."""
    return int(iso_date[:10].replace("-", ""))


def unique(values: Iterable[object]) -> list[str]:
    """Non-empty strings of ``values``, stripped, first occurrence kept."""
    seen: dict[str, None] = {}
    for value in values:
        text = str(value).strip() if value is not None else ""
        if text:
            seen.setdefault(text, None)
    return list(seen)


@dataclass
class Advisory:
    """A security advisory in the terms every feed shares; unknown fields stay empty."""

    fmt: str
    id: str
    title: str = ""
    summary: str = ""
    details: str = ""
    aliases: list[str] = field(default_factory=list)
    cve_ids: list[str] = field(default_factory=list)  # CVEs a bulletin covers besides its own id (CSAF)
    severity: str | None = None  # a vendor word; normalized on output
    cvss_score: float | None = None
    cvss_vector: str | None = None
    vendor: str | None = None
    product: str | None = None
    products: list[str] = field(default_factory=list)
    ecosystem: str | None = None
    affected: list[str] = field(default_factory=list)  # readable lines: "Apache Log4j2 2.0-beta9 to 2.14.1"
    affected_versions: list[str] = field(default_factory=list)
    fixed_versions: list[str] = field(default_factory=list)
    remediation: list[str] = field(default_factory=list)
    cwes: list[str] = field(default_factory=list)
    published: str | None = None
    modified: str | None = None
    references: list[str] = field(default_factory=list)
    due_date: str | None = None
    required_action: str | None = None
    known_exploited: bool = False
    ransomware: str | None = None
    withdrawn: bool = False
    notes: list[tuple[str, str]] = field(default_factory=list)  # (heading, text): per-vulnerability details
    source_name: str = ""  # the feed in words, for the text: "CISA Known Exploited Vulnerabilities catalog"

    def document(self, path: Path, part: str = "") -> LoadedDocument:
        """This advisory as a document of ``path`` (``part`` = its id when the file holds several)."""
        if not self.id.strip():
            raise LoadError(str(path), f"a {self.fmt} advisory without an id")
        self._complete()
        metadata = self.metadata()
        sections = [Section(text, {"section": name}) for name, text in self.sections() if text.strip()]
        title = f"{self.id}: {self.title}" if self.title and self.id not in self.title else self.title or self.id
        return LoadedDocument(source=str(path), title=title, sections=sections, metadata=metadata, part=part)

    def _complete(self) -> None:
        """Fill what follows from other fields: the score of a vector, the severity of a score, CVE ids."""
        self.id = normalize_id(self.id)
        self.aliases = [a for a in unique(normalize_id(a) for a in self.aliases) if a != self.id]
        if self.cvss_score is None and self.cvss_vector:
            self.cvss_score = base_score(self.cvss_vector)
        if normalize_severity(self.severity) is None and self.cvss_score is not None:
            self.severity = severity_of_score(self.cvss_score, cvss_version(self.cvss_vector or "") or "3")

    def cves(self) -> list[str]:
        return unique(i for i in [self.id, *self.aliases, *map(normalize_id, self.cve_ids)] if CVE_ID.fullmatch(i))

    def metadata(self) -> dict[str, Any]:
        severity = normalize_severity(self.severity)
        meta: dict[str, Any] = {"format": self.fmt, "advisory_id": self.id}
        optional: dict[str, Any] = {
            "aliases": LIST_SEPARATOR.join(self.aliases),
            "cves": LIST_SEPARATOR.join(self.cves()),
            "severity": severity,
            "severity_rank": SEVERITY_RANK[severity] if severity else None,
            "cvss": round(float(self.cvss_score), 1) if self.cvss_score is not None else None,
            "cvss_vector": self.cvss_vector,
            "vendor": (self.vendor or "").strip().lower(),
            "product": (self.product or "").strip().lower(),
            "products": LIST_SEPARATOR.join(unique(self.products)),
            "ecosystem": self.ecosystem,
            "affected_versions": LIST_SEPARATOR.join(unique(self.affected_versions)),
            "fixed_versions": LIST_SEPARATOR.join(unique(self.fixed_versions)),
            "cwes": LIST_SEPARATOR.join(unique(c.upper() for c in self.cwes)),
            "required_action": self.required_action,
            "ransomware": (self.ransomware or "").lower(),
            "references": len(unique(self.references)) or None,
            "reference": self.references[0] if self.references else None,
        }
        meta.update({key: value for key, value in optional.items() if value not in (None, "")})
        for key in ("published", "modified", "due_date"):
            value = getattr(self, key)
            if value:
                meta[key] = value
                meta[f"{key}_ts"] = date_number(value)
        if self.known_exploited:
            meta["known_exploited"] = True
        if self.withdrawn:
            meta["withdrawn"] = True
        return meta

    def _target(self) -> str:
        """ "Apache Log4j2", "abi_stable (crates.io)": the vendor and product as a reader names them."""
        product, vendor = (self.product or "").strip(), (self.vendor or "").strip()
        if vendor and not product.lower().startswith(vendor.lower()):
            product = f"{vendor} {product}".strip()
        return f"{product} ({self.ecosystem})" if product and self.ecosystem else product

    def sections(self) -> list[tuple[str, str]]:
        """(name, text) pairs; every text names the advisory so a chunk stands on its own."""
        heading = f"{self.id}: {self.title}" if self.title else self.id
        overview = [heading if heading.rstrip().endswith((".", "!", "?", "。")) else heading + "."]
        if self.aliases:
            overview.append(f"Also known as {', '.join(self.aliases)}.")
        if self.withdrawn:
            overview.append("This advisory has been withdrawn.")
        if self.known_exploited:
            line = f"Known to be exploited in the wild: {self.id} is listed in the {self.source_name}"
            line += f" since {self.published}" if self.published else ""
            overview.append(line + (f", and the required action is due by {self.due_date}." if self.due_date else "."))
            if self.ransomware:
                overview.append(f"Known use in ransomware campaigns: {self.ransomware}.")
        targets = unique([self._target(), *(p for p in self.products if p != self.product), *self.affected])
        if targets:
            overview.append(f"Affected: {'; '.join(targets)}.")
        if self.affected_versions:
            overview.append(f"Affected versions: {', '.join(unique(self.affected_versions))}.")
        if self.fixed_versions:
            overview.append(f"Fixed in: {', '.join(unique(self.fixed_versions))}.")
        if self.summary:
            overview.append(self.summary.strip())
        if self.details and self.details.strip() != self.summary.strip():
            overview.append(self.details.strip())

        remediation = []
        if self.required_action:
            due = f", due {self.due_date}" if self.due_date else ""
            remediation.append(f"Required action for {self.id}{due}: {self.required_action.strip()}")
        remediation += [f"Remediation for {self.id}: {text.strip()}" for text in unique(self.remediation)]

        details = []
        severity = normalize_severity(self.severity)
        if severity or self.cvss_score is not None:
            score = f", CVSS {self.cvss_score:.1f}" if self.cvss_score is not None else ""
            vector = f" ({self.cvss_vector})" if self.cvss_vector and score else ""
            details.append(f"Severity of {self.id}: {severity or 'unrated'}{score}{vector}.")
        if self.cwes:
            details.append(f"Weaknesses of {self.id}: {', '.join(unique(self.cwes))}.")
        dates = [] if self.known_exploited else [f"published {self.published}" if self.published else ""]
        dates.append(f"last modified {self.modified}" if self.modified else "")
        if any(dates):
            details.append(f"{self.id} was " + " and ".join(d for d in dates if d) + ".")
        if self.source_name:
            details.append(f"Source: {self.source_name}.")
        if self.references:
            details.append("References: " + " ; ".join(unique(self.references)[:8]))
        return [
            ("Overview", "\n".join(overview)),
            ("Remediation", "\n".join(remediation)),
            *self.notes,
            ("Severity and references", "\n".join(details)),
        ]
