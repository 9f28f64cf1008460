"""Security advisories, recognized by their content rather than their extension.

A ``.json`` file may be a CISA KEV catalog (one document per vulnerability), a CSAF 2.0 advisory,
a CVE JSON 5 record or an OSV record; a ``.md`` file a RustSec advisory (```toml front matter)
or a vulnerability write-up; a ``.yml`` file a RubySec advisory. Anything else is read by the
generic loader of its extension. Every advisory document carries the metadata of
:data:`~ingest.loaders.advisories.model.ADVISORY_FIELDS` on each of its chunks.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ingest.document import LoadedDocument, LoadError
from ingest.encoding import read_text
from ingest.loaders.advisories.csaf import csaf_document, is_csaf
from ingest.loaders.advisories.cve5 import cve5_document, is_cve5
from ingest.loaders.advisories.kev import is_kev, kev_documents
from ingest.loaders.advisories.model import ADVISORY_FIELDS, normalize_id
from ingest.loaders.advisories.osv import is_osv, osv_documents
from ingest.loaders.advisories.rubysec import is_rubysec, rubysec_document
from ingest.loaders.advisories.rustsec import is_rustsec, rustsec_document
from ingest.loaders.advisories.writeups import without_language_links, writeup_document, writeup_title
from ingest.loaders.json_records import json_document, read_json
from ingest.loaders.text import markdown_document
from ingest.loaders.yaml_values import load_yaml_documents

__all__ = ["ADVISORY_FIELDS", "load_json_any", "load_markdown_any", "load_yaml_any", "normalize_id"]


def load_json_any(path: Path) -> LoadedDocument | list[LoadedDocument]:
    """A .json file: KEV catalog, CSAF, CVE JSON 5 or OSV when it is one, else generic JSON."""
    data = read_json(path)
    if is_kev(data):
        return kev_documents(path, data)
    if is_csaf(data):
        return csaf_document(path, data)
    if is_cve5(data):
        return cve5_document(path, data)
    if is_osv(data):
        documents = osv_documents(path, data)
        return documents[0] if len(documents) == 1 and not documents[0].part else documents
    return json_document(path, data)


def load_markdown_any(path: Path) -> LoadedDocument:
    """A .md file: a RustSec advisory, a vulnerability write-up, or plain Markdown."""
    text = read_text(path)
    if is_rustsec(text):
        return rustsec_document(path, text)
    title = writeup_title(text)
    if title is None:
        return markdown_document(path, text)
    text = without_language_links(text)
    return writeup_document(path, markdown_document(path, text), text, title)


def load_yaml_any(path: Path) -> LoadedDocument:
    """A .yml/.yaml file: a RubySec advisory, else its values as "key: value" lines like JSON."""
    try:
        documents = load_yaml_documents(read_text(path))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise LoadError(str(path), f"invalid YAML{where}: {getattr(error, 'problem', None) or error}") from error
    data = documents[0] if len(documents) == 1 else documents
    if is_rubysec(data):
        return rubysec_document(path, data)
    return json_document(path, data, fmt="yaml")
