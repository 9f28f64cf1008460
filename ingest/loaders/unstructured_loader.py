"""Optional parser for formats rag-kb does not read itself (``pip install rag-kb[unstructured]``).

Never the default path: :func:`ingest.loaders.load` calls it only for extensions without a
built-in loader, and only when ``unstructured`` is importable. ``unstructured`` fetches NLP
data on first use (NLTK data or a spaCy model, depending on its version) and pings a telemetry
endpoint; rag-kb runs offline, so telemetry is switched off and missing data is a
:class:`LoadError` that says what to install, checked before anything could be downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ingest.document import LoadedDocument, LoadError, Section
from ingest.loaders.common import make_document

UNSTRUCTURED_EXTENSIONS = frozenset(
    {".doc", ".ppt", ".xls", ".odt", ".odp", ".rtf", ".epub", ".msg", ".rst", ".org", ".xml", ".tsv"}
)
# Environment switches unstructured honours for its usage ping (it compares them to "true").
_NO_TELEMETRY = {"SCARF_NO_ANALYTICS": "true", "DO_NOT_TRACK": "true"}
_NEVER_DOWNLOADS = "rag-kb never downloads at run time"


def unstructured_available() -> bool:
    """Whether the optional package is installed (checked without importing it)."""
    return importlib.util.find_spec("unstructured") is not None


def load_with_unstructured(path: Path) -> LoadedDocument:
    """Partition ``path`` with unstructured's "fast" strategy (no layout models), grouped by page."""
    for name, value in _NO_TELEMETRY.items():
        os.environ.setdefault(name, value)
    missing = missing_nlp_data()
    if missing:
        raise LoadError(str(path), missing)
    from unstructured.partition.auto import partition

    pages: dict[int | None, list[str]] = {}
    for element in partition(filename=str(path), strategy="fast"):
        text = str(element).strip()
        if text:
            pages.setdefault(getattr(element.metadata, "page_number", None), []).append(text)
    sections = [
        Section("\n\n".join(texts), {"page": page} if page is not None else {}) for page, texts in pages.items()
    ]
    return make_document(path, f"unstructured:{path.suffix.lower().lstrip('.')}", sections)


def missing_nlp_data() -> str | None:
    """What unstructured would download on first use, as an install instruction; None if nothing.

    Which data it needs depends on its version, so its tokenizer module is read, not imported
    (older versions download NLTK data as soon as a tokenizer is called).
    """
    source = _tokenizer_source()
    if "spacy" in source:
        if importlib.util.find_spec("en_core_web_sm") is None:
            return (
                "unstructured needs the spaCy model 'en_core_web_sm' installed locally; install it with "
                f"`python -m spacy download en_core_web_sm` on a machine with network access; {_NEVER_DOWNLOADS}"
            )
    elif "nltk" in source:
        names = ("punkt_tab", "averaged_perceptron_tagger_eng")
        if "punkt_tab" not in source:
            names = ("punkt", "averaged_perceptron_tagger")
        if not _nltk_has(f"tokenizers/{names[0]}") or not _nltk_has(f"taggers/{names[1]}"):
            quoted = " and ".join(f"'{name}'" for name in names)
            return (
                f"unstructured needs NLTK data {quoted} present locally; install them with "
                f"`python -m nltk.downloader {' '.join(names)}` (or copy them into a folder named in "
                f"NLTK_DATA); {_NEVER_DOWNLOADS}"
            )
    return None


def _tokenizer_source() -> str:
    spec = importlib.util.find_spec("unstructured")
    if spec is None or spec.origin is None:
        return ""
    tokenizer = Path(spec.origin).parent / "nlp" / "tokenize.py"
    return tokenizer.read_text(encoding="utf-8") if tokenizer.is_file() else ""


def _nltk_has(resource: str) -> bool:
    import nltk

    try:
        nltk.data.find(resource)
    except LookupError:
        return False
    return True
