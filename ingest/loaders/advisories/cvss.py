"""CVSS base scores from vector strings (v3.0/v3.1 and v2), and the qualitative severity of a score.

Advisories often give only the vector (RustSec, OSV); the score is computed with the formulas of
the FIRST specifications so ``cvss >= 7`` filters work on every source. CVSS v4 scores need
FIRST's lookup tables and are taken only where the advisory states them.
"""

from __future__ import annotations

import math

SEVERITIES = ("none", "low", "medium", "high", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

# Vendor words for the same scale (Red Hat "Important", Microsoft "Moderate", GitHub "MODERATE").
_SEVERITY_WORDS = {
    "informational": "none", "info": "none", "unknown": None, "negligible": "low", "minor": "low",
    "moderate": "medium", "medium": "medium", "important": "high", "major": "high", "serious": "high",
    "urgent": "critical", "severe": "high",
}  # fmt: skip


def normalize_severity(word: object) -> str | None:
    """``"Important"`` → ``"high"``; ``None`` for an empty or unknown word."""
    if not isinstance(word, str) or not word.strip():
        return None
    word = word.strip().lower()
    if word in SEVERITY_RANK:
        return word
    return _SEVERITY_WORDS.get(word)


def severity_of_score(score: float, version: str = "3") -> str:
    """The CVSS qualitative rating of a base score (v2 has no "none" or "critical")."""
    if version.startswith("2"):
        return "low" if score < 4 else "medium" if score < 7 else "high"
    if score == 0:
        return "none"
    return "low" if score < 4 else "medium" if score < 7 else "high" if score < 9 else "critical"


def base_score(vector: str) -> float | None:
    """The base score of a CVSS v3.x or v2 vector; ``None`` for v4 or a vector that does not parse."""
    vector = vector.strip()
    try:
        if vector.startswith("CVSS:3."):
            return _v3(_metrics(vector.split("/", 1)[1]), roundup=_roundup31 if vector[7] == "1" else _roundup30)
        if vector.startswith("CVSS:4"):
            return None
        if vector.startswith("AV:") or vector.startswith("(AV:"):
            return _v2(_metrics(vector.strip("()")))
    except (KeyError, IndexError, ValueError):
        return None
    return None


def cvss_version(vector: str) -> str | None:
    if vector.startswith("CVSS:"):
        return vector[5:].split("/", 1)[0]
    return "2.0" if "AV:" in vector else None


def _metrics(text: str) -> dict[str, str]:
    return dict(part.split(":", 1) for part in text.split("/") if part)


_AV = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_AC = {"L": 0.77, "H": 0.44}
_UI = {"N": 0.85, "R": 0.62}
_CIA = {"H": 0.56, "L": 0.22, "N": 0.0}


def _v3(m: dict[str, str], roundup) -> float:
    changed = m["S"] == "C"
    pr = {"N": 0.85, "L": 0.68 if changed else 0.62, "H": 0.5 if changed else 0.27}[m["PR"]]
    iss = 1 - (1 - _CIA[m["C"]]) * (1 - _CIA[m["I"]]) * (1 - _CIA[m["A"]])
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    exploitability = 8.22 * _AV[m["AV"]] * _AC[m["AC"]] * pr * _UI[m["UI"]]
    if impact <= 0:
        return 0.0
    if changed:
        return roundup(min(1.08 * (impact + exploitability), 10))
    return roundup(min(impact + exploitability, 10))


def _roundup31(value: float) -> float:
    integer = round(value * 100000)
    return integer / 100000.0 if integer % 10000 == 0 else (math.floor(integer / 10000) + 1) / 10.0


def _roundup30(value: float) -> float:
    return math.ceil(value * 10) / 10


def _v2(m: dict[str, str]) -> float:
    av = {"L": 0.395, "A": 0.646, "N": 1.0}[m["AV"]]
    ac = {"H": 0.35, "M": 0.61, "L": 0.71}[m["AC"]]
    au = {"M": 0.45, "S": 0.56, "N": 0.704}[m["Au"]]
    cia = {"N": 0.0, "P": 0.275, "C": 0.660}
    impact = 10.41 * (1 - (1 - cia[m["C"]]) * (1 - cia[m["I"]]) * (1 - cia[m["A"]]))
    exploitability = 20 * av * ac * au
    f = 0 if impact == 0 else 1.176
    return round((0.6 * impact + 0.4 * exploitability - 1.5) * f + 1e-9, 1)
