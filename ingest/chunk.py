"""The one chunk type: a piece of a document's text as it is embedded, indexed and cited."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document's text.

    ``start``/``end`` are character offsets into the document's full text (see
    :class:`ingest.document.LoadedDocument`), so a citation can point at the exact place.
    ``metadata`` carries the document's and the section's metadata: ``source``, ``title``
    and, where the format has them, ``page``, ``sheet``, ``slide``, ``section``.
    """

    id: str
    doc_id: str
    index: int
    text: str
    start: int
    end: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def make_id(doc_id: str, index: int) -> str:
        return f"{doc_id}:{index}"
