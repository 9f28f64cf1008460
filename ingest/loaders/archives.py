"""Office files are ZIP archives: their declared sizes are checked before any parser inflates them.

A "ZIP bomb" named ``report.docx`` holds a few hundred kilobytes that inflate to gigabytes. The
central directory declares every member's compressed and uncompressed size, and :mod:`zipfile`
never inflates a member past its declared size, so checking the declarations is enough to refuse
a bomb without inflating any of it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ingest.document import LoadError

# The formats read by python-docx, python-pptx and openpyxl.
ZIP_FORMATS = frozenset({".docx", ".pptx", ".xlsx"})
# Office XML compresses about 5-20x; deflate cannot exceed about 1032x. Small members are
# exempt: a 10 KB member of zeros is harmless whatever its ratio.
MAX_RATIO = 200
RATIO_EXEMPT_BYTES = 1 << 20
MAX_UNCOMPRESSED_BYTES = 1 << 30
MAX_MEMBERS = 100_000


def check_zip(path: Path, max_uncompressed: int = MAX_UNCOMPRESSED_BYTES, max_ratio: float = MAX_RATIO) -> None:
    """Raise :class:`LoadError` if ``path`` is not a ZIP or would inflate past the limits.

    Usage::

        check_zip(Path("report.docx"))  # then python-docx may open it
    """
    source = str(path)
    kind = path.suffix.lower().lstrip(".").upper() or "ZIP"
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise LoadError(
            source, f"could not parse {kind} file (corrupt, truncated, or not a {kind} file?): not a ZIP archive: {exc}"
        ) from exc
    if len(members) > MAX_MEMBERS:
        raise LoadError(source, f"refused: the {kind} archive has {len(members)} entries (at most {MAX_MEMBERS})")
    total = sum(member.file_size for member in members)
    if total > max_uncompressed:
        raise LoadError(
            source,
            f"refused: the {kind} archive would inflate to {total / 2**20:.0f} MB "
            f"(at most {max_uncompressed / 2**20:.0f} MB); a ZIP bomb?",
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_EXEMPT_BYTES and ratio > max_ratio:
            raise LoadError(
                source,
                f"refused: {member.filename!r} in the {kind} archive inflates {ratio:.0f}x "
                f"(at most {max_ratio:g}x); a ZIP bomb?",
            )
