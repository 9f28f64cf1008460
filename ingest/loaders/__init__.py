"""File loaders: one per format family, chosen by file extension.

:func:`load` is the entry point. Whatever goes wrong inside a parser comes out as a
:class:`~ingest.document.LoadError` naming the file and the reason, so ingestion can report
the file and carry on with the rest.
"""

from __future__ import annotations

from pathlib import Path

from ingest.budget import DEFAULT_BUDGET, BudgetExceeded, ParseBudget, check_output, metered
from ingest.document import LoadedDocument, LoadError
from ingest.loaders.advisories import load_json_any, load_markdown_any, load_yaml_any
from ingest.loaders.archives import ZIP_FORMATS, check_zip
from ingest.loaders.common import Loader
from ingest.loaders.html_text import load_html
from ingest.loaders.json_records import load_jsonl
from ingest.loaders.logs import load_log
from ingest.loaders.mail import load_eml
from ingest.loaders.pdf import load_pdf
from ingest.loaders.slides import load_pptx
from ingest.loaders.tables import load_csv, load_xlsx
from ingest.loaders.text import load_txt
from ingest.loaders.unstructured_loader import (
    UNSTRUCTURED_EXTENSIONS,
    load_with_unstructured,
    unstructured_available,
)
from ingest.loaders.word import load_docx

LOADERS: dict[str, Loader] = {
    ".txt": load_txt,
    ".log": load_log,
    ".md": load_markdown_any,
    ".markdown": load_markdown_any,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".pptx": load_pptx,
    ".xlsx": load_xlsx,
    ".csv": load_csv,
    ".json": load_json_any,
    ".jsonl": load_jsonl,
    ".yml": load_yaml_any,
    ".yaml": load_yaml_any,
    ".eml": load_eml,
}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(LOADERS)

__all__ = ["LOADERS", "SUPPORTED_EXTENSIONS", "available_extensions", "load", "load_all"]


def available_extensions() -> frozenset[str]:
    """The built-in extensions plus those the optional ``unstructured`` parser adds, if installed."""
    if unstructured_available():
        return SUPPORTED_EXTENSIONS | UNSTRUCTURED_EXTENSIONS
    return SUPPORTED_EXTENSIONS


def load(path: Path, budget: ParseBudget = DEFAULT_BUDGET) -> LoadedDocument:
    """Parse ``path``, a file that holds one document, with the loader for its extension.

    Raises :class:`LoadError` for unsupported extensions, empty files, files that cannot be
    read or parsed, files with no text, and files that hold several documents (use :func:`load_all`).
    """
    documents = load_all(path, budget)
    if len(documents) != 1 or documents[0].part:
        raise LoadError(str(path), f"the file holds {len(documents)} documents; read it with load_all()")
    return documents[0]


def load_all(path: Path, budget: ParseBudget = DEFAULT_BUDGET) -> list[LoadedDocument]:
    """The documents of ``path``: one for most files, one per record for a file that holds several.

    Each document of a several-document file has a ``part`` (the record's id, unique in the file).
    The parse runs under ``budget`` (see :mod:`ingest.budget`): a file that would produce more text,
    pages or values than it allows, or parse for longer, fails with a :class:`LoadError` naming the limit.
    Raises :class:`LoadError` as :func:`load` does.
    """
    source = str(path)
    loader = _loader_for(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError(source, f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise LoadError(source, "empty file (0 bytes)")
    try:
        if path.suffix.lower() in ZIP_FORMATS:
            check_zip(path)  # before the parser inflates anything
        with metered(budget, size):
            loaded = loader(path)
            documents = loaded if isinstance(loaded, list) else [loaded]
            # Loaders that spend as they go stop early; this catches any that does not.
            check_output(sum(len(section.text) for document in documents for section in document.sections))
        if not documents or not all(document.sections for document in documents):
            raise LoadError(source, "no text found in the file")
    except LoadError:
        raise
    except BudgetExceeded as exc:
        raise LoadError(source, str(exc)) from exc
    except Exception as exc:  # any parser failure is a property of this file, not of the run
        raise LoadError(source, _failure_reason(path, exc)) from exc
    return documents


def _loader_for(path: Path) -> Loader:
    extension = path.suffix.lower()
    loader = LOADERS.get(extension)
    if loader is not None:
        return loader
    if extension in UNSTRUCTURED_EXTENSIONS and unstructured_available():
        return load_with_unstructured
    supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
    raise LoadError(
        str(path),
        f"unsupported file type {extension or '(no extension)'!r}; supported: {supported}. "
        f"`pip install rag-kb[unstructured]` adds other formats "
        f"({', '.join(sorted(UNSTRUCTURED_EXTENSIONS))})",
    )


def _failure_reason(path: Path, exc: Exception) -> str:
    kind = path.suffix.lower().lstrip(".").upper() or "file"
    if isinstance(exc, RecursionError):
        return f"refused: the {kind} file is nested too deeply to read (elements or values inside one another)"
    detail = str(exc).strip() or "no details"
    return f"could not parse {kind} file (corrupt, truncated, or not a {kind} file?): {type(exc).__name__}: {detail}"
