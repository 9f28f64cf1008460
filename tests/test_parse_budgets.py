"""Hostile files fail on their own, quickly, with a reason naming the limit (issue 17, items 1, 2, 11).

Each fixture is the small file of the audit (or a scaled-down one under a scaled-down budget): without
a budget each of these parses for tens of seconds or expands to gigabytes.
"""

from __future__ import annotations

import time
from pathlib import Path

import openpyxl
import pytest
from pypdf import PdfWriter
from pypdf.generic import ArrayObject, NameObject, NumberObject

from ingest.budget import DEFAULT_BUDGET, ParseBudget
from ingest.document import LoadError
from ingest.loaders import load_all
from rag.engine import Engine
from rag.settings import Settings

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def refused(path: Path, budget: ParseBudget = DEFAULT_BUDGET, seconds: float = 20) -> str:
    start = time.monotonic()
    with pytest.raises(LoadError) as error:
        load_all(path, budget)
    assert time.monotonic() - start < seconds
    return error.value.reason


def test_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yml"
    path.write_text(BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 600
    assert "parse_max_yaml_nodes" in refused(path, seconds=5)


def test_yaml_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yml"
    path.write_text("a: &a [1, *a]\n")
    assert "parse_max_yaml_nodes" in refused(path)


def test_yaml_with_a_few_aliases_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("base: &base {timeout: 30, retries: 3}\nprod: *base\nstaging: *base\n")
    (document,) = load_all(path)
    assert "timeout" in document.text


def test_mail_subject_of_encoded_words_is_refused(tmp_path: Path) -> None:
    subject = "\r\n ".join("=?utf-8?q?ab?=" for _ in range(20_000))
    path = tmp_path / "bomb.eml"
    path.write_bytes(f"From: a@b.c\r\nSubject: {subject}\r\nContent-Type: text/plain\r\n\r\nhello\r\n".encode())
    assert "parse_max_header_bytes" in refused(path, seconds=5)


def test_mail_content_type_of_many_rfc2231_parameters_is_refused(tmp_path: Path) -> None:
    params = "".join(f";\r\n p{i}*0*=utf-8''x" for i in range(20_000))
    path = tmp_path / "params.eml"
    path.write_bytes(f"From: a@b.c\r\nSubject: s\r\nContent-Type: text/plain{params}\r\n\r\nhi\r\n".encode())
    assert "parse_max_header_bytes" in refused(path, seconds=5)


def test_mime_part_headers_are_checked_too(tmp_path: Path) -> None:
    params = "".join(f";\r\n p{i}=x" for i in range(3_000))
    path = tmp_path / "part.eml"
    path.write_bytes(
        (
            'From: a@b.c\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
            f"--B\r\nContent-Type: text/plain{params}\r\n\r\nhi\r\n--B--\r\n"
        ).encode()
    )
    assert "parse_max_header_bytes" in refused(path)


def test_ordinary_mail_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.eml"
    path.write_bytes(b"From: a@b.c\r\nSubject: Leave policy\r\nContent-Type: text/plain\r\n\r\nFifteen days.\r\n")
    (document,) = load_all(path)
    assert document.title == "Leave policy"


def test_html_tag_bomb_is_refused_before_the_tree_is_built(tmp_path: Path) -> None:
    path = tmp_path / "br.html"
    path.write_text("<p>x" + "<br>" * 300_000)
    assert "parse_max_html_tags" in refused(path, seconds=5)


def test_xlsx_value_in_the_last_column_is_refused(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet()
    for row in range(1, 400):
        sheet.append([None] * 16_383 + [f"v{row}"])
    path = tmp_path / "wide.xlsx"
    workbook.save(path)
    assert path.stat().st_size < 200_000
    assert "parse_chars_per_byte" in refused(path, ParseBudget(chars_per_byte=10, min_chars=100_000))


def _pdf_with_repeated_page(path: Path, times: int) -> Path:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    page_ref = writer.pages[0].indirect_reference
    pages = writer.root_object["/Pages"].get_object()
    pages[NameObject("/Kids")] = ArrayObject([page_ref] * times)
    pages[NameObject("/Count")] = NumberObject(times)
    with path.open("wb") as out:
        writer.write(out)
    return path


def test_pdf_page_tree_that_repeats_a_page_is_refused(tmp_path: Path) -> None:
    path = _pdf_with_repeated_page(tmp_path / "repeat.pdf", 50)
    assert "parse_max_pdf_pages" in refused(path)


def test_pdf_with_too_many_pages_is_refused(tmp_path: Path) -> None:
    path = _pdf_with_repeated_page(tmp_path / "many.pdf", 50)
    assert "over 10" in refused(path, ParseBudget(max_pdf_pages=10))


def test_output_budget_applies_to_every_format(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("word " * 2_000)
    assert "parse_chars_per_byte" in refused(path, ParseBudget(chars_per_byte=0.5, min_chars=10))


def test_budget_comes_from_settings_and_bounds_chunks(engine: Engine, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", parse_max_chunks=3, chunk_size=50, chunk_overlap=0)
    assert settings.parse_budget().max_chunks == 3
    kbs = Engine(settings).knowledge_bases
    kbs.embedder = engine.embedder
    path = tmp_path / "long.txt"
    path.write_text("\n\n".join(f"Paragraph {i} says something about topic {i}." for i in range(200)))
    report = kbs.ingest("budget", [path])
    assert report.failed and "parse_max_chunks" in report.failed[0][1]
    assert kbs.catalog.documents("budget") == []  # nothing half-written
