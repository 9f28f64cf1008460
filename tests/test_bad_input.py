"""Bad input: each bad file is reported by name with the reason, the rest of the batch goes in, the KB stays intact.

Every case here is a row of the table in ``docs/reliability.md``.
"""

from __future__ import annotations

import io
import time
import tracemalloc
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import docx
import openpyxl
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from pptx import Presentation
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfgen import canvas

from api.app import create_app
from api.uploads import upload_name
from ingest.encoding import decode_bytes
from ingest.splitter import ChineseRecursiveSplitter
from rag.engine import Engine
from rag.knowledge_base import IngestReport
from rag.settings import Settings
from stores import Embedder
from tests.builders import make_pdf
from tests.conftest import ENGLISH_POLICY

GOOD = "Economy class is required for flights under six hours."
FLIGHTS = "Which class is required for flights under six hours?"


def office_bytes(extension: str) -> bytes:
    """A small valid .docx, .pptx or .xlsx."""
    out = io.BytesIO()
    if extension == ".docx":
        document = docx.Document()
        document.add_paragraph(GOOD * 20)
        document.save(out)
    elif extension == ".pptx":
        presentation = Presentation()
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = GOOD
        presentation.save(out)
    else:
        workbook = openpyxl.Workbook()
        for row in range(50):
            workbook.active.append([GOOD, row])
        workbook.save(out)
    return out.getvalue()


