"""RubySec advisories (ruby-advisory-db): one YAML mapping per file, for a gem or a Ruby engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.document import LoadedDocument
from ingest.loaders.advisories.cvss import severity_of_score
from ingest.loaders.advisories.model import Advisory, as_date, unique


def is_rubysec(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and ("gem" in data or "engine" in data)
        and any(key in data for key in ("cve", "ghsa", "osvdb", "title"))
    )


def rubysec_document(path: Path, data: dict[str, Any]) -> LoadedDocument:
    return rubysec_advisory(data, path.stem).document(path)


def rubysec_advisory(data: dict[str, Any], stem: str = "") -> Advisory:
    gem = str(data.get("gem") or data.get("engine") or "")
    ids = unique(
        [
            f"CVE-{data['cve']}" if data.get("cve") else None,
            f"GHSA-{data['ghsa']}" if data.get("ghsa") else None,
            f"OSVDB-{data['osvdb']}" if data.get("osvdb") else None,
        ]
    )
    related = data.get("related") or {}
    patched = [str(v) for v in data.get("patched_versions") or []]
    unaffected = [str(v) for v in data.get("unaffected_versions") or []]
    score, version = next(
        (
            (float(data[key]), key[-1])
            for key in ("cvss_v4", "cvss_v3", "cvss_v2")
            if isinstance(data.get(key), int | float)
        ),
        (None, None),
    )
    notes = [("Notes", str(data["notes"]))] if data.get("notes") else []
    return Advisory(
        fmt="rubysec",
        id=ids[0] if ids else stem,
        title=str(data.get("title") or ""),
        details=str(data.get("description") or ""),
        aliases=ids[1:] + [c if str(c).upper().startswith("CVE-") else f"CVE-{c}" for c in related.get("cve") or []],
        cvss_score=score,
        severity=_severity(score, version),
        product=gem,
        products=[gem],
        ecosystem="RubyGems" if "gem" in data else "Ruby",
        affected=[f"framework {data['framework']}"] if data.get("framework") else [],
        affected_versions=[f"all except {', '.join(patched + unaffected)}"]
        if patched or unaffected
        else ["all versions"],
        fixed_versions=patched,
        remediation=[f"upgrade {gem} to {' or '.join(patched)}"] if patched else [],
        published=as_date(data.get("date")),
        references=unique([data.get("url"), *(related.get("url") or [])]),
        notes=notes,
        source_name="RubySec advisory database",
    )


def _severity(score: float | None, version: str | None) -> str | None:
    return severity_of_score(score, "2" if version == "2" else "3") if score is not None else None
