"""CVE records in the CVE JSON 5 format (cve.org, cvelistV5): one document per record.

The CNA container says what is affected; ADP containers (CISA's, say) may add scores and CWEs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.document import LoadedDocument
from ingest.loaders.advisories.model import Advisory, as_date, unique

_METRIC_KEYS = ("cvssV4_0", "cvssV3_1", "cvssV3_0", "cvssV2_0")


def is_cve5(data: Any) -> bool:
    return isinstance(data, dict) and data.get("dataType") == "CVE_RECORD" and isinstance(data.get("cveMetadata"), dict)


def cve5_document(path: Path, data: dict[str, Any]) -> LoadedDocument:
    return cve5_advisory(data).document(path)


def cve5_advisory(data: dict[str, Any]) -> Advisory:
    meta = data["cveMetadata"]
    containers = data.get("containers") or {}
    cna = containers.get("cna") or {}
    every = [cna, *(c for c in containers.get("adp") or [] if isinstance(c, dict))]
    affected = [a for a in cna.get("affected") or [] if isinstance(a, dict)]
    versions, fixed = [], []
    for entry in affected:
        for version in entry.get("versions") or []:
            text, fix = _version_text(version)
            (versions if version.get("status") == "affected" else fixed).append(text)
            fixed += fix
    metrics = [m for c in every for m in _metrics(c)]
    best = max(metrics, key=lambda m: (m[0] is not None, m[0] or 0), default=None)
    rejected = meta.get("state") == "REJECTED"
    descriptions = cna.get("descriptions") or cna.get("rejectedReasons") or []
    vendor = next((a.get("vendor") for a in affected if a.get("vendor") not in (None, "n/a")), None)
    products = unique(a.get("product") or a.get("packageName") for a in affected if a.get("product") != "n/a")
    return Advisory(
        fmt="cve-json5",
        id=str(meta.get("cveId")),
        title=str(cna.get("title") or ""),
        summary=_english(descriptions),
        severity=best[2] if best else None,
        cvss_score=best[0] if best else None,
        cvss_vector=best[1] if best else None,
        vendor=vendor,
        product=products[0] if products else None,
        products=products,
        affected=[" ".join(unique([a.get("vendor"), a.get("product")])) for a in affected if a.get("product")],
        affected_versions=versions,
        fixed_versions=fixed,
        remediation=[_english([s]) for s in [*(cna.get("solutions") or []), *(cna.get("workarounds") or [])]],
        cwes=unique(_cwes(every)),
        published=as_date(meta.get("datePublished") or cna.get("datePublic")),
        modified=as_date(meta.get("dateUpdated")),
        references=unique(r.get("url") for r in cna.get("references") or [] if isinstance(r, dict)),
        withdrawn=rejected,
        source_name=f"CVE record by {meta.get('assignerShortName')}" if meta.get("assignerShortName") else "CVE record",
    )


def _english(items: list[Any]) -> str:
    texts = [i for i in items if isinstance(i, dict) and i.get("value")]
    chosen = [i for i in texts if str(i.get("lang", "en")).lower().startswith("en")] or texts
    return "\n".join(str(i["value"]).strip() for i in chosen)


def _version_text(version: dict[str, Any]) -> tuple[str, list[str]]:
    start = str(version.get("version") or "")
    if version.get("lessThan"):
        text = f">= {start}, < {version['lessThan']}" if start not in ("", "0", "*") else f"< {version['lessThan']}"
        return text, [str(version["lessThan"])] if version.get("status") == "affected" else []
    if version.get("lessThanOrEqual"):
        end = version["lessThanOrEqual"]
        return (f">= {start}, <= {end}" if start not in ("", "0", "*") else f"<= {end}"), []
    return start, []


def _metrics(container: dict[str, Any]) -> Iterator[tuple[float | None, str, str | None]]:
    for metric in container.get("metrics") or []:
        for key in _METRIC_KEYS:
            cvss = metric.get(key) if isinstance(metric, dict) else None
            if isinstance(cvss, dict):
                score = cvss.get("baseScore")
                yield (
                    (float(score) if isinstance(score, int | float) else None),
                    str(cvss.get("vectorString") or ""),
                    (cvss.get("baseSeverity")),
                )


def _cwes(containers: list[dict[str, Any]]) -> Iterator[str]:
    for container in containers:
        for problem in container.get("problemTypes") or []:
            for description in problem.get("descriptions") or []:
                if isinstance(description, dict) and description.get("cweId"):
                    yield str(description["cweId"])
