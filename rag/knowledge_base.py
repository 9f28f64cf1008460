"""Knowledge bases: ingesting files idempotently and keeping catalog, Chroma and BM25 in step."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ingest.document import LoadedDocument, LoadError, Section
from ingest.files import file_sha256, iter_files
from ingest.loaders import available_extensions, load
from ingest.splitter import ChineseRecursiveSplitter
from stores import Catalog, ChromaVectorStore, DocumentRecord, Embedder, KeywordIndex, KnowledgeBaseRecord

KB_NAME = re.compile(r"[^\x00-\x1f/\\:*?\"<>|]{1,64}")


class KnowledgeBaseError(ValueError):
    """A request about knowledge bases that cannot be done (bad name, unknown KB, unknown document)."""


def validate_kb_name(name: str) -> str:
    """``name`` if it is a usable KB name: 1–64 characters, no path separators or control characters."""
    if not isinstance(name, str) or not KB_NAME.fullmatch(name) or name.strip() != name or name in {".", ".."}:
        raise KnowledgeBaseError(
            f'invalid knowledge base name {name!r}: use 1-64 characters without / \\ : * ? " < > | '
            "or control characters, and no leading or trailing spaces"
        )
    return name


def document_id(kb: str, source: str) -> str:
    """A document's stable id: the same KB and source path always give the same id."""
    return hashlib.sha256(f"{kb}\0{source}".encode()).hexdigest()[:20]


