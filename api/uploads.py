"""Receiving uploads: multipart files or JSON text, checked, limited and staged for ingestion.

The body is read as a stream and cut off at the configured limit, so an oversize upload is
refused (413) without being held whole; nothing reaches the knowledge base before its job runs.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from rag.ingest_jobs import FileUpload, JobFile, TextUpload, Upload
from rag.knowledge_base import is_supported, unsupported_format


class TooLarge(Exception):
    pass


def upload_name(filename: str | None) -> str:
    """The name an uploaded file is stored under: its base name, without any directory the client sent.

    Both slashes count as separators (browsers on Windows may send ``C:\\dir\\a.pdf``); control
    characters (NUL) are dropped; the name is NFC-normalised; names that cannot be a file (empty,
    ``.``, ``..``, over 255 bytes) are refused.
    """
    # NFC: macOS clients send decomposed names (e + U+0301); the same name must be the same document.
    name = unicodedata.normalize("NFC", (filename or "upload.txt").replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(ch for ch in name if ch.isprintable())
    if name in {"", ".", ".."} or name.startswith(".upload-") or len(name.encode("utf-8")) > 255:
        raise HTTPException(422, f"unusable file name {filename!r}")
    return name


async def limited(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise TooLarge
        yield chunk


async def read_files(request: Request, max_bytes: int, max_files: int) -> list[UploadFile]:
    """The files of a multipart body (fields ``files`` or ``file``); 413 past the limits."""
    too_large = f"the upload is larger than the {max_bytes / 2**20:g} MB limit (max_upload_mb)"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, too_large)
    parser = MultiPartParser(request.headers, limited(request.stream(), max_bytes), max_files=max_files, max_fields=20)
    try:
        form = await parser.parse()
    except TooLarge:
        raise HTTPException(413, too_large) from None
    except MultiPartException as error:
        if "Too many files" in error.message:
            raise HTTPException(413, f"too many files in one upload: at most {max_files} (max_upload_files)") from None
        raise HTTPException(422, f"malformed multipart upload: {error.message}") from None
    files = [f for field in ("files", "file") for f in form.getlist(field) if isinstance(f, UploadFile)]
    if not files:
        raise HTTPException(422, "no file in the upload: send them as multipart form fields named 'files'")
    return files


async def read_text(request: Request, model: type, max_bytes: int) -> object:
    """A JSON body validated as ``model``; 413 past ``max_bytes``, read as a stream like files are."""
    too_large = f"the upload is larger than the {max_bytes / 2**20:g} MB limit (max_upload_mb)"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, too_large)
    body = bytearray()
    try:
        async for chunk in limited(request.stream(), max_bytes):
            body += chunk
    except TooLarge:
        raise HTTPException(413, too_large) from None
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors(include_url=False)
        )
        raise HTTPException(422, problems) from None


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip() in {"application/json", ""}


STALE_STAGING_SECONDS = 24 * 3600


class Stager:
    """Copies received files into ``DATA_DIR/incoming/`` (same file system as ``uploads/``, so keeping one
    is a rename). Staging is outside ``uploads/``, where each KB has a folder: no KB name reaches it.
    Folders a crash left there for over :data:`STALE_STAGING_SECONDS` are removed at start.

    Usage::

        stager = Stager(data_dir / "uploads", max_file_bytes)
        uploads, refused = stager.stage("handbook", files)
    """

    def __init__(self, uploads: Path, max_file_bytes: int) -> None:
        self.uploads = uploads
        self.incoming = uploads.parent / "incoming"
        self.max_file_bytes = max_file_bytes
        self.remove_stale()

    def remove_stale(self, age: float = STALE_STAGING_SECONDS) -> list[Path]:
        """Remove staged folders older than ``age`` seconds (a job would have taken them long ago)."""
        removed = []
        now = time.time()
        for folder in self.incoming.glob("*") if self.incoming.is_dir() else ():
            with contextlib.suppress(OSError):
                if now - folder.stat().st_mtime > age:
                    if folder.is_dir():
                        shutil.rmtree(folder)
                    else:
                        folder.unlink()
                    removed.append(folder)
        return removed

    def kept_path(self, kb: str, name: str) -> Path:
        return (self.uploads / kb / name).resolve()

    def is_kept(self, kb: str, source: str) -> bool:
        return Path(source).parent == (self.uploads / kb).resolve()

    def stage(self, kb: str, files: list[UploadFile]) -> tuple[list[Upload], list[JobFile]]:
        """Uploads to ingest and files refused now (unsupported format, too large, repeated name)."""
        names = [upload_name(f.filename) for f in files]  # all checked before any is written
        folder = self.incoming / uuid.uuid4().hex
        uploads: list[Upload] = []
        refused: list[JobFile] = []
        try:
            for name, file in zip(names, files, strict=True):
                if not is_supported(Path(name)):
                    refused.append(JobFile(name=name, outcome="refused", reason=unsupported_format(Path(name))))
                    continue
                if any(u.name == name for u in uploads):
                    refused.append(
                        JobFile(name=name, outcome="refused", reason="the same file name twice in one upload")
                    )
                    continue
                folder.mkdir(parents=True, exist_ok=True)
                staged = folder / name
                if not self._copy(file, staged):
                    refused.append(
                        JobFile(
                            name=name,
                            outcome="refused",
                            reason=f"file is over the {self.max_file_bytes / 2**20:g} MB limit (max_file_mb)",
                        )
                    )
                    continue
                keep_at = self.kept_path(kb, name)
                uploads.append(FileUpload(name, staged, str(keep_at), keep_at))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if not uploads:
            with contextlib.suppress(OSError):
                folder.rmdir()
        return uploads, refused

    def stage_replacement(self, file: UploadFile, source: str, kept: bool) -> FileUpload:
        """A new version of the document ``source``: same format, same id."""
        name = upload_name(file.filename)
        wanted = Path(source).suffix.lower() if is_supported(Path(source)) else ""
        if wanted and Path(name).suffix.lower() != wanted:
            raise HTTPException(415, f"the new content must be a {wanted} file like the document it replaces")
        if not wanted and not is_supported(Path(name)):
            raise HTTPException(415, unsupported_format(Path(name)))
        folder = self.incoming / uuid.uuid4().hex
        folder.mkdir(parents=True)
        staged = folder / (Path(source).name if wanted else name)
        if not self._copy(file, staged):
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(413, f"file is over the {self.max_file_bytes / 2**20:g} MB limit (max_file_mb)")
        return FileUpload(name, staged, source, Path(source) if kept else None)

    def _copy(self, file: UploadFile, target: Path) -> bool:
        """Copy at most ``max_file_bytes``; False (and nothing left) if the file is larger."""
        copied = 0
        with target.open("wb") as out:
            while block := file.file.read(1 << 20):
                copied += len(block)
                if copied > self.max_file_bytes:
                    break
                out.write(block)
        if copied > self.max_file_bytes:
            target.unlink()
            return False
        return True


__all__ = ["Stager", "TextUpload", "is_json", "is_multipart", "read_files", "read_text", "upload_name"]
