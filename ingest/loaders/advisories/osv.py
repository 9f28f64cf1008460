"""OSV records (https://ossf.github.io/osv-schema/): GitHub, PyPI, Go, RustSec and other advisories as JSON.

A file holds one record, or a list of them (one document each, named by the record id).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.document import LoadedDocument
from ingest.loaders.advisories.cvss import base_score
from ingest.loaders.advisories.model import Advisory, as_date, unique


def is_osv(data: Any) -> bool:
    """An OSV record has an ``id``, a ``modified`` time and what it is about (affected, summary, details)."""
    if isinstance(data, list):
        return bool(data) and all(is_osv(item) for item in data)
    return (
        isinstance(data, dict)
        and isinstance(data.get("id"), str)
        and "modified" in data
        and any(key in data for key in ("affected", "summary", "details", "aliases"))
    )


def osv_documents(path: Path, data: dict[str, Any] | list[dict[str, Any]]) -> list[LoadedDocument]:
    if isinstance(data, dict):
        return [osv_advisory(data).document(path)]
    documents: dict[str, LoadedDocument] = {}
    for record in data:
        documents.setdefault(record["id"], osv_advisory(record).document(path, part=record["id"]))
    return list(documents.values())


def osv_advisory(record: dict[str, Any]) -> Advisory:
    affected = [a for a in record.get("affected") or [] if isinstance(a, dict)]
    packages = [a.get("package") or {} for a in affected]
    ranges, fixed = [], []
    for entry in affected:
        for span in entry.get("ranges") or []:
            text, fixes = _range_text(span)
            ranges += text
            fixed += fixes
        if entry.get("versions") and not entry.get("ranges"):
            ranges.append(", ".join(map(str, entry["versions"][:20])))
    vector, score = _cvss(record.get("severity") or [s for a in affected for s in a.get("severity") or []])
    specific = record.get("database_specific") or {}
    names = unique(p.get("name") for p in packages)
    ecosystems = unique(p.get("ecosystem") for p in packages)
    return Advisory(
        fmt="osv",
        id=record["id"],
        title=str(record.get("summary") or ""),
        details=str(record.get("details") or ""),
        aliases=[str(a) for a in record.get("aliases") or []],
        severity=specific.get("severity") if isinstance(specific.get("severity"), str) else None,
        cvss_score=score,
        cvss_vector=vector,
        product=names[0] if names else None,
        products=names[:1],
        ecosystem=ecosystems[0] if ecosystems else None,
        affected=[f"{p['name']} ({p.get('ecosystem')})" for p in packages[1:] if p.get("name")],
        affected_versions=ranges,
        fixed_versions=fixed,
        remediation=[f"upgrade {name} to {', '.join(fixed)} or later" for name in names[:1] if fixed],
        cwes=[str(c) for c in specific.get("cwe_ids") or []],
        published=as_date(record.get("published")),
        modified=as_date(record.get("modified")),
        references=[r.get("url") for r in record.get("references") or [] if isinstance(r, dict) and r.get("url")],
        withdrawn=bool(record.get("withdrawn")),
        source_name="OSV record",
    )


def _range_text(span: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Readable ranges from OSV events ("introduced 2.0.0, fixed 2.15.0" → ">= 2.0.0, < 2.15.0") and the fixes."""
    texts, fixes, start = [], [], None
    for event in span.get("events") or []:
        if "introduced" in event:
            start = str(event["introduced"])
        elif "fixed" in event or "last_affected" in event or "limit" in event:
            end = event.get("fixed") or event.get("limit")
            bound = f"< {end}" if end else f"<= {event['last_affected']}"
            texts.append(f">= {start}, {bound}" if start not in (None, "0") else bound)
            if event.get("fixed"):
                fixes.append(str(event["fixed"]))
            start = None
    if start is not None:
        texts.append(f">= {start}" if start != "0" else "all versions")
    if span.get("type") == "GIT":
        return [f"commits {t}" for t in texts], []
    return texts, fixes


def _cvss(severities: list[Any]) -> tuple[str | None, float | None]:
    """The CVSS vector with the highest computable score (v3 and v2; a v4 vector is kept without one)."""
    vectors = [
        str(s.get("score")) for s in severities if isinstance(s, dict) and str(s.get("type", "")).startswith("CVSS")
    ]
    scored = [(base_score(v), v) for v in vectors]
    known = [(score, v) for score, v in scored if score is not None]
    if known:
        score, vector = max(known)
        return vector, score
    return (vectors[0], None) if vectors else (None, None)