@dataclass
class IngestReport:
    """What an ingest did, file by file."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


ProgressCallback = Callable[[str, str], None]  # (source, outcome) after each file


class KnowledgeBases:
    """All knowledge bases under one data directory.

    Usage::

        kbs = KnowledgeBases(catalog, vectors, keywords, embedder, splitter)
        report = kbs.ingest("handbook", [Path("docs/")])
        kbs.delete_document("handbook", report_doc_id)
    """

    def __init__(
        self,
        catalog: Catalog,
        vectors: ChromaVectorStore,
        keywords: KeywordIndex,
        embedder: Embedder,
        splitter: ChineseRecursiveSplitter,
        max_file_bytes: int = 200 * 2**20,
    ) -> None:
        if max_file_bytes < 1:
            raise ValueError("max_file_bytes must be positive")
        self.catalog = catalog
        self.vectors = vectors
        self.keywords = keywords
        self.embedder = embedder
        self.splitter = splitter
        self.max_file_bytes = max_file_bytes

    # Knowledge bases

    def create(self, kb: str) -> bool:
        return self.catalog.create_kb(validate_kb_name(kb))

    def list(self) -> list[KnowledgeBaseRecord]:
        return self.catalog.kbs()

    def exists(self, kb: str) -> bool:
        return self.catalog.has_kb(kb)

    def require(self, kb: str) -> None:
        validate_kb_name(kb)
        if not self.catalog.has_kb(kb):
            raise KnowledgeBaseError(f"unknown knowledge base {kb!r}")

    def delete(self, kb: str) -> bool:
        """Remove a KB from Chroma, the keyword index and the catalog."""
        validate_kb_name(kb)
        existed = self.catalog.has_kb(kb)
        self.vectors.delete_kb(kb)
        self.keywords.delete_kb(kb)
        self.catalog.delete_kb(kb)
        return existed

    # Documents

    def documents(self, kb: str) -> list[DocumentRecord]:
        self.require(kb)
        return self.catalog.documents(kb)

    def delete_document(self, kb: str, doc_id: str) -> bool:
        """Remove a document everywhere; the catalog entry goes last so a crash leaves it findable."""
        self.require(kb)
        if self.catalog.document(kb, doc_id) is None:
            return False
        self.vectors.delete_document(kb, doc_id)
        self.keywords.delete_document(kb, doc_id)
        return self.catalog.remove_document(kb, doc_id)

    def ingest(
        self, kb: str, paths: Iterable[Path], progress: ProgressCallback | None = None, create: bool = True
    ) -> IngestReport:
        """Bring the KB in line with ``paths`` (files and folders).

        Unchanged files (same content hash) are skipped; changed files replace all their old chunks;
        files that disappeared from an ingested folder are removed. A file that fails is reported and
        the batch goes on.
        """
        validate_kb_name(kb)
        if create:
            self.catalog.create_kb(kb)
        else:
            self.require(kb)
        paths = [Path(p) for p in paths]
        report = IngestReport()
        seen: set[str] = set()
        extensions = available_extensions()
        for path in paths:
            if path.is_file() and path.suffix.lower() not in extensions:  # named explicitly: say why it is skipped
                report.failed.append(
                    (
                        str(path.resolve()),
                        f"unsupported format {path.suffix or '(no extension)'}; "
                        f"supported: {' '.join(sorted(extensions))}",
                    )
                )
        for path in iter_files(paths, extensions):
            source = str(path.resolve())
            seen.add(source)
            outcome = self._ingest_file(kb, path, source, report)
            if progress:
                progress(source, outcome)
        for folder in (p.resolve() for p in paths if p.is_dir()):
            for record in self.catalog.documents(kb):
                if record.source not in seen and Path(record.source).is_relative_to(folder):
                    self.delete_document(kb, record.doc_id)
                    report.removed.append(record.source)
                    if progress:
                        progress(record.source, "removed")
        return report

    def add_text(self, kb: str, name: str, text: str, metadata: dict | None = None) -> tuple[str, str]:
        """Index ``text`` as the document ``name`` (replacing an earlier one); returns (doc_id, outcome)."""
        validate_kb_name(kb)
        self.catalog.create_kb(kb)
        data = text.encode("utf-8")
        sha = hashlib.sha256(data).hexdigest()
        doc_id = document_id(kb, name)
        existing = self.catalog.document(kb, doc_id)
        if existing and existing.status == "ready" and existing.sha256 == sha:
            return doc_id, "unchanged"
        document = LoadedDocument(
            source=name,
            title=Path(name).stem or name,
            sections=[Section(text)],
            metadata={"format": "text", **(metadata or {})},
        )
        self._index(kb, doc_id, document, sha, len(data))
        return doc_id, "updated" if existing else "added"

    def _ingest_file(self, kb: str, path: Path, source: str, report: IngestReport) -> str:
        doc_id = document_id(kb, source)
        try:
            size = path.stat().st_size
            if size > self.max_file_bytes:
                raise LoadError(
                    source, f"file is {size / 2**20:.1f} MB, over the {self.max_file_bytes / 2**20:.0f} MB limit"
                )
            sha = file_sha256(path)
            existing = self.catalog.document(kb, doc_id)
            if existing and existing.status == "ready" and existing.sha256 == sha:
                report.unchanged.append(source)
                return "unchanged"
            document = load(path)
            document.source = source
            report.chunks += self._index(kb, doc_id, document, sha, size)
        except (LoadError, OSError) as error:
            reason = error.reason if isinstance(error, LoadError) else str(error)
            report.failed.append((source, reason))
            return "failed"
        (report.updated if existing else report.added).append(source)
        return "updated" if existing else "added"

    def _index(self, kb: str, doc_id: str, document: LoadedDocument, sha: str, size: int) -> int:
        chunks = self.splitter.split_document(document, doc_id)
        if not chunks:
            raise LoadError(document.source, "no text found in the document")
        vectors = self.embedder.embed([c.text for c in chunks])
        # Pending first: until mark_ready the document is not served and the next ingest redoes it.
        self.catalog.mark_pending(kb, doc_id, document.source, document.title, size)
        self.vectors.delete_document(kb, doc_id)
        self.keywords.delete_document(kb, doc_id)
        self.vectors.add(kb, chunks, vectors)
        self.keywords.add(kb, chunks)
        self.catalog.mark_ready(kb, doc_id, sha, len(chunks))
        return len(chunks)
