"""Turn a text file's bytes into str without knowing its encoding.

Local knowledge bases mix UTF-8 files with legacy Windows files: GBK/GB18030 for Chinese,
cp1252 for Western text. Statistical detectors are unreliable on short strings (charset-normalizer
answers cp949 for a short GBK string and Big5 or EBCDIC for a short Latin-1 one), so the order
is: byte-order mark, strict UTF-8, strict GB18030 when the high bytes are laid out like Chinese
text, charset-normalizer when there is enough evidence for statistics, else cp1252.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from charset_normalizer import from_bytes

from ingest.document import LoadError

# Longest BOMs first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)

_HIGH_BYTES = bytes(range(0x80, 0x100))
# The layout of the first 64 KiB is evidence enough and keeps big files fast.
_SAMPLE_BYTES = 1 << 16
# A streamed file's encoding is chosen from its first megabyte.
_STREAM_SAMPLE_BYTES = 1 << 20
_NEWLINES = re.compile(r"\r\n?")
# C0 control bytes that text never holds (tab, line ends, form feed and ESC of terminal colours are
# text); in random or compressed data about one byte in eleven is one of them.
_CONTROL_BYTES = bytes([*range(0x01, 0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_MAX_CONTROL_SHARE = 0.02
# Non-ASCII lines that must be valid UTF-8 before a file that is not is read line by line as mixed.
_MIN_MIXED_LINES = 2

# GB2312 rows A1-A3 hold CJK punctuation and full-width forms, B0-D7 the 3755 most common
# hanzi; real Chinese text is nearly all from these. Latin-1 lower-case letters (E0-FF) and
# Big5's common rows (A4-C6) mostly fall elsewhere, which keeps them from passing as GBK.
_COMMON_GB_LEADS = frozenset(range(0xA1, 0xA4)) | frozenset(range(0xB0, 0xD8))
# A GB18030 character: four bytes (lead, digit, lead, digit), two bytes, or a lone high byte.
_GB_TOKENS = re.compile(rb"[\x81-\xfe][\x30-\x39][\x81-\xfe][\x30-\x39]|[\x81-\xfe][\x40-\x7e\x80-\xfe]|[\x80-\xff]")
_MIN_GB_SHARE = 0.8
_MIN_COMMON_SHARE = 0.6
# With fewer non-ASCII bytes than this charset-normalizer guesses wildly (EBCDIC, Urdu, Big5 for
# "élan"), unless they are dense, as in CJK or Cyrillic text and never in Latin text.
_MIN_HIGH_BYTES_FOR_DETECTION = 64
_MIN_HIGH_BYTES_DENSE = 8
_MIN_DENSITY = 0.3
# Text files without a BOM and without NUL bytes are never EBCDIC, UTF-16/32 or UTF-7.
_NEVER_DETECT = ["cp037", "cp273", "cp424", "cp500", "cp875", "cp1026", "cp1140", "utf_7"] + [
    f"utf_{bits}{order}" for bits in (16, 32) for order in ("", "_be", "_le")
]


def read_text(path: Path) -> str:
    """Read a text file whatever its encoding; see :func:`decode_bytes`."""
    return decode_bytes(path.read_bytes(), str(path))


def open_text(path: Path) -> TextIO:
    """A text file opened for reading line by line, whatever its encoding, in little memory.

    The encoding is chosen as :func:`decode_bytes` would, from the file's first megabyte; line ends
    become ``\\n`` and bytes that do not decode become U+FFFD, so one bad byte deep in a big log
    does not stop it. Raises :class:`LoadError` for binary content in that first megabyte.
    """
    with path.open("rb") as file:
        sample = file.read(_STREAM_SAMPLE_BYTES)
        complete = not file.read(1)
    codec = detect_codec(sample, str(path), complete=complete)
    return path.open(encoding=codec, errors="replace", newline=None)


def detect_codec(data: bytes, source: str, complete: bool = True) -> str:
    """The codec :func:`decode_bytes` uses for ``data``; ``complete=False`` when it is only a file's head.

    A head may end inside a multi-byte character; that cut does not count against UTF-8 or GB18030.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec
    if b"\x00" in data:
        raise LoadError(source, "binary content in a text file (it contains NUL bytes); is the extension wrong?")
    sample = data[:_SAMPLE_BYTES]
    if len(sample) - len(sample.translate(None, _CONTROL_BYTES)) > _MAX_CONTROL_SHARE * len(sample):
        raise LoadError(source, "binary content in a text file (it is full of control bytes); is the extension wrong?")
    if _decodes(data, "utf-8", complete):
        return "utf-8"
    layout = _HighBytes.of(data)
    if layout.looks_like_gb() and _decodes(data, "gb18030", complete):
        return "gb18030"
    if layout.worth_detecting():
        best = from_bytes(data, cp_exclusion=_NEVER_DETECT).best()
        if best is not None:
            return best.encoding
    return "cp1252"


