"""File loaders, encoding detection and file discovery, on documents built at test time."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import docx
import openpyxl
import pytest
from pptx import Presentation
from pptx.util import Inches
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfgen import canvas

from ingest import loaders
from ingest.document import LoadError
from ingest.encoding import decode_bytes, read_text
from ingest.files import file_sha256, iter_files
from ingest.loaders import LOADERS, SUPPORTED_EXTENSIONS, available_extensions, load, unstructured_loader
from ingest.loaders.html_text import html_to_text
from ingest.loaders.logs import LOG_SECTION_CHARS
from ingest.loaders.unstructured_loader import unstructured_available
from tests.builders import make_pdf

ZH_PARAGRAPH = (
    "知识库问答系统支持中文和英文文档。员工每年享有十五天带薪年假，"
    "病假需要提供医院证明。报销流程：先填写申请表，再由部门经理审批，最后提交财务部。"
)
EN_PARAGRAPH = "Employees get fifteen days of paid annual leave. Sick leave needs a doctor's note."


# --- encoding -----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["gb18030", "gbk"])
def test_chinese_legacy_encodings_decode(tmp_path: Path, codec: str) -> None:
    text = (ZH_PARAGRAPH + "\n" + EN_PARAGRAPH + "\n") * 20
    path = tmp_path / f"{codec}.txt"
    path.write_bytes(text.encode(codec))
    assert read_text(path) == text


@pytest.mark.parametrize("text", ["中文", "你好，世界", "价格：100元（含税）", "错误 code=42"])
def test_short_gbk_strings_decode(text: str) -> None:
    # Statistical detectors answer cp949 or a Latin code page for strings this short.
    assert decode_bytes(text.encode("gbk"), "short.txt") == text


def test_gb18030_four_byte_characters_decode() -> None:
    text = "罕见字 𠀀 与欧元符号 € 以及常用汉字的混合文本。" * 3
    assert decode_bytes(text.encode("gb18030"), "rare.txt") == text


@pytest.mark.parametrize(
    "text",
    [
        "café résumé naïve",
        "Größe",
        "élan",
        "Das ist eine größere Datei über Äpfel und Öl, schön.",
        "“Smart quotes” and an em dash — in cp1252",
    ],
)
def test_latin_text_is_not_taken_for_gbk(text: str) -> None:
    # "über" is a valid GBK byte pair; the byte layout, not strict decoding, must rule GBK out.
    assert decode_bytes(text.encode("cp1252"), "latin.txt") == text


@pytest.mark.parametrize("codec", ["utf-8", "utf-16-le", "utf-16-be", "utf-32-le"])
def test_byte_order_marks(codec: str) -> None:
    text = f"{ZH_PARAGRAPH} {EN_PARAGRAPH}"
    assert decode_bytes(("\ufeff" + text).encode(codec), "bom.txt") == text


def test_crlf_line_ends_are_normalised() -> None:
    assert decode_bytes("第一行\r\nsecond\rthird\n".encode(), "crlf.txt") == "第一行\nsecond\nthird\n"


def test_binary_content_in_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00binary")
    with pytest.raises(LoadError, match="binary content") as caught:
        load(path)
    assert caught.value.source == str(path)


# --- plain text, logs, Markdown -----------------------------------------------------------


def test_txt(tmp_path: Path) -> None:
    path = tmp_path / "休假制度.txt"
    path.write_text(f"{ZH_PARAGRAPH}\n\n{EN_PARAGRAPH}\n", encoding="utf-8")
    document = load(path)
    assert document.title == "休假制度"
    assert document.source == str(path)
    assert document.metadata["format"] == "txt"
    assert ZH_PARAGRAPH in document.text and EN_PARAGRAPH in document.text


def test_log_keeps_lines_and_numbers_them(tmp_path: Path) -> None:
    lines = [f"2024-05-01 12:00:{i % 60:02d} INFO 请求 {i} handled   ok" for i in range(1, 251)]
    path = tmp_path / "app.log"
    path.write_text("\n".join(lines) + "\n", encoding="gbk")
    document = load(path)
    assert document.metadata["format"] == "log"
    sections = list(document.sections)
    ranges = [(s.metadata["line_start"], s.metadata["line_end"]) for s in sections]
    assert ranges[0][0] == 1 and ranges[-1][1] == 250
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))  # contiguous, whole lines
    for section, (first, last) in zip(sections, ranges, strict=True):
        assert section.text.split("\n") == lines[first - 1 : last]  # kept as-is, spaces included
        assert len(section.text) <= LOG_SECTION_CHARS


MARKDOWN = """# 员工手册

