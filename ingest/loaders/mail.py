"""E-mail (.eml) files: the main headers and the body; attachments are named, not parsed."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path
from typing import cast

from ingest.document import LoadedDocument, Section
from ingest.encoding import decode_bytes
from ingest.loaders.common import make_document
from ingest.loaders.html_text import html_to_text

_HEADERS = ("from", "to", "date", "subject")
# Mail clients label GBK text "gb2312"; GB18030 is a superset that decodes both.
_GB_CHARSETS = frozenset({"gb2312", "gbk", "x-gbk", "gb_2312-80", "cp936", "euc-cn"})


def load_eml(path: Path) -> LoadedDocument:
    """A .eml message; the title is the Subject and the headers are also ``metadata`` keys."""
    with path.open("rb") as file:
        # policy.default builds EmailMessage (get_body, iter_attachments, decoded headers).
        message = cast(EmailMessage, BytesParser(policy=policy.default).parse(file))
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
