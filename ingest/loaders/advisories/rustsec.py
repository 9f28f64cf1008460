"""RustSec advisories: Markdown whose first block is a fenced ```toml front matter with an ``[advisory]`` table."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from ingest.document import LoadedDocument, LoadError
from ingest.loaders.advisories.model import Advisory, as_date

_FRONT_MATTER = re.compile(r"\A\s*```toml[ \t]*\n(?P<toml>.*?)\n```[ \t]*(?:\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def is_rustsec(text: str) -> bool:
    match = _FRONT_MATTER.match(text)
    return bool(match) and re.search(r"^\[advisory\]", match.group("toml"), re.MULTILINE) is not None


def rustsec_document(path: Path, text: str) -> LoadedDocument:
    match = _FRONT_MATTER.match(text)
    assert match is not None  # callers check is_rustsec first
    try:
        front = tomllib.loads(match.group("toml"))
    except tomllib.TOMLDecodeError as error:
        raise LoadError(str(path), f"invalid TOML front matter: {error}") from error
    return rustsec_advisory(front, text[match.end() :]).document(path)


def rustsec_advisory(front: dict[str, Any], body: str) -> Advisory:
    advisory = front.get("advisory") or {}
    versions = front.get("versions") or {}
    affected = front.get("affected") or {}
    heading = _HEADING.search(body)
    title = heading.group(1) if heading else str(advisory.get("title") or "")
    description = (body[heading.end() :] if heading else body).strip() or str(advisory.get("description") or "")
    package = str(advisory.get("package") or "")
    patched = [str(v) for v in versions.get("patched") or []]
    unaffected = [str(v) for v in versions.get("unaffected") or []]
    functions = affected.get("functions") or {}
    kind = advisory.get("informational")
    return Advisory(
        fmt="rustsec",
        id=str(advisory.get("id") or ""),
        title=title,
        details=description,
        aliases=[str(a) for a in advisory.get("aliases") or []],
        cvss_vector=str(advisory["cvss"]) if advisory.get("cvss") else None,
        product=package,
        products=[package],
        ecosystem="crates.io",
        affected=[f"function {name}" for name in functions][:10],
        affected_versions=[
            f"all except {', '.join(patched + unaffected)}" if patched or unaffected else "all versions"
        ],
        fixed_versions=patched,
        remediation=[f"upgrade {package} to {' or '.join(patched)}"] if patched else [],
        cwes=[],
        published=as_date(advisory.get("date")),
        modified=None,
        references=([str(advisory["url"])] if advisory.get("url") else [])
        + [str(r) for r in advisory.get("references") or []],
        withdrawn=bool(advisory.get("withdrawn")),
        notes=[("Categories", f"{advisory['id']} categories: {', '.join(advisory['categories'])}.")]
        if advisory.get("categories")
        else [],
        source_name="RustSec advisory database" + (f" ({kind} advisory)" if kind else ""),
    )