Intro paragraph.

## Install

```bash
# not a heading, a shell comment
pip install rag-kb
```

### Linux

Use apt.

Windows
-------

用安装包安装。
"""


def test_markdown_sections_follow_headings(tmp_path: Path) -> None:
    path = tmp_path / "handbook.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    document = load(path)
    assert document.title == "员工手册"
    by_section = {s.metadata.get("section"): s.text for s in document.sections}
    assert list(by_section) == ["员工手册", "员工手册 > Install", "员工手册 > Install > Linux", "员工手册 > Windows"]
    assert by_section["员工手册 > Install"].startswith("## Install")
    assert "# not a heading, a shell comment" in by_section["员工手册 > Install"]
    assert by_section["员工手册 > Windows"] == "Windows\n-------\n\n用安装包安装。"


def test_markdown_without_h1_is_titled_by_file_name(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("Some text.\n\n## Part\n\nMore.\n", encoding="utf-8")
    document = load(path)
    assert document.title == "notes"
    assert [s.metadata.get("section") for s in document.sections] == [None, "Part"]


# --- HTML ---------------------------------------------------------------------------------

HTML = """<!DOCTYPE html>
<html><head><title>报销指南 | Expense guide</title><style>p { color: red }</style>
<script>var tracking = "do not index";</script></head>
<body><nav>Home | About | Contact</nav>
<h1>报销流程</h1><p>先填写申请表，
再由经理审批。</p><div>First <b>fill in</b> the form.<br>Then ask your manager.</div>
<!-- a comment --><noscript>enable JS</noscript>
<h2>Limits</h2>
<table><tr><th>项目</th><th>上限</th></tr><tr><td>Hotel</td><td>500</td></tr></table>
<ul><li>Taxi</li><li>Train</li></ul>
</body></html>"""


def test_html(tmp_path: Path) -> None:
    path = tmp_path / "guide.html"
    path.write_text(HTML, encoding="utf-8")
    document = load(path)
    assert document.title == "报销指南 | Expense guide"
    text = document.text
    for noise in ("tracking", "color: red", "Home | About", "enable JS", "a comment"):
        assert noise not in text
    assert "先填写申请表， 再由经理审批。\nFirst fill in the form.\nThen ask your manager." in text
    assert "项目\t上限\nHotel\t500" in text
    assert "- Taxi\n- Train" in text
    assert [s.metadata["section"] for s in document.sections] == ["报销流程", "报销流程 > Limits"]


def test_html_title_falls_back_to_h1_and_gbk_pages_decode(tmp_path: Path) -> None:
    path = tmp_path / "page.htm"
    path.write_bytes("<h1>差旅政策</h1><p>出差需提前申请。</p>".encode("gbk"))
    document = load(path)
    assert document.title == "差旅政策"
    assert "出差需提前申请。" in document.text


def test_html_missing_head_end_tag_keeps_the_body(tmp_path: Path) -> None:
    path = tmp_path / "sloppy.html"
    path.write_text("<html><head><title>T</title><body><p>正文 body</p></body></html>", encoding="utf-8")
    document = load(path)
    assert document.title == "T"
    assert document.text == "正文 body"


# --- PDF ----------------------------------------------------------------------------------


def test_pdf_pages_are_one_based(tmp_path: Path) -> None:
    path = make_pdf(
        tmp_path / "policy.pdf",
        [
            ["第一页：年假规定", "Page one: annual leave"],
            ["第二页：病假规定", "Page two: sick leave"],
            ["第三页：报销", "Page three"],
        ],
        title="公司制度 Policy",
    )
    document = load(path)
    assert document.title == "公司制度 Policy"
    assert document.metadata["format"] == "pdf"
    assert [s.metadata["page"] for s in document.sections] == [1, 2, 3]
    assert "第一页：年假规定" in document.sections[0].text and "Page one" in document.sections[0].text
    assert "第二页：病假规定" in document.sections[1].text and "第一页" not in document.sections[1].text
    assert "第三页：报销" in document.sections[2].text


def test_pdf_blank_page_keeps_later_page_numbers(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "gap.pdf", [["first"], [], ["third 第三"]])
    assert [s.metadata["page"] for s in load(path).sections] == [1, 3]


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    pdf = canvas.Canvas(str(path))
    pdf.rect(72, 72, 200, 300, fill=1)  # a "scanned" page: marks, no text
    pdf.showPage()
    pdf.save()
    with pytest.raises(LoadError, match="no text layer"):
        load(path)


def test_encrypted_pdf(tmp_path: Path) -> None:
    locked = make_pdf(tmp_path / "locked.pdf", [["secret"]], encrypt=StandardEncryption("pw", ownerPassword="owner"))
    with pytest.raises(LoadError, match="encrypted PDF"):
        load(locked)
    # Owner-password-only files ("no printing") open with the empty user password.
    restricted = make_pdf(
        tmp_path / "restricted.pdf", [["限制打印 readable"]], encrypt=StandardEncryption("", ownerPassword="o")
    )
    assert "限制打印 readable" in load(restricted).text


@pytest.mark.parametrize("extension", [".pdf", ".docx", ".pptx", ".xlsx"])
def test_corrupt_files_name_the_file(tmp_path: Path, extension: str) -> None:
    path = tmp_path / f"broken{extension}"
    path.write_bytes(os.urandom(2048))
    with pytest.raises(LoadError) as caught:
        load(path)
    assert str(path) in str(caught.value)
    assert "could not parse" in caught.value.reason


# --- Word ---------------------------------------------------------------------------------


def test_docx_headings_tables_and_title(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("员工手册", level=0)  # "Title" style
    document.add_paragraph("Intro 简介。")
    document.add_heading("Leave 休假", level=1)
    document.add_paragraph(EN_PARAGRAPH)
    document.add_heading("Annual", level=2)
    table = document.add_table(rows=2, cols=3)
    for cell, value in zip(table.rows[0].cells, ["类型", "天数", "Note"], strict=True):
        cell.text = value
    for cell, value in zip(table.rows[1].cells, ["年假", "15", "paid"], strict=True):
        cell.text = value
    document.add_paragraph("After the table.")
    path = tmp_path / "handbook.docx"
    document.save(str(path))

    loaded = load(path)
    assert loaded.title == "员工手册"
    assert loaded.metadata["format"] == "docx"
    sections = {s.metadata.get("section"): s.text for s in loaded.sections}
    assert list(sections) == ["员工手册", "员工手册 > Leave 休假", "员工手册 > Leave 休假 > Annual"]
    paragraphs = ["Annual", "类型\t天数\tNote", "年假\t15\tpaid", "After the table."]
    assert sections["员工手册 > Leave 休假 > Annual"] == "\n\n".join(paragraphs)
    assert EN_PARAGRAPH in sections["员工手册 > Leave 休假"]


def test_docx_core_title_wins(tmp_path: Path) -> None:
    document = docx.Document()
    document.core_properties.title = "Travel policy 差旅"
    document.add_paragraph("Body text only.")
    path = tmp_path / "travel.docx"
    document.save(str(path))
    loaded = load(path)
    assert loaded.title == "Travel policy 差旅"
    assert loaded.sections[0].metadata == {}


# --- PowerPoint ---------------------------------------------------------------------------


def test_pptx_slides_tables_groups_and_notes(tmp_path: Path) -> None:
    presentation = Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[1])  # title and content
    first.shapes.title.text = "季度总结 Q1"
    first.placeholders[1].text = "收入增长 20%\nRevenue up"
    first.notes_slide.notes_text_frame.text = "讲者备注 speaker notes"

    second = presentation.slides.add_slide(presentation.slide_layouts[5])  # title only
    second.shapes.title.text = "Numbers"
    rows = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    rows.cell(0, 0).text, rows.cell(0, 1).text = "地区", "Sales"
    rows.cell(1, 0).text, rows.cell(1, 1).text = "华东", "100"
    group = second.shapes.add_group_shape()
    box = group.shapes.add_textbox(Inches(1), Inches(4), Inches(3), Inches(1))
    box.text_frame.text = "grouped 分组文字"

    presentation.slides.add_slide(presentation.slide_layouts[6])  # blank slide: no section
    path = tmp_path / "deck.pptx"
    presentation.save(str(path))

    loaded = load(path)
    assert loaded.title == "季度总结 Q1"
    assert [s.metadata["slide"] for s in loaded.sections] == [1, 2]
    assert [s.metadata["section"] for s in loaded.sections] == ["季度总结 Q1", "Numbers"]
    assert "收入增长 20%\nRevenue up" in loaded.sections[0].text
    assert "Notes: 讲者备注 speaker notes" in loaded.sections[0].text
    assert "地区\tSales\n华东\t100" in loaded.sections[1].text
    assert "grouped 分组文字" in loaded.sections[1].text


# --- spreadsheets and CSV -----------------------------------------------------------------


def test_xlsx_sheets_and_rows(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    prices = workbook.active
    prices.title = "价格表"
    prices.append(["名称", "价格", "更新日期"])
    prices.append(["苹果", 5.0, datetime(2024, 3, 1)])
    prices.append([None, None, None])  # blank row: skipped
    prices.append(["Pear", 3.5, None])
    raw = workbook.create_sheet("Raw")
    raw.append([1, 2, "three"])
    raw.append(["四", None, 6])
    workbook.create_sheet("Empty")
    path = tmp_path / "book.xlsx"
    workbook.save(str(path))

    loaded = load(path)
    assert loaded.metadata["format"] == "xlsx"
    assert [s.metadata["sheet"] for s in loaded.sections] == ["价格表", "Raw"]
    assert loaded.sections[0].text == "名称: 苹果 | 价格: 5 | 更新日期: 2024-03-01\n名称: Pear | 价格: 3.5"
    assert loaded.sections[1].text == "1\t2\tthree\n四\t\t6"


def test_csv_gbk_header_rows_and_row_ranges(tmp_path: Path) -> None:
    path = tmp_path / "员工.csv"
    with path.open("w", encoding="gbk", newline="") as file:
        writer = csv.writer(file, delimiter=";")
        writer.writerow(["姓名", "部门", "Note"])
        for i in range(1, 121):
            writer.writerow([f"员工{i}", "研发部", "multi\nline" if i == 2 else ""])
    loaded = load(path)
    assert loaded.metadata["format"] == "csv"
    ranges = [(s.metadata["row_start"], s.metadata["row_end"]) for s in loaded.sections]
    assert ranges == [(1, 50), (51, 100), (101, 120)]
    first_lines = loaded.sections[0].text.split("\n")
    assert first_lines[0] == "姓名: 员工1 | 部门: 研发部"
    assert first_lines[1] == "姓名: 员工2 | 部门: 研发部 | Note: multi line"
    assert loaded.sections[2].text.split("\n")[-1] == "姓名: 员工120 | 部门: 研发部"


def test_csv_without_header_is_tab_separated(tmp_path: Path) -> None:
    path = tmp_path / "numbers.csv"
    path.write_text("2024-01-01,100,北京\n2024-01-02,200,上海\n", encoding="utf-8")
    assert load(path).text == "2024-01-01\t100\t北京\n2024-01-02\t200\t上海"


# --- JSON ---------------------------------------------------------------------------------


def test_json_object_renders_paths(tmp_path: Path) -> None:
    data = {
        "title": "配置说明",
        "server": {"host": "localhost", "port": 8080, "tls": False},
        "tags": ["rag", "知识库"],
        "users": [{"name": "张三", "role": "admin"}, {"name": "Bob", "role": None}],
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    loaded = load(path)
    assert loaded.title == "配置说明"
    assert loaded.text == (
        "title: 配置说明\nserver.host: localhost\nserver.port: 8080\nserver.tls: false\n"
        "tags: rag, 知识库\nusers[0].name: 张三\nusers[0].role: admin\n\n"
        "users[1].name: Bob\nusers[1].role: null"
    )


def test_json_array_of_objects_gives_one_section_per_item(tmp_path: Path) -> None:
    path = tmp_path / "faq.json"
    items = [{"q": "年假几天？", "a": "15天"}, {"title": "Sick leave", "content": EN_PARAGRAPH}]
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    loaded = load(path)
    assert [s.metadata.get("item") for s in loaded.sections] == [1, 2]
    assert loaded.sections[0].text == "q: 年假几天？\na: 15天"
    assert loaded.sections[1].text == f"Sick leave\n\n{EN_PARAGRAPH}"
    assert loaded.sections[1].metadata["section"] == "Sick leave"
    assert "\n\n" in loaded.text  # items are blank-line separated blocks


def test_jsonl_records(tmp_path: Path) -> None:
    records = [
        {"id": 1, "title": "报销", "text": "报销需要发票。"},
        {"id": 2, "body": "No title here."},
        {"id": 3, "meta": {"lang": "en"}},
    ]
    path = tmp_path / "docs.jsonl"
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records[:2]) + "\n\n" + json.dumps(records[2]) + "\n",
        encoding="utf-8",
    )
    loaded = load(path)
    assert loaded.metadata["format"] == "jsonl"
    assert [s.metadata["line"] for s in loaded.sections] == [1, 2, 4]
    assert loaded.sections[0].text == "报销\n\n报销需要发票。"
    assert loaded.sections[0].metadata["section"] == "报销"
    assert loaded.sections[1].text == "No title here."
    assert loaded.sections[2].text == "id: 3\nmeta.lang: en"


def test_invalid_json_reports_the_line(tmp_path: Path) -> None:
    lines_path = tmp_path / "bad.jsonl"
    lines_path.write_text('{"a": 1}\n{"b": 2}\n{"c": \n', encoding="utf-8")
    with pytest.raises(LoadError, match="line 3"):
        load(lines_path)
    doc_path = tmp_path / "bad.json"
    doc_path.write_text('{\n  "a": 1,\n  "b": oops\n}', encoding="utf-8")
    with pytest.raises(LoadError, match="line 3"):
        load(doc_path)


# --- e-mail -------------------------------------------------------------------------------


def _write_mail(path: Path, *, plain: str | None, html: str | None) -> Path:
    message = EmailMessage()
    message["From"] = "张三 <zhangsan@example.com>"
    message["To"] = "team@example.com"
    message["Date"] = "Wed, 01 May 2024 10:00:00 +0800"
    message["Subject"] = "会议纪要 Meeting notes"
    if plain is not None:
        message.set_content(plain)
    if html is not None:
        if plain is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    message.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="议程.pdf")
    path.write_bytes(bytes(message))
    return path


def test_eml_plain_body_headers_and_attachments(tmp_path: Path) -> None:
    path = _write_mail(tmp_path / "notes.eml", plain="下周一开会。\nBring the report.\n", html="<p>HTML version</p>")
    loaded = load(path)
    assert loaded.title == "会议纪要 Meeting notes"
    assert loaded.metadata["subject"] == "会议纪要 Meeting notes"
    assert loaded.metadata["from"] == "张三 <zhangsan@example.com>"
    assert loaded.metadata["to"] == "team@example.com"
    assert loaded.metadata["date"].startswith("Wed, 01 May 2024")
    text = loaded.text
    assert text.startswith("From: 张三 <zhangsan@example.com>\nTo: team@example.com\nDate: ")
    assert "Subject: 会议纪要 Meeting notes" in text
    assert "下周一开会。\nBring the report." in text
    assert "HTML version" not in text  # the plain alternative is preferred
    assert text.endswith("Attachments: 议程.pdf")
    assert "PDF-1.4" not in text  # attachments are named, not parsed


def test_eml_html_only_body_uses_html_to_text(tmp_path: Path) -> None:
    html = "<html><body><h1>通知</h1><p>系统维护<br>Sunday 2am</p><script>x()</script></body></html>"
    path = _write_mail(tmp_path / "notice.eml", plain=None, html=html)
    text = load(path).text
    assert html_to_text(html) in text
    assert "通知\n系统维护\nSunday 2am" in text
    assert "<p>" not in text and "x()" not in text


# --- the registry -------------------------------------------------------------------------


def test_registry_covers_the_documented_formats() -> None:
    expected = {".txt", ".log", ".md", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx", ".csv"}
    assert expected | {".json", ".jsonl", ".eml"} <= SUPPORTED_EXTENSIONS
    assert all(extension == extension.lower() and extension.startswith(".") for extension in LOADERS)


def test_extension_matching_ignores_case(tmp_path: Path) -> None:
    path = tmp_path / "README.TXT"
    path.write_text("hello 你好", encoding="utf-8")
    assert load(path).text == "hello 你好"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pdf"
    path.touch()
    with pytest.raises(LoadError, match="empty"):
        load(path)


def test_unsupported_extension_lists_supported_formats(tmp_path: Path) -> None:
    path = tmp_path / "image.xyz"
    path.write_bytes(b"data")
    with pytest.raises(LoadError) as caught:
        load(path)
    assert ".pdf" in caught.value.reason and ".docx" in caught.value.reason
    assert "rag-kb[unstructured]" in caught.value.reason


@pytest.mark.skipif(unstructured_available(), reason="only meaningful without the optional parser")
def test_odt_without_unstructured_says_how_to_add_it(tmp_path: Path) -> None:
    path = tmp_path / "letter.odt"
    path.write_bytes(b"PK\x03\x04 not parsed")
    with pytest.raises(LoadError, match=r"pip install rag-kb\[unstructured\]"):
        load(path)
    assert available_extensions() == SUPPORTED_EXTENSIONS


def test_unstructured_missing_nlp_data_is_reported_not_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend an NLTK-based unstructured is installed but its data is not: load() must stop
    # before importing it and say what to install.
    monkeypatch.delenv("SCARF_NO_ANALYTICS", raising=False)  # restored after the test
    monkeypatch.setattr(loaders, "unstructured_available", lambda: True)
    monkeypatch.setattr(unstructured_loader, "_tokenizer_source", lambda: "import nltk  # punkt_tab")
    monkeypatch.setattr(unstructured_loader, "_nltk_has", lambda resource: False)
    path = tmp_path / "letter.odt"
    path.write_bytes(b"PK\x03\x04 not parsed")
    with pytest.raises(LoadError) as caught:
        load(path)
    reason = caught.value.reason
    assert "'punkt_tab' and 'averaged_perceptron_tagger_eng'" in reason
    assert "never downloads" in reason
    assert os.environ.get("SCARF_NO_ANALYTICS") == "true"


def test_text_file_with_only_whitespace_has_no_text(tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text(" \n\n\t\n", encoding="utf-8")
    with pytest.raises(LoadError, match="no text"):
        load(path)


# --- finding files ------------------------------------------------------------------------


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_iter_files_walks_sorted_and_skips_hidden(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    _touch(root / "b.md")
    _touch(root / "a.PDF")
    _touch(root / "sub" / "c.txt")
    _touch(root / "sub" / "ignored.exe")
    _touch(root / ".hidden.txt")
    _touch(root / ".git" / "config.txt")
    _touch(root / "sub" / ".cache" / "d.txt")
    found = list(iter_files([root], SUPPORTED_EXTENSIONS))
    assert found == [root / "a.PDF", root / "b.md", root / "sub" / "c.txt"]


def test_iter_files_survives_symlink_loops_and_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    doc = _touch(root / "inner" / "doc.txt")
    (root / "inner" / "loop").symlink_to(root, target_is_directory=True)
    (root / "alias").symlink_to(root / "inner", target_is_directory=True)
    found = list(iter_files([root, doc], {".txt"}))
    assert found == [root / "alias" / "doc.txt"]  # reached three ways, yielded once


def test_iter_files_yields_named_files_and_rejects_missing_paths(tmp_path: Path) -> None:
    doc = _touch(tmp_path / "one.md")
    assert list(iter_files([doc], {".md"})) == [doc]
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        list(iter_files([doc, missing], {".md"}))


def test_file_sha256(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # spans several 1 MiB blocks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
