"""Knowledge bases: ingesting files idempotently and keeping catalog, Chroma and BM25 in step."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from ingest.budget import DEFAULT_BUDGET, ParseBudget
from ingest.chunk import Chunk
from ingest.document import LoadedDocument, LoadError, Section
from ingest.files import file_sha256, iter_files
from ingest.loaders import available_extensions, load_all
from ingest.splitter import ChineseRecursiveSplitter
from stores import Catalog, ChromaVectorStore, DocumentRecord, Embedder, KeywordIndex, KnowledgeBaseRecord
from stores.text_analysis import language_of, template_key
from stores.write_lock import WriteLock
from stores.write_lock import WriteLockTimeout as WriteLockTimeout  # raised by every write; re-exported for the faces

# Control (DEL too), format (zero-width, bidi overrides), separators other than space, private use, unassigned.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
KB_NAME = re.compile(r"[^\x00-\x1f/\\:*?\"<>|]{1,64}")
# Chunks embedded and written per step: a big log streams through in bounded memory.
INDEX_BATCH = 512
PART_MARK = "#"
READ_AHEAD = 2  # files hashed and parsed ahead of the one being embedded: bounded memory
# Files of one document shorter than this are indexed together, up to this many characters at a time:
# a Chroma write costs tens of milliseconds whatever its size, and hundreds of small files add up.
SMALL_FILES_CHARS = 100_000


class KnowledgeBaseError(ValueError):
    """A request about knowledge bases that cannot be done (bad name, unknown KB, unknown document)."""


class UnknownKnowledgeBase(KnowledgeBaseError):
    """The named knowledge base does not exist (the API answers 404; other KnowledgeBaseErrors are bad input)."""


def validate_kb_name(name: str) -> str:
    """``name`` if it is a usable KB name: 1–64 characters, no path separators, and none that a reader
    cannot see or that changes how the rest reads (control, format such as U+200B and the bidi
    overrides, line and paragraph separators, DEL): a name with U+202E must not pass for another name."""
    if (
        not isinstance(name, str)
        or not KB_NAME.fullmatch(name)
        or name.strip() != name
        or name in {".", ".."}
        or any(unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in name)
    ):
        raise KnowledgeBaseError(
            f'invalid knowledge base name {name!r}: use 1-64 characters without / \\ : * ? " < > | '
            "or control, invisible or direction-changing characters, and no leading or trailing spaces"
        )
    return name


def document_id(kb: str, source: str) -> str:
    """A document's stable id: the same KB and source path always give the same id."""
    return hashlib.sha256(f"{kb}\0{source}".encode()).hexdigest()[:20]


def part_source(source: str, part: str) -> str:
    """Where one record of a file holding several is filed: ``/data/cisa_kev.json#CVE-2021-44228``."""
    return f"{source}{PART_MARK}{part}"


def too_many_chunks(limit: int) -> str:
    return f"refused: the document splits into over {limit:,} chunks (limit: parse_max_chunks)"


def check_source_name(source: str) -> None:
    """Refuse a document name with ``#`` in its last part: ``a.json#X`` is where record X of ``a.json``
    is filed, so a file of that name would share the record's id and be replaced (or deleted) with it."""
    if PART_MARK in re.split(r"[/\\]", source)[-1]:
        raise LoadError(
            source, f"refused: a file name may not contain {PART_MARK!r}, which marks the records of a "
            "multi-document file; rename the file"
        )


def is_supported(path: Path) -> bool:
    """Whether some loader reads files named like ``path`` (by extension)."""
    return path.suffix.lower() in available_extensions()


def unsupported_format(path: Path) -> str:
    """Why ``path`` is refused, with what would be accepted."""
    supported = " ".join(sorted(available_extensions()))
    return f"unsupported format {path.suffix or '(no extension)'}; supported: {supported}"


def is_current(record: DocumentRecord | None, sha256: str) -> bool:
    """Whether the catalog holds this very content, fully indexed: nothing to do."""
    return record is not None and record.status == "ready" and record.sha256 == sha256


