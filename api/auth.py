"""API keys: off when none are configured; otherwise every data request names a key, scoped to KBs.

Keys are compared in constant time against every configured key (so timing says nothing about
which one nearly matched) and are never logged: a key is named by its ``name`` only.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException

from rag.settings import ApiKey


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the key they sent, or ``None`` when the service runs without keys."""

    key: ApiKey | None

    def may(self, kb: str, write: bool = False) -> bool:
        return self.key is None or self.key.may(kb, write)

    def require(self, kb: str, write: bool = False) -> None:
        """403 unless the caller may read (or write) ``kb``; checked before the KB is looked up,
        so a refusal says nothing about whether another team's KB exists."""
        if not self.may(kb, write):
            what = "change" if write else "read"
            raise HTTPException(403, f"this API key may not {what} the knowledge base {kb!r}")


def find_key(keys: list[ApiKey], presented: str) -> ApiKey | None:
    found = None
    for key in keys:  # no early exit: every key is compared
        if hmac.compare_digest(key.key.encode(), presented.encode()):
            found = key
    return found
