"""The CISA Known Exploited Vulnerabilities catalog: one JSON file, one document per vulnerability."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ingest.document import LoadedDocument
from ingest.loaders.advisories.model import Advisory, as_date

SOURCE_NAME = "CISA Known Exploited Vulnerabilities catalog"
_URL = re.compile(r"https?://[^\s;]+")


def is_kev(data: Any) -> bool:
    """A KEV catalog: an object whose ``vulnerabilities`` are records with ``cveID``."""
    if not isinstance(data, dict) or not isinstance(data.get("vulnerabilities"), list):
        return False
    records = data["vulnerabilities"]
    return bool(records) and isinstance(records[0], dict) and "cveID" in records[0]


def kev_documents(path: Path, data: dict[str, Any]) -> list[LoadedDocument]:
    """One document per catalog entry, named by its CVE id (the first of a repeated id wins)."""
    documents: dict[str, LoadedDocument] = {}
    for entry in data["vulnerabilities"]:
        cve = str(entry.get("cveID") or "").strip().upper() if isinstance(entry, dict) else ""
        if cve and cve not in documents:
            documents[cve] = kev_advisory(entry).document(path, part=cve)
    return list(documents.values())


def kev_advisory(entry: dict[str, Any]) -> Advisory:
    notes = str(entry.get("notes") or "")
    vendor, product = str(entry.get("vendorProject") or ""), str(entry.get("product") or "")
    prose = _URL.sub("", notes).replace(" ; ", " ").strip(" ;:")
    return Advisory(
        fmt="cisa-kev",
        id=str(entry["cveID"]),
        title=str(entry.get("vulnerabilityName") or ""),
        summary=str(entry.get("shortDescription") or ""),
        details=prose if len(prose) > 3 else "",
        vendor=vendor,
        product=product,
        products=[f"{vendor} {product}".strip()],
        cwes=[str(c) for c in entry.get("cwes") or [] if c],
        published=as_date(entry.get("dateAdded")),
        due_date=as_date(entry.get("dueDate")),
        required_action=str(entry.get("requiredAction") or "") or None,
        known_exploited=True,
        ransomware=str(entry.get("knownRansomwareCampaignUse") or "") or None,
        references=_URL.findall(notes),
        source_name=SOURCE_NAME,
    )