def _decodes(data: bytes, codec: str, complete: bool) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError as error:
        # A head cut inside a character fails only in its last few bytes.
        return not complete and error.start >= len(data) - 3 and _decodes(data[: error.start], codec, True)
    return True


def decode_bytes(data: bytes, source: str) -> str:
    """Decode ``data`` (the contents of ``source``) and normalise line ends to ``\\n``.

    A file that mixes UTF-8 lines with legacy (GBK, cp1252) lines is decoded line by line.

    Raises :class:`LoadError` when the bytes are not text at all (NUL bytes outside UTF-16/32).
    """
    codec = detect_codec(data, source)
    if codec != "utf-8" and not codec.startswith(("utf_", "utf-")) and (mixed := _decode_mixed(data, source)):
        return _normalise(mixed)
    return _normalise(data.decode(codec, errors="replace"))


def _decode_mixed(data: bytes, source: str) -> str | None:
    """A file of UTF-8 lines and legacy lines (text pasted together from two systems), line by line.

    ``None`` unless several non-ASCII lines are valid UTF-8 while others are not: a legacy file's
    lines are almost never valid UTF-8 (multi-byte UTF-8 has a strict lead/continuation layout).
    """
    lines = data.splitlines(keepends=True)
    utf8: list[bool] = []
    for line in lines:
        try:
            line.decode("utf-8")
            utf8.append(True)
        except UnicodeDecodeError:
            utf8.append(False)
    wide_utf8 = sum(ok and not line.isascii() for ok, line in zip(utf8, lines, strict=True))
    if wide_utf8 < _MIN_MIXED_LINES or all(utf8):
        return None
    legacy = b"".join(line for ok, line in zip(utf8, lines, strict=True) if not ok)
    codec = detect_codec(legacy, source)
    return "".join(
        line.decode("utf-8") if ok else line.decode(codec, errors="replace")
        for ok, line in zip(utf8, lines, strict=True)
    )


@dataclass(frozen=True, slots=True)
class _HighBytes:
    """How the non-ASCII bytes are laid out, which tells CJK text from Latin text.

    GBK/GB18030 Chinese is mostly two-byte characters with both bytes >= 0xA1 (plus rare
    four-byte ones); Latin-1/cp1252 text has lone accented bytes between ASCII letters, which
    strict GB18030 would otherwise happily decode as hanzi ("über" is a valid GBK pair + "er").
    CJK text of any encoding is also dense in high bytes, Latin text sparse.
    """

    size: int
    high: int
    gb_share: float
    common_gb_share: float

    @classmethod
    def of(cls, data: bytes) -> _HighBytes:
        data = data[:_SAMPLE_BYTES]
        high = len(data) - len(data.translate(None, _HIGH_BYTES))
        if high == 0:
            return cls(len(data), 0, 0.0, 0.0)
        firm = 0
        leads: list[int] = []
        for token in _GB_TOKENS.findall(data):
            if len(token) == 4:
                firm += 2  # two of its four bytes are ASCII digits
            elif len(token) == 2 and token[1] >= 0x80:
                firm += 2
                leads.append(token[0])
        common = sum(lead in _COMMON_GB_LEADS for lead in leads)
        return cls(len(data), high, firm / high, common / len(leads) if leads else 0.0)

    def looks_like_gb(self) -> bool:
        return self.gb_share >= _MIN_GB_SHARE and self.common_gb_share >= _MIN_COMMON_SHARE

    def worth_detecting(self) -> bool:
        """Whether charset-normalizer has enough evidence to beat a plain cp1252 guess."""
        if self.high >= _MIN_HIGH_BYTES_FOR_DETECTION:
            return True
        return self.high >= _MIN_HIGH_BYTES_DENSE and self.high / self.size >= _MIN_DENSITY


def _normalise(text: str) -> str:
    return _NEWLINES.sub("\n", text)
