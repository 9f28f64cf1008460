"""PDF files: the text layer of each page, one section per page so citations give the page."""

from __future__ import annotations

from pathlib import Path

from pypdf import PageObject, PasswordType, PdfReader
from pypdf.errors import DependencyError

from ingest.budget import BudgetExceeded, current, spend
from ingest.document import LoadedDocument, LoadError, Section
from ingest.loaders.common import make_document


def load_pdf(path: Path) -> LoadedDocument:
    """A PDF with ``metadata["page"]`` (1-based) on each section.

    Encrypted files are opened only when the empty password works (common for "no printing"
    restrictions); a PDF without any text layer is reported rather than indexed as nothing.
    """
    reader = PdfReader(path)
    _unlock(reader, str(path))
    sections = []
    for number, page in enumerate(_pages(reader), start=1):
        if text := (page.extract_text() or "").strip():
            spend(len(text))
            sections.append(Section(text, {"page": number}))
    if not sections:
        raise LoadError(str(path), "no text layer (scanned PDF?); OCR is not enabled")
    title = reader.metadata.title if reader.metadata else None
    title = str(title) if title else None
    return make_document(path, "pdf", sections, title=title, pages=len(reader.pages))


def _pages(reader: PdfReader) -> list[PageObject]:
    """The pages, within the budget's ``max_pdf_pages``; a page tree that lists one page twice is refused
    (a 1.6 KB file whose tree repeats a page would otherwise be read as 97,336 pages)."""
    limit = current().max_pdf_pages
    if len(reader.pages) > limit:
        raise BudgetExceeded("parse_max_pdf_pages", f"the PDF has {len(reader.pages):,} pages, over {limit:,}")
    seen: set[object] = set()
    pages = list(reader.pages)
    for page in pages:
        ref = page.indirect_reference
        key = (ref.idnum, ref.generation) if ref is not None else id(page)
        if key in seen:
            raise BudgetExceeded("parse_max_pdf_pages", "the PDF's page tree lists the same page more than once")
        seen.add(key)
    return pages


def _unlock(reader: PdfReader, source: str) -> None:
    if not reader.is_encrypted:
        return
    try:
        unlocked = reader.decrypt("") != PasswordType.NOT_DECRYPTED
    except DependencyError as exc:
        # AES-encrypted PDFs need a crypto package that rag-kb does not install.
        raise LoadError(source, f"encrypted PDF that needs an extra package to open: {exc}") from exc
    if not unlocked:
        raise LoadError(source, "encrypted PDF (it needs a password); save an unencrypted copy to index it")