def zip_bomb(path: Path, inflated_mb: int = 200) -> Path:
    """A .docx-shaped ZIP whose document.xml inflates about 1000x; written in blocks, never held whole."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as member:
            for _ in range(inflated_mb):
                member.write(bytes(1 << 20))
    return path


def scanned_pdf(path: Path) -> Path:
    pdf = canvas.Canvas(str(path))
    pdf.rect(72, 72, 200, 300, fill=1)  # marks, no text
    pdf.showPage()
    pdf.save()
    return path


def write(data: bytes) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        path.write_bytes(data)
        return path

    return make


def truncated(extension: str) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        if extension == ".pdf":
            whole = make_pdf(path, [[GOOD], ["second page"]]).read_bytes()
        else:
            whole = office_bytes(extension)
        path.write_bytes(whole[: len(whole) // 2])
        return path

    return make


# name -> (builder, words the reason must hold)
BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty.txt": (write(b""), "empty file (0 bytes)"),
    "empty.docx": (write(b""), "empty file (0 bytes)"),
    "truncated.pdf": (truncated(".pdf"), "PDF"),
    "truncated.docx": (truncated(".docx"), "could not parse DOCX"),
    "truncated.xlsx": (truncated(".xlsx"), "could not parse XLSX"),
    "truncated.pptx": (truncated(".pptx"), "could not parse PPTX"),
    "locked.pdf": (
        lambda p: make_pdf(p, [["secret"]], encrypt=StandardEncryption("pw", ownerPassword="o")),
        "encrypted PDF",
    ),
    "bomb.docx": (zip_bomb, "ZIP bomb"),
    "program.txt": (write(bytes(range(1, 256)) * 40), "binary content"),
    "image.md": (write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200)), "binary content"),
    "pdf-named.docx": (lambda p: make_pdf(p, [[GOOD]]), "could not parse DOCX"),
    "docx-named.pdf": (write(office_bytes(".docx")), "could not parse PDF"),
    "nested.html": (write(b"<div>" * 50_000 + b"deep" + b"</div>" * 50_000), "nested too deeply"),
    "nested.json": (write(b"[" * 50_000 + b"1" + b"]" * 50_000), "nested too deeply"),
    "scan.pdf": (scanned_pdf, "no text layer (scanned PDF?); OCR is not enabled"),
}


@pytest.fixture
def batch(engine: Engine, tmp_path: Path) -> tuple[Engine, IngestReport]:
    """Every bad file beside one good one, ingested as a folder into a KB that already holds a document."""
    engine.knowledge_bases.add_text("t", "kept.md", ENGLISH_POLICY)
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "good.txt").write_text(GOOD, encoding="utf-8")
    for name, (build, _) in BAD_FILES.items():
        build(folder / name)
    return engine, engine.knowledge_bases.ingest("t", [folder])


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_is_reported_by_name_and_the_batch_goes_on(batch: tuple[Engine, IngestReport], name: str) -> None:
    engine, report = batch
    failed = {Path(source).name: reason for source, reason in report.failed}
    assert name in failed, report.failed
    assert BAD_FILES[name][1] in failed[name]
    assert [Path(s).name for s in report.added] == ["good.txt"]
    documents = {Path(d.source).name: d for d in engine.knowledge_bases.documents("t")}
    assert set(documents) == {"good.txt", "kept.md"} and all(d.status == "ready" for d in documents.values())
    answer = engine.answerer.run("t", FLIGHTS)
    assert answer.answerable and "Economy" in answer.answer


def test_a_zip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    from ingest.document import LoadError
    from ingest.loaders import load_all

    bomb = zip_bomb(tmp_path / "bomb.docx", inflated_mb=400)
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(LoadError, match=r"inflates .*x.*ZIP bomb"):
            load_all(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # megabytes, not the 400 MB it inflates to


def test_a_file_over_the_limit_is_refused_without_being_read(engine: Engine, tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as file:
        file.truncate(1 << 30)  # a sparse "1 GB" file: no disk, but reading it would take a gigabyte
    tracemalloc.start()
    started = time.perf_counter()
    try:
        report = engine.knowledge_bases.ingest("t", [huge])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    [(source, reason)] = report.failed
    assert source.endswith("huge.txt") and "1024.0 MB, over the 200 MB limit" in reason
    assert time.perf_counter() - started < 5 and peak < 16 << 20


def test_invalid_utf8_bytes_become_replacement_characters(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes(b"Economy class is required \xff\xfe for flights under six hours.\n" * 3)
    report = engine.knowledge_bases.ingest("t", [path])
    assert report.added and not report.failed
    assert "Economy class" in engine.answerer.run("t", FLIGHTS).answer


def test_mixed_encodings_are_decoded_line_by_line() -> None:
    data = (
        "UTF-8 line: 年假十五天。\n".encode() * 3
        + "GBK line: 密码每九十天更换一次。\n".encode("gbk") * 2
        + "cp1252 line: café crème\n".encode()
    )
    text = decode_bytes(data, "mixed.txt")
    assert text.count("年假十五天") == 3 and text.count("密码每九十天更换一次") == 2 and "café crème" in text
    assert "\ufffd" not in text


def test_one_long_line_splits_in_linear_time() -> None:
    splitter = ChineseRecursiveSplitter(500, 50)

    def seconds(megabytes: int) -> float:
        text = "word " * (megabytes << 18)
        started = time.perf_counter()
        spans = splitter.split_text(text)
        assert spans and max(end - start for start, end in spans) <= 500
        return time.perf_counter() - started

    small, large = seconds(1), seconds(4)
    assert large < 10 * max(small, 0.05)  # quadratic would be 16x


@pytest.mark.slow
def test_a_50_mb_line_is_loaded_and_split(tmp_path: Path) -> None:
    from ingest.document import LoadedDocument
    from ingest.loaders import load_all

    path = tmp_path / "one-line.txt"
    path.write_bytes(b"lorem ipsum dolor sit amet, " * ((50 << 20) // 28))
    started = time.perf_counter()
    [document] = load_all(path)
    assert isinstance(document, LoadedDocument) and "\n" not in document.text.strip()
    chunks = sum(1 for _ in ChineseRecursiveSplitter(500, 50).iter_chunks(document, "d"))
    assert chunks > (50 << 20) // 500 // 2  # chunks of at most 500 characters
    assert time.perf_counter() - started < 180


def test_symlink_loops_and_dangling_links_end(engine: Engine, tmp_path: Path) -> None:
    root = tmp_path / "kb"
    (root / "inner").mkdir(parents=True)
    (root / "inner" / "good.txt").write_text(GOOD, encoding="utf-8")
    (root / "inner" / "loop").symlink_to(root, target_is_directory=True)
    (root / "self").symlink_to(root / "self")  # a link to itself
    (root / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    report = engine.knowledge_bases.ingest("t", [root])
    assert [Path(s).name for s in report.added] == ["good.txt"] and not report.failed
    assert [Path(d.source).name for d in engine.knowledge_bases.documents("t")] == ["good.txt"]


# Upload names


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("../../etc/passwd.md", "passwd.md"),
        ("a\x00b.md", "ab.md"),
        ("C:\\Users\\x\\report.md", "report.md"),
        (unicodedata.normalize("NFD", "café.md"), unicodedata.normalize("NFC", "café.md")),
    ],
)
def test_upload_names_are_made_safe(sent: str, stored: str) -> None:
    assert upload_name(sent) == stored


@pytest.mark.parametrize("sent", ["..", "a/..", "x" * 253 + ".md", "文" * 90 + ".md", "\x00\x01", "dir/"])
def test_unusable_upload_names_are_refused(sent: str) -> None:
    with pytest.raises(HTTPException) as caught:
        upload_name(sent)
    assert caught.value.status_code == 422 and "unusable file name" in caught.value.detail


# Through the service


@pytest.fixture
def client(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.chdir(tmp_path)
    engine = Engine(Settings(data_dir=tmp_path / "data", max_upload_mb=1))
    engine.embedder = embedder
    with TestClient(create_app(engine=engine)) as test_client:
        yield test_client


def test_nfc_and_nfd_names_are_the_same_document(client: TestClient) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "café.md"), unicodedata.normalize("NFD", "café.md")
    assert nfc != nfd
    first = client.post("/kbs/t/documents?wait=true", files=[("files", (nfc, GOOD.encode(), "text/markdown"))])
    second = client.post("/kbs/t/documents?wait=true", files=[("files", (nfd, b"Changed text.", "text/markdown"))])
    assert [f["outcome"] for f in first.json()["files"] + second.json()["files"]] == ["added", "updated"]
    assert [d["name"] for d in client.get("/kbs/t/documents").json()] == [nfc]


def test_a_batch_with_bad_files_keeps_the_good_ones(client: TestClient) -> None:
    files = [
        ("files", ("good.txt", GOOD.encode(), "text/plain")),
        ("files", ("empty.txt", b"", "text/plain")),
        ("files", ("program.txt", bytes(range(1, 256)) * 4, "text/plain")),
        ("files", ("pdf-named.docx", b"%PDF-1.4 hello", "application/octet-stream")),
        ("files", ("tool.exe", b"MZ", "application/octet-stream")),
    ]
    job = client.post("/kbs/t/documents?wait=true", files=files).json()
    got = {f["name"]: (f["outcome"], f["reason"] or "") for f in job["files"]}
    assert got["good.txt"][0] == "added"
    assert got["empty.txt"][0] == "failed" and "empty" in got["empty.txt"][1]
    assert got["program.txt"][0] == "failed" and "binary content" in got["program.txt"][1]
    assert got["pdf-named.docx"][0] == "failed" and "DOCX" in got["pdf-named.docx"][1]
    assert got["tool.exe"][0] == "refused" and "unsupported format" in got["tool.exe"][1]
    assert [d["name"] for d in client.get("/kbs/t/documents").json()] == ["good.txt"]


def test_an_oversize_json_text_is_refused_as_a_stream(client: TestClient) -> None:
    big = {"name": "big.md", "text": "x" * (2 << 20)}
    response = client.post("/kbs/t/documents", json=big)
    assert response.status_code == 413 and "max_upload_mb" in response.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no content-length: the limit is enforced while reading
        yield b'{"name": "big.md", "text": "'
        for _ in range(4):
            yield b"x" * (1 << 19)
        yield b'"}'

    streamed = client.post("/kbs/t/documents", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert client.get("/kbs").json() == []


@pytest.mark.parametrize("name", ["a", "...", "a..b", "-x-", "_", "x" * 64, "中文知识库", "CON", "a b"])
def test_kb_names_chroma_would_refuse_still_work(client: TestClient, name: str, tmp_path: Path) -> None:
    created = client.post("/kbs", json={"name": name})
    assert created.status_code == 201, created.text
    response = client.post(f"/kbs/{name}/documents?wait=true", json={"name": "policy.md", "text": GOOD})
    assert response.json()["files"][0]["outcome"] == "added"
    hits = client.post(f"/kbs/{name}/search", json={"query": "flights"}).json()["hits"]
    assert hits and hits[0]["source"] == "policy.md"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize("path", ["/kbs/%2e%2e/documents", "/kbs/..%2fetc/documents", "/kbs/a%00b/documents"])
def test_kb_names_in_urls_cannot_traverse(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in {404, 422}, response.text
    assert response.json()["error"]["code"] == response.status_code


@pytest.mark.parametrize(
    "body",
    [
        {"query": "x", "top_k": "many"},
        {"query": "x", "top_k": 101},
        {"query": "x", "top_k": -5},
        {"query": ["x"]},
        {"query": "x", "filters": "doc_id=1"},
        {"query": "x" * 100_001},
    ],
)
def test_malformed_search_is_422(client: TestClient, body: dict[str, object]) -> None:
    client.post("/kbs/t/documents?wait=true", json={"name": "policy.md", "text": GOOD})
    response = client.post("/kbs/t/search", json=body)
    assert response.status_code == 422 and response.json()["error"]["message"]
