"""E-mail (.eml) files: the main headers and the body; attachments are named, not parsed."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path
from typing import cast

from ingest.budget import BudgetExceeded, current
from ingest.document import LoadedDocument, Section
from ingest.encoding import decode_bytes
from ingest.loaders.common import make_document
from ingest.loaders.html_text import html_to_text

_HEADERS = ("from", "to", "date", "subject")
# Mail clients label GBK text "gb2312"; GB18030 is a superset that decodes both.
_GB_CHARSETS = frozenset({"gb2312", "gbk", "x-gbk", "gb_2312-80", "cp936", "euc-cn"})


def load_eml(path: Path) -> LoadedDocument:
    """A .eml message; the title is the Subject and the headers are also ``metadata`` keys.

    Every header is checked against the budget's ``max_header_bytes`` before the parser sees it:
    decoding encoded words and RFC 2231 parameters costs time that grows with the square of a
    header's length, so a 280 KB Subject would hold the worker for minutes and gigabytes.
    """
    raw = path.read_bytes()
    check_header_sizes(raw, current().max_header_bytes)
    # policy.default builds EmailMessage (get_body, iter_attachments, decoded headers).
    message = cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(raw))
    headers = {name: " ".join(str(message.get(name, "")).split()) for name in _HEADERS}
    lines = [f"{name.capitalize()}: {value}" for name, value in headers.items() if value]
    body = _body_text(message, str(path))
    attachments = [part.get_filename() or "(unnamed)" for part in message.iter_attachments()]
    text = "\n".join(lines)
    if body:
        text += f"\n\n{body}"
    if attachments:
        text += "\n\nAttachments: " + ", ".join(attachments)
    metadata = {name: value for name, value in headers.items() if value}
    return make_document(path, "eml", [Section(text)], title=headers["subject"], **metadata)


def check_header_sizes(raw: bytes, limit: int) -> None:
    """Raise :class:`BudgetExceeded` if a header (with its folded lines) of the message or of any
    MIME part is over ``limit`` bytes, or a header block is over 16 times that.

    Header blocks are where the parser looks for them: at the start and after each boundary line
    (``--…``), up to the next blank line; a header is a line and the indented lines that follow it.
    """
    in_headers, header, block = True, 0, 0
    for line in raw.splitlines():
        if in_headers:
            if not line.strip():
                in_headers = False
                continue
            header = header + len(line) if line[:1] in (b" ", b"\t") else len(line)
            block += len(line)
            if header > limit:
                raise BudgetExceeded("parse_max_header_bytes", f"an e-mail header is over {limit:,} bytes")
            if block > 16 * limit:
                raise BudgetExceeded("parse_max_header_bytes", f"an e-mail's headers are over {16 * limit:,} bytes")
        elif line.startswith(b"--"):
            in_headers, header, block = True, 0, 0


def _body_text(message: EmailMessage, source: str) -> str:
    """The plain-text body, else the HTML body as text; empty when there is neither."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _decoded_payload(part, source)
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    return text.strip()


def _decoded_payload(part: Message, source: str) -> str:
    """The part's text in its declared charset, or detected when the label is missing or wrong."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = (part.get_content_charset() or "").lower()
    if charset in _GB_CHARSETS:
        charset = "gb18030"
    if charset:
        try:
            return payload.decode(charset).replace("\r\n", "\n")
        except (LookupError, UnicodeDecodeError):
            pass
    return decode_bytes(payload, source)
