"""Every supported format through the whole loop: the fact a file holds is answered with a citation to that file."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import docx
import openpyxl
import pytest
from pptx import Presentation
from pptx.util import Inches

from rag.engine import Engine
from tests.builders import make_pdf


def build_folder(folder: Path) -> None:
    folder.mkdir()
    (folder / "notes.txt").write_text("The staff canteen opens at 7:30 every weekday.\n", encoding="gb18030")
    (folder / "guide.md").write_text("# Guide\n\n## Parking\n\nVisitors park on level minus two.\n")
    (folder / "page.html").write_text(
        "<html><head><title>Wiki</title></head><body><h1>Printers</h1>"
        "<p>The colour printer is called Falcon and sits in room 214.</p></body></html>"
    )
    make_pdf(
        folder / "manual.pdf",
        [["Chapter one covers installation."], ["The reset button is hidden behind the rear panel."]],
    )
    document = docx.Document()
    document.add_heading("门禁", level=1)
    document.add_paragraph("访客必须在前台登记并佩戴红色访客证。")
    document.save(folder / "security.docx")
    slides = Presentation()
    slide = slides.slides.add_slide(slides.slide_layouts[5])
    slide.shapes.title.text = "Roadmap"
    slide.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1)).text_frame.text = (
        "Project Osprey ships in the third quarter."
    )
    slides.save(folder / "roadmap.pptx")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Budget"
    sheet.append(["item", "cost"])
    sheet.append(["Conference travel budget", "12000 euros"])
    workbook.save(folder / "budget.xlsx")
    (folder / "staff.csv").write_text("name,role\nMarguerite Okafor,head of procurement\n", encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({"backup": {"schedule": "nightly at 02:00", "keep": "30 days"}}))
    (folder / "faq.jsonl").write_text(
        json.dumps({"title": "Wi-Fi", "text": "The guest Wi-Fi password changes every Monday."}) + "\n"
    )
    (folder / "app.log").write_text(
        "2026-11-20 10:42:01 INFO web-01 started\n2026-11-20 10:42:07 ERROR web-01 disk quota exceeded on /data\n"
    )
    mail = EmailMessage()
    mail["From"] = "it@example.com"
    mail["To"] = "all@example.com"
    mail["Subject"] = "Maintenance window"
    mail.set_content("The email servers will be down for maintenance on Saturday night.")
    (folder / "notice.eml").write_bytes(bytes(mail))


CASES = [
    ("When does the staff canteen open?", "notes.txt", None),
    ("Where do visitors park?", "guide.md", None),
    ("What is the colour printer called?", "page.html", None),
    ("Where is the reset button?", "manual.pdf", 2),
    ("访客在前台需要做什么？", "security.docx", None),
    ("When does Project Osprey ship?", "roadmap.pptx", None),
    ("What is the conference travel budget?", "budget.xlsx", None),
    ("Who is the head of procurement?", "staff.csv", None),
    ("When does the backup schedule run?", "config.json", None),
    ("How often does the guest Wi-Fi password change?", "faq.jsonl", None),
    ("Which error did web-01 log about disk quota?", "app.log", None),
    ("When will the email servers be down for maintenance?", "notice.eml", None),
]


@pytest.fixture
def formats_engine(engine: Engine, tmp_path: Path) -> Engine:
    folder = tmp_path / "formats"
    build_folder(folder)
    report = engine.knowledge_bases.ingest("formats", [folder])
    assert report.failed == [] and len(report.added) == len(CASES)
    return engine


@pytest.mark.parametrize(("question", "file_name", "page"), CASES, ids=[c[1] for c in CASES])
def test_answer_cites_the_file_that_holds_the_fact(
    formats_engine: Engine, question: str, file_name: str, page: int | None
) -> None:
    answer = formats_engine.answerer.run("formats", question)
    assert answer.answerable, answer
    assert answer.citations and Path(answer.citations[0].source).name == file_name
    if page is not None:
        assert answer.citations[0].page == page
