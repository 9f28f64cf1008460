"""Finding the files to ingest and fingerprinting their contents."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

_HASH_BLOCK_BYTES = 1 << 20


def iter_files(paths: Iterable[Path], extensions: Iterable[str]) -> Iterator[Path]:
    """Yield the files under ``paths`` whose extension (".pdf", any case) is in ``extensions``.

    Folders are walked recursively in name order so runs are repeatable. Hidden files and
    folders (".git", ".DS_Store") are skipped inside folders; a symlinked folder is entered
    once, so link loops end. Each file is yielded once even when reached by two routes.
    Raises :class:`FileNotFoundError` for a path that does not exist, before yielding anything.
    """
    roots = list(paths)
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(f"no such file or folder: {root}")
    wanted = {extension.lower() for extension in extensions}
    seen_dirs: set[Path] = set()
    seen_files: set[Path] = set()
    for root in roots:
        candidates = _walk(root, seen_dirs) if root.is_dir() else iter([root])
        for path in candidates:
            real = path.resolve()
            if path.suffix.lower() in wanted and real not in seen_files:
                seen_files.add(real)
                yield path


def _walk(folder: Path, seen_dirs: set[Path]) -> Iterator[Path]:
    real = folder.resolve()
    if real in seen_dirs:
        return
    seen_dirs.add(real)
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except OSError as exc:
        logger.warning("skipping unreadable folder %s: %s", folder, exc)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(entry, seen_dirs)
        elif entry.is_file():
            yield entry


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's bytes, read in 1 MiB blocks so big files need little memory."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()