def content_sha256(document: LoadedDocument) -> str:
    """A hash of a document's title, text and metadata: what decides whether it must be indexed again."""
    header = json.dumps([document.title, document.metadata], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{header}\0{document.text}".encode()).hexdigest()


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


@dataclass
class ReadFile:
    """A file hashed and parsed ahead of indexing, or why it could not be read.

    ``documents`` is None when the file was not parsed because the catalog already held its hash.
    """

    path: Path
    source: str
    size: int = 0
    sha256: str = ""
    documents: list[LoadedDocument] | None = None
    error: str | None = None

    @property
    def small_document(self) -> LoadedDocument | None:
        """The file's one document, if it is short enough to be indexed with others (``_ingest_small``)."""
        if self.error is not None or self.documents is None or len(self.documents) != 1:
            return None
        document = self.documents[0]
        return document if not document.part and len(document.text) < SMALL_FILES_CHARS else None


@dataclass(slots=True)
class Pending:
    """A document to index: its id, text, content hash, whether the catalog knows it, and its size in bytes."""

    doc_id: str
    document: LoadedDocument
    sha256: str
    known: bool
    size: int


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
        write_lock: WriteLock | None = None,
        share_template_vectors: bool = True,
        budget: ParseBudget = DEFAULT_BUDGET,
    ) -> None:
        """``write_lock`` (on the data directory) is held for each change, so that several processes
        writing the same stores take turns file by file (small files a group at a time) instead of
        interleaving.

        Which chunks get a vector (see :meth:`_plan_vectors`): those in a language the embedder reads
        and, with ``share_template_vectors``, only the first of the chunks in a knowledge base that
        differ from each other only in numbers and hex ids (log lines of one template, an advisory
        feed's boilerplate). The others are found by keywords alone.

        ``budget`` bounds each file's parse (see :mod:`ingest.budget`) and each document's chunks."""
        if max_file_bytes < 1:
            raise ValueError("max_file_bytes must be positive")
        self.writing: contextlib.AbstractContextManager[object] = write_lock or contextlib.nullcontext()
        self.catalog = catalog
        self.vectors = vectors
        self.keywords = keywords
        self.embedder = embedder
        self.splitter = splitter
        self.max_file_bytes = max_file_bytes
        self.share_template_vectors = share_template_vectors
        self.budget = budget

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
            raise UnknownKnowledgeBase(f"unknown knowledge base {kb!r}")

    def _open(self, kb: str, create: bool) -> None:
        if create:
            self.catalog.create_kb(validate_kb_name(kb))
        else:
            self.require(kb)

    def delete(self, kb: str) -> bool:
        """Remove a KB from Chroma, the keyword index and the catalog."""
        validate_kb_name(kb)
        with self.writing:
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
        with self.writing:
            if self.catalog.document(kb, doc_id) is None:
                return False
            self._delete_chunks(kb, doc_id)
            return self.catalog.remove_document(kb, doc_id)

    def recover(self) -> IngestReport:
        """Finish what a crash interrupted: no document stays ``pending``.

        Every write of a document holds the write lock from ``pending`` to ``ready``, so a pending
        document seen under the lock is one a killed process left. It is indexed again from its file
        when that is still there (a kept upload is its last complete version; a record of a
        multi-document file comes back with its file), else removed with whatever chunks it had.
        """
        report = IngestReport()
        with self.writing:
            for kb in (record.name for record in self.catalog.kbs()):
                pending = self.catalog.documents(kb, status="pending")
                files = {file for record in pending if (file := _file_of(record.source)) is not None}
                for record in pending:
                    self._delete_chunks(kb, record.doc_id)
                    self.catalog.remove_document(kb, record.doc_id)
                    report.removed.append(record.source)
                for source in sorted(files):
                    self._ingest_file(kb, Path(source), source, report)
        return report

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
                report.failed.append((str(path.resolve()), unsupported_format(path)))
        # The next files are hashed and parsed in a read-ahead thread while this one is embedded
        # (torch and most parsers release the GIL); unchanged files are skipped before parsing.
        ready = {r.source: r.sha256 for r in self.catalog.documents(kb) if r.status == "ready"}
        files = iter_files(paths, extensions)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-read-ahead") as reader:
            ahead: deque[Future[ReadFile]] = deque()

            def read_next() -> None:
                path = next(files, None)
                if path is not None:
                    ahead.append(reader.submit(self._read, path, str(path.resolve()), ready))

            for _ in range(READ_AHEAD):
                read_next()
            small: list[ReadFile] = []  # small files are indexed together: each write has a fixed cost
            small_chars = 0
            while ahead:
                read = ahead.popleft().result()
                read_next()
                seen.add(read.source)
                document = read.small_document
                if document is not None:
                    small.append(read)
                    small_chars += len(document.text)
                    if small_chars >= SMALL_FILES_CHARS:
                        self._ingest_small(kb, small, report, progress)
                        small, small_chars = [], 0
                    continue
                with self.writing:
                    outcome = self._ingest_read(kb, read, report)
                if progress:
                    progress(read.source, outcome)
            self._ingest_small(kb, small, report, progress)
        for folder in (p.resolve() for p in paths if p.is_dir()):
            for record in self.catalog.documents(kb):
                gone = record.source not in seen and record.source.rpartition(PART_MARK)[0] not in seen
                if gone and Path(record.source).is_relative_to(folder):
                    self.delete_document(kb, record.doc_id)
                    report.removed.append(record.source)
                    if progress:
                        progress(record.source, "removed")
        return report

    def add_text(
        self, kb: str, name: str, text: str, metadata: dict | None = None, create: bool = True
    ) -> tuple[str, str]:
        """Index ``text`` as the document ``name`` (replacing an earlier one); returns (doc_id, outcome).
        Without ``create`` the KB must exist."""
        check_source_name(name)
        self._open(kb, create)
        data = text.encode("utf-8")
        sha = hashlib.sha256(data).hexdigest()
        doc_id = document_id(kb, name)
        document = LoadedDocument(
            source=name,
            title=Path(name).stem or name,
            sections=[Section(text)],
            metadata={"format": "text", **(metadata or {})},
        )
        with self.writing:
            existing = self.catalog.document(kb, doc_id)
            if is_current(existing, sha):
                return doc_id, "unchanged"
            self._index(kb, doc_id, document, sha, len(data), known=existing is not None)
        return doc_id, "updated" if existing else "added"

    def add_documents(
        self,
        kb: str,
        documents: Iterable[LoadedDocument],
        progress: ProgressCallback | None = None,
        batch_size: int = 256,
    ) -> IngestReport:
        """Index documents that did not come from files (each named by its ``source``), many at a time.

        A document whose text and metadata are unchanged is skipped, a changed one replaces its old
        chunks. The chunks of ``batch_size`` documents are embedded together and written to each store
        in one go: thousands of passages cost seconds of overhead, not the minutes of one call each.
        """
        validate_kb_name(kb)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.catalog.create_kb(kb)
        known = {record.doc_id: record for record in self.catalog.documents(kb)}
        report = IngestReport()
        todo: list[Pending] = []
        seen: set[str] = set()
        for document in documents:
            doc_id = document_id(kb, document.source)
            if doc_id in seen:
                raise KnowledgeBaseError(f"two documents are named {document.source!r}")
            seen.add(doc_id)
            sha = content_sha256(document)
            record = known.get(doc_id)
            if is_current(record, sha):
                report.unchanged.append(document.source)
                if progress:
                    progress(document.source, "unchanged")
                continue
            todo.append(Pending(doc_id, document, sha, record is not None, len(document.text.encode())))
        for start in range(0, len(todo), batch_size):
            with self.writing:
                self._index_batch(kb, todo[start : start + batch_size], report, progress)
        return report

    def _index_batch(
        self, kb: str, batch: list[Pending], report: IngestReport, progress: ProgressCallback | None
    ) -> None:
        """Index several documents in one go: one embed call and one write to each store for all."""
        split = []
        for pending in batch:
            chunks = self.splitter.split_document(pending.document, pending.doc_id)
            if chunks and len(chunks) <= self.budget.max_chunks:
                split.append((pending, chunks))
                continue
            reason = too_many_chunks(self.budget.max_chunks) if chunks else "no text found in the document"
            report.failed.append((pending.document.source, reason))
            if progress:
                progress(pending.document.source, "failed")
        all_chunks = [chunk for _, chunks in split for chunk in chunks]
        if not all_chunks:
            return
        given: set[str] = set()
        plan = self._plan_vectors(kb, all_chunks, {p.doc_id for p, _ in split}, given)
        for pending, _ in split:
            # Pending first, as in _index. The stores only hold chunks of documents the catalog
            # knows (it is written first and cleared last), so a new document has none to replace.
            document = pending.document
            self.catalog.mark_pending(kb, pending.doc_id, document.source, document.title, pending.size)
            if pending.known:
                self._delete_chunks(kb, pending.doc_id, keep=given)
        self._store(kb, plan)
        for pending, chunks in split:
            self.catalog.mark_ready(kb, pending.doc_id, pending.sha256, len(chunks))
            (report.updated if pending.known else report.added).append(pending.document.source)
            report.chunks += len(chunks)
            if progress:
                progress(pending.document.source, "updated" if pending.known else "added")

    def ingest_file(
        self, kb: str, path: Path, source: str | None = None, report: IngestReport | None = None, create: bool = True
    ) -> str:
        """Ingest one file as the document ``source`` (default: its own path); returns the outcome.

        ``source`` lets an upload be read from where it was received yet filed under its lasting
        name, so the same name uploaded again is the same document. Without ``create`` the KB must
        exist (a queued upload must not bring back a KB deleted meanwhile).
        """
        self._open(kb, create)
        source = source or str(path.resolve())
        if not is_supported(path):
            raise KnowledgeBaseError(unsupported_format(path))
        return self._ingest_file(kb, path, source, report if report is not None else IngestReport())

    def _ingest_file(self, kb: str, path: Path, source: str, report: IngestReport) -> str:
        existing = self.catalog.document(kb, document_id(kb, source))
        ready = {source: existing.sha256} if existing and existing.status == "ready" else {}
        read = self._read(path, source, ready)  # outside the lock: other writers need not wait for parsing
        with self.writing:
            return self._ingest_read(kb, read, report)

    def _read(self, path: Path, source: str, ready: dict[str, str]) -> ReadFile:
        """Hash and parse one file, touching no store (it runs in the read-ahead thread).

        A file whose hash is the one ``ready`` (source → sha256 of ready documents) holds is not parsed.
        """
        try:
            check_source_name(source)
            size = path.stat().st_size
            if size > self.max_file_bytes:
                raise LoadError(
                    source, f"file is {size / 2**20:.1f} MB, over the {self.max_file_bytes / 2**20:.0f} MB limit"
                )
            sha = file_sha256(path)
            documents = None if ready.get(source) == sha else load_all(path, self.budget)
        except (LoadError, OSError) as error:
            return ReadFile(path, source, error=error.reason if isinstance(error, LoadError) else str(error))
        return ReadFile(path, source, size, sha, documents)

    def _ingest_small(
        self, kb: str, reads: list[ReadFile], report: IngestReport, progress: ProgressCallback | None
    ) -> None:
        """Index small one-document files read by :meth:`_read` together, as :meth:`add_documents` does."""
        if not reads:
            return
        with self.writing:
            todo: list[Pending] = []
            for read in reads:
                doc_id = document_id(kb, read.source)
                existing = self.catalog.document(kb, doc_id)
                if is_current(existing, read.sha256):
                    report.unchanged.append(read.source)
                    if progress:
                        progress(read.source, "unchanged")
                    continue
                document = read.small_document
                assert document is not None  # only such reads are passed in
                document.source = read.source
                todo.append(Pending(doc_id, document, read.sha256, existing is not None, read.size))
            self._index_batch(kb, todo, report, progress)
            for read in reads:
                self._remove_parts(kb, read.source, set(), report)  # the file used to hold several documents

    def _ingest_read(self, kb: str, read: ReadFile, report: IngestReport) -> str:
        """Index a file read by :meth:`_read`; the caller holds the write lock."""
        source = read.source
        doc_id = document_id(kb, source)
        existing = None
        try:
            if read.error is not None:
                raise LoadError(source, read.error)
            existing = self.catalog.document(kb, doc_id)
            if is_current(existing, read.sha256):
                report.unchanged.append(source)
                return "unchanged"
            # Not parsed ahead because the catalog said unchanged, but it changed since: parse now.
            documents = read.documents if read.documents is not None else load_all(read.path, self.budget)
            if len(documents) > 1 or documents[0].part:
                return self._ingest_parts(kb, source, documents, report)
            document = documents[0]
            document.source = source
            report.chunks += self._index(kb, doc_id, document, read.sha256, read.size, known=existing is not None)
            self._remove_parts(kb, source, set(), report)  # the file used to hold several documents
        except (LoadError, OSError) as error:
            reason = error.reason if isinstance(error, LoadError) else str(error)
            report.failed.append((source, reason))
            return "failed"
        (report.updated if existing else report.added).append(source)
        return "updated" if existing else "added"

    def _ingest_parts(self, kb: str, source: str, documents: list[LoadedDocument], report: IngestReport) -> str:
        """A file that holds several documents (a KEV catalog): each record is its own document.

        Records are filed as ``source#part`` and compared by content, so a re-ingest indexes only the
        records that changed and removes those that left the file; the outcome sums up the file.
        """
        whole = document_id(kb, source)
        if self.catalog.document(kb, whole) is not None:  # it used to be one document
            self.delete_document(kb, whole)
        for document in documents:
            document.source = part_source(source, document.part)
        parts = self.add_documents(kb, documents)
        removed = self._remove_parts(kb, source, {d.source for d in documents}, report)
        report.added += parts.added
        report.updated += parts.updated
        report.unchanged += parts.unchanged
        report.failed += parts.failed
        report.chunks += parts.chunks
        if parts.added:
            return "added"
        if parts.updated or removed:
            return "updated"
        return "unchanged" if parts.unchanged else "failed"

    def _remove_parts(self, kb: str, source: str, keep: set[str], report: IngestReport) -> int:
        """Remove the documents filed under ``source#…`` that are not in ``keep``; how many went."""
        prefix = source + PART_MARK
        # A record id is one name: "a.json#x/b.md" is a file in a folder named "a.json#x", no record.
        gone = [
            r
            for r in self.catalog.parts(kb, prefix)
            if r.source not in keep and not re.search(r"[/\\]", r.source[len(prefix) :])
        ]
        for record in gone:
            self.delete_document(kb, record.doc_id)
            report.removed.append(record.source)
        return len(gone)

    def _delete_chunks(self, kb: str, doc_id: str, keep: Collection[str] = ()) -> None:
        """Drop a document's chunks from Chroma and the keyword index (the catalog entry is the caller's).

        A vector the document's chunk held for a template that other documents' chunks share passes to
        one of them first, so the template stays findable by meaning; not for the templates in ``keep``,
        which the document's next version holds a vector for. The keyword index (SQLite, always
        current) names the chunks, so Chroma deletes them by id and does not depend on its own
        metadata being up to date.
        """
        heirs: dict[str, tuple[Chunk, np.ndarray]] = {}
        passing = self.keywords.heirs(kb, doc_id, keep)
        if passing:
            held = self.vectors.vectors(kb, [holder for holder, _ in passing])
            for holder, heir in passing:
                if holder in held:
                    heirs.setdefault(heir.id, (heir, held[holder]))
        if heirs:
            self.vectors.add(kb, [heir for heir, _ in heirs.values()], np.stack([v for _, v in heirs.values()]))
            self.keywords.mark_dense(kb, list(heirs))
        self.vectors.delete_document(kb, doc_id, self.keywords.ids(kb, doc_id))
        self.keywords.delete_document(kb, doc_id)

    def _index(self, kb: str, doc_id: str, document: LoadedDocument, sha: str, size: int, known: bool) -> int:
        """Replace the document's chunks, embedding and writing them :data:`INDEX_BATCH` at a time.

        ``known``: the catalog has a record of the document. Without one the stores hold none of its
        chunks (the record is written before any chunk), so there is nothing to delete.
        """
        self._check_chunk_count(document, doc_id)
        chunks = self.splitter.iter_chunks(document, doc_id)
        batch = list(islice(chunks, INDEX_BATCH))
        if not batch:
            raise LoadError(document.source, "no text found in the document")
        given: set[str] = set()
        plan = self._plan_vectors(kb, batch, {doc_id}, given)
        # Pending first: until mark_ready the document is not served and the next ingest redoes it.
        self.catalog.mark_pending(kb, doc_id, document.source, document.title, size)
        if known:
            self._delete_chunks(kb, doc_id, keep=given)
        count = 0
        while batch:
            self._store(kb, plan)
            count += len(batch)
            batch = list(islice(chunks, INDEX_BATCH))
            if batch:
                plan = self._plan_vectors(kb, batch, {doc_id}, given)
        self.catalog.mark_ready(kb, doc_id, sha, count)
        return count

    def _check_chunk_count(self, document: LoadedDocument, doc_id: str) -> None:
        """Refuse a document that splits into more than the budget's ``max_chunks``, before any is written.

        Counting means splitting twice, so only documents long enough to possibly be over are counted.
        """
        limit = self.budget.max_chunks
        if len(document.sections) + len(document.text) // 20 <= limit:
            return
        if sum(1 for _ in islice(self.splitter.iter_chunks(document, doc_id), limit + 1)) > limit:
            raise LoadError(document.source, too_many_chunks(limit))

    def _plan_vectors(
        self, kb: str, chunks: Sequence[Chunk], replacing: Collection[str], given: set[str]
    ) -> VectorPlan:
        """Choose the chunks that get a vector, and embed them.

        A chunk gets one when the embedder reads its language (MiniLM's vector of Chinese text is
        noise; Chinese questions use keywords) and, with ``share_template_vectors``, when no chunk
        with a vector stands for its template yet: neither in the KB outside the documents in
        ``replacing`` (whose old chunks are about to go) nor earlier in this write (``given``, which
        this updates). Chunks of one log template embed alike and crowd each other in the
        nearest-neighbour graph; their numbers and ids are the keyword index's to tell apart.
        """
        templates = [template_key(c.text) if self.embedder.reads(language_of(c.text)) else None for c in chunks]
        if self.share_template_vectors:
            taken = given | self.keywords.templates_with_vectors(kb, {t for t in templates if t} - given, replacing)
            dense = []
            for template in templates:
                first = template is not None and template not in taken
                dense.append(first)
                if first:
                    taken.add(template)
                    given.add(template)
        else:
            dense = [t is not None for t in templates]
            given.update(t for t in templates if t)
        chosen = [c.text for c, has_vector in zip(chunks, dense, strict=True) if has_vector]
        vectors = self.embedder.embed(chosen) if chosen else None
        return VectorPlan(list(chunks), templates, dense, vectors)

    def _store(self, kb: str, plan: VectorPlan) -> None:
        """Write planned chunks: the vectors to Chroma, every chunk to the keyword index."""
        if plan.vectors is not None:
            self.vectors.add(kb, [c for c, d in zip(plan.chunks, plan.dense, strict=True) if d], plan.vectors)
        self.keywords.add(kb, plan.chunks, plan.templates, plan.dense)


def _file_of(source: str) -> str | None:
    """The readable file a document came from (a record's: its multi-document file), if it is still there."""
    for candidate in (source, source.rpartition(PART_MARK)[0]):
        if candidate and Path(candidate).is_file() and is_supported(Path(candidate)):
            return candidate
    return None


@dataclass(slots=True)
class VectorPlan:
    """Chunks about to be written, the template key of each (None: a language the embedder cannot read),
    whether each gets a vector, and the vectors of those that do, in order."""

    chunks: list[Chunk]
    templates: list[str | None]
    dense: list[bool]
    vectors: np.ndarray | None
