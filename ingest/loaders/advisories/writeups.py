"""Vulnerability write-ups in Markdown, English or Chinese (vulhub's ``app/CVE-…/README.md`` and the like).

The text stays the Markdown document it is (sections per heading); what makes it an advisory is
its title: one naming a CVE id or a kind of vulnerability. The CVE ids of the title (or of the
write-up's folder) become its id and aliases, every CVE id in the text goes into ``cves``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ingest.document import LIST_SEPARATOR, LoadedDocument
from ingest.loaders.advisories.model import CVE_ID, normalize_id, unique
from stores.text_analysis import CJK_CHAR

_TITLE = re.compile(r"^ {0,3}#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
VULNERABILITY_WORDS = re.compile(
    r"vulnerab|exploit|remote (?:code|command) execution|\brce\b|injection|traversal|bypass|\bssrf\b|\bxss\b|"
    r"\bxxe\b|\bcsrf\b|deseriali[sz]ation|unauthori[sz]ed|arbitrary (?:file|code|command)|file (?:read|upload)|"
    r"privilege escalation|overflow|denial of service|漏洞|注入|代码执行|命令执行|反序列化|未授权|越权|绕过|任意文件|"
    r"提权|溢出|拒绝服务",
    re.IGNORECASE,
)

# "[中文版本(Chinese version)](README.zh-cn.md)": a link to the other language's copy, noise in every chunk
_LANGUAGE_LINK = re.compile(r"^[ \t]*\[[^\]\n]*(?:version|版本)[^\]\n]*\]\([^)\s]+\.md\)[ \t]*\n?", re.I | re.M)


def without_language_links(text: str) -> str:
    """The write-up without lines that only link to its translation."""
    return _LANGUAGE_LINK.sub("", text)


def writeup_title(text: str) -> str | None:
    """The first H1 of a Markdown text when it names a CVE or a kind of vulnerability."""
    match = _TITLE.search(text[:4000])
    if match and (CVE_ID.search(match.group(1)) or VULNERABILITY_WORDS.search(match.group(1))):
        return match.group(1)
    return None


def writeup_document(path: Path, markdown: LoadedDocument, text: str, title: str) -> LoadedDocument:
    """``markdown`` (the file as plain Markdown) with the advisory metadata of a write-up added."""
    own = unique(normalize_id(c) for c in CVE_ID.findall(title)) or unique(
        normalize_id(c) for c in CVE_ID.findall(path.parent.name)
    )
    metadata: dict[str, str] = {"format": "vuln-writeup"}
    if own:
        metadata["advisory_id"] = own[0]
        if own[1:]:
            metadata["aliases"] = LIST_SEPARATOR.join(own[1:])
    cves = unique([*own, *(normalize_id(c) for c in CVE_ID.findall(text))])
    if cves:
        metadata["cves"] = LIST_SEPARATOR.join(cves)
    if path.stem.lower().startswith("readme") and path.parent.parent.name:
        # app/vulnerability/README.md: the application is the folder above the write-up's own
        metadata["product"] = path.parent.parent.name.lower()
    lower = path.name.lower()
    metadata["lang"] = "zh" if ".zh" in lower or CJK_CHAR.search(title) else "en"
    markdown.metadata.update(metadata)
    return markdown
