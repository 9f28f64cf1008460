"""CSAF 2.0 advisories (security advisories, VEX documents): one document per file.

Product ids are turned into the product names of the product tree, so the text says "Red Hat
OpenShift Container Platform 4.6 is fixed" rather than "8Base-RHOSE-4.6 is fixed".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.document import LoadedDocument
from ingest.loaders.advisories.model import Advisory, as_date, unique

# Product status groups in the words of the text, and which of them count as affected or fixed.
STATUS_WORDS = {
    "known_affected": "known affected",
    "first_affected": "first affected",
    "last_affected": "last affected",
    "fixed": "fixed",
    "first_fixed": "first fixed",
    "known_not_affected": "known not affected",
    "under_investigation": "under investigation",
    "recommended": "recommended",
}
AFFECTED = ("known_affected", "first_affected", "last_affected")
FIXED = ("fixed", "first_fixed")
MAX_NAMES = 12  # products listed per status in the text; the rest are counted


def is_csaf(data: Any) -> bool:
    document = data.get("document") if isinstance(data, dict) else None
    return isinstance(document, dict) and "csaf_version" in document


def csaf_document(path: Path, data: dict[str, Any]) -> LoadedDocument:
    return csaf_advisory(data).document(path)


def csaf_advisory(data: dict[str, Any]) -> Advisory:
    document = data["document"]
    tracking = document.get("tracking") or {}
    tree = data.get("product_tree") or {}
    names = dict(_product_names(tree))
    vendors = [b.get("name") for b in _branches(tree.get("branches") or []) if b.get("category") == "vendor"]
    families = [
        b.get("name")
        for b in _branches(tree.get("branches") or [])
        if b.get("category") in ("product_family", "product_name")
    ]
    vulnerabilities = [v for v in data.get("vulnerabilities") or [] if isinstance(v, dict)]
    notes = [n for n in document.get("notes") or [] if isinstance(n, dict) and n.get("category") != "legal_disclaimer"]
    scores = [s for v in vulnerabilities for s in _scores(v)]
    best = max(scores, key=lambda s: s[0], default=None)
    statuses = {key: [names.get(p, p) for v in vulnerabilities for p in (v.get("product_status") or {}).get(key, [])]
                for key in STATUS_WORDS}  # fmt: skip
    publisher = (document.get("publisher") or {}).get("name")
    return Advisory(
        fmt="csaf",
        id=str(tracking.get("id") or Path(str(document.get("title") or "csaf")).stem),
        title=str(document.get("title") or ""),
        summary="\n".join(str(n.get("text")) for n in notes if n.get("category") == "summary"),
        details="\n".join(
            str(n.get("text")) for n in notes if n.get("category") in ("description", "general", "details")
        ),
        cve_ids=[str(v["cve"]) for v in vulnerabilities if v.get("cve")],
        severity=(document.get("aggregate_severity") or {}).get("text"),
        cvss_score=best[0] if best else None,
        cvss_vector=best[1] if best else None,
        vendor=vendors[0] if vendors else publisher,
        product=families[0] if families else None,
        products=unique(families),
        affected=_listed(unique(n for key in AFFECTED for n in statuses[key])),
        affected_versions=[],
        fixed_versions=unique(n for key in FIXED for n in statuses[key])[:MAX_NAMES],
        remediation=unique(_remediation(r) for v in vulnerabilities for r in v.get("remediations") or []),
        cwes=unique((v.get("cwe") or {}).get("id") for v in vulnerabilities),
        published=as_date(tracking.get("initial_release_date")),
        modified=as_date(tracking.get("current_release_date")),
        references=unique(r.get("url") for r in document.get("references") or [] if isinstance(r, dict)),
        withdrawn=str(tracking.get("status")) == "withdrawn",
        notes=[_vulnerability_note(v, names) for v in vulnerabilities],
        source_name=f"CSAF {document.get('category', 'advisory')} by {publisher}" if publisher else "CSAF advisory",
    )


def _branches(branches: list[Any]) -> Iterator[dict[str, Any]]:
    for branch in branches:
        if isinstance(branch, dict):
            yield branch
            yield from _branches(branch.get("branches") or [])


def _product_names(tree: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(product_id, name) for every product the tree defines."""
    for branch in _branches(tree.get("branches") or []):
        product = branch.get("product")
        if isinstance(product, dict) and product.get("product_id"):
            yield product["product_id"], product.get("name") or product["product_id"]
    for product in tree.get("full_product_names") or []:
        if isinstance(product, dict) and product.get("product_id"):
            yield product["product_id"], product.get("name") or product["product_id"]
    for relationship in tree.get("relationships") or []:
        product = relationship.get("full_product_name") if isinstance(relationship, dict) else None
        if isinstance(product, dict) and product.get("product_id"):
            yield product["product_id"], product.get("name") or product["product_id"]


def _scores(vulnerability: dict[str, Any]) -> Iterator[tuple[float, str]]:
    for score in vulnerability.get("scores") or []:
        for key in ("cvss_v3", "cvss_v2"):
            cvss = score.get(key) if isinstance(score, dict) else None
            if isinstance(cvss, dict) and isinstance(cvss.get("baseScore"), int | float):
                yield float(cvss["baseScore"]), str(cvss.get("vectorString") or "")


def _remediation(remediation: dict[str, Any]) -> str:
    if not isinstance(remediation, dict):
        return ""
    category = str(remediation.get("category") or "").replace("_", " ")
    text = " ".join(str(remediation.get("details") or "").split())
    url = f" ({remediation['url']})" if remediation.get("url") else ""
    return f"{category}: {text}{url}" if category else text + url


def _listed(names: list[str]) -> list[str]:
    return names[:MAX_NAMES] + ([f"{len(names) - MAX_NAMES} more products"] if len(names) > MAX_NAMES else [])


def _vulnerability_note(vulnerability: dict[str, Any], names: dict[str, str]) -> tuple[str, str]:
    """A section per vulnerability: what it is, which products are in which state, threats, flags."""
    name = str(vulnerability.get("cve") or vulnerability.get("title") or "vulnerability")
    title = str(vulnerability.get("title") or "")
    lines = [title if title.startswith(name) else f"{name}: {title}" if title else name]
    for note in vulnerability.get("notes") or []:
        if isinstance(note, dict) and note.get("text"):
            lines.append(" ".join(str(note["text"]).split()))
    for key, words in STATUS_WORDS.items():
        products = [names.get(p, p) for p in (vulnerability.get("product_status") or {}).get(key, [])]
        if products:
            lines.append(f"{words.capitalize()}: {', '.join(_listed(unique(products)))}.")
    for threat in vulnerability.get("threats") or []:
        if isinstance(threat, dict) and threat.get("details"):
            lines.append(f"{str(threat.get('category', 'threat')).replace('_', ' ').capitalize()}: {threat['details']}")
    for flag in vulnerability.get("flags") or []:
        if isinstance(flag, dict) and flag.get("label"):
            products = ", ".join(names.get(p, p) for p in flag.get("product_ids") or [])
            lines.append(
                f"Justification: {str(flag['label']).replace('_', ' ')}" + (f" ({products})." if products else ".")
            )
    return f"Vulnerability {name}", "\n".join(lines)
