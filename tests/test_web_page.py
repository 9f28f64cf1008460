"""The web page at ``/``, driven in a real browser (Debian's Chromium through Playwright) against the real app.

The app runs under uvicorn in a background thread on a free loopback port, over a temporary data directory
and the shared embedder. Chromium comes from the system (``make dev`` installs it); Playwright's own
browser download is never used. Without Chromium these tests fail, unless ``RAG_SKIP_BROWSER_TESTS=1``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, Request, Route, expect, sync_playwright

from api.app import create_app
from rag.engine import Engine
from rag.settings import Settings
from stores import Embedder
from tests.conftest import CHINESE_POLICY, ENGLISH_HISTORY, ENGLISH_POLICY
from tests.live_server import serving
from tests.write_lock_holder import another_writer

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
API_KEY = "browser-test-key-0123456789"
TIMEOUT_MS = 30_000  # the first question also warms the retrievers
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("RAG_SKIP_BROWSER_TESTS") == "1":
            pytest.skip("RAG_SKIP_BROWSER_TESTS=1 and no Chromium")
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run `make dev` (it installs it) or "
            "`apt-get install chromium`; set RAG_SKIP_BROWSER_TESTS=1 to skip the browser tests"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def make_app(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> FastAPI:
    monkeypatch.chdir(tmp_path)  # no stray rag-kb.toml
    engine = Engine(Settings(data_dir=tmp_path / "data", **settings))
    engine.embedder = embedder
    return create_app(engine.settings, engine=engine)


@contextmanager
def open_page(browser: Browser, base_url: str) -> Iterator[Page]:
    """A fresh English page on the app; confirm() dialogs are accepted; browser console errors fail the test."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(base_url + "/")
    try:
        yield page
    finally:
        context.close()
    assert page_errors == [], page_errors


def last_answer(page: Page) -> Any:
    """The newest assistant message, once its answer is final."""
    message = page.get_by_test_id("message-assistant").last
    expect(message).to_have_attribute("data-state", re.compile("done|error"))
    expect(message).to_have_attribute("data-state", "done")
    return message


def ask(page: Page, question: str) -> Any:
    page.get_by_test_id("question").fill(question)
    page.get_by_test_id("ask-button").click()
    return last_answer(page)


def test_page_uploads_asks_cites_refuses_and_deletes(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(make_app(tmp_path, embedder, monkeypatch)) as base_url, open_page(browser, base_url) as page:
        asks: list[dict[str, Any]] = []

        def record(request: Request) -> None:
            if request.method == "POST" and request.url.endswith("/ask"):
                asks.append(json.loads(request.post_data or "{}"))

        page.on("request", record)
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.locator("html")).to_have_attribute("lang", "en")

        # Create a knowledge base; it becomes the selected one.
        page.get_by_test_id("kb-name").fill("policies")
        page.get_by_test_id("kb-create").click()
        expect(page.get_by_test_id("kb-select")).to_have_value("policies")

        # Upload through the file picker: progress, then the job's per-file outcome, then the document list.
        page.get_by_test_id("file-input").set_input_files(
            files=[{"name": "travel.md", "mimeType": "text/markdown", "buffer": ENGLISH_POLICY.encode("utf-8")}]
        )
        newest_job = page.get_by_test_id("job-card").first
        expect(newest_job.get_by_test_id("job-status")).to_have_attribute("data-status", "done")
        expect(newest_job.get_by_test_id("job-file")).to_have_attribute("data-outcome", "added")
        rows = page.get_by_test_id("doc-row")
        expect(rows.filter(has_text="travel.md")).to_have_count(1)

        # Upload through the drop zone: a drop event carrying a DataTransfer, as a real drag delivers it.
        # A file of no supported format rides along: it is refused, with the reason shown.
        transfer = page.evaluate_handle(
            """([text]) => {
                const transfer = new DataTransfer();
                transfer.items.add(new File([text], "security.md", {type: "text/markdown"}));
                transfer.items.add(new File(["\u0000\u0001"], "photo.xyz", {type: "application/octet-stream"}));
                return transfer;
            }""",
            [CHINESE_POLICY],
        )
        page.get_by_test_id("drop-zone").dispatch_event("drop", {"dataTransfer": transfer})
        expect(page.get_by_test_id("job-card")).to_have_count(2)
        expect(newest_job.get_by_test_id("job-status")).to_have_attribute("data-status", "done")
        job_files = page.get_by_test_id("job-file")
        expect(job_files.filter(has_text="security.md")).to_have_attribute("data-outcome", "added")
        expect(job_files.filter(has_text="photo.xyz")).to_have_attribute("data-outcome", "refused")
        expect(job_files.filter(has_text="photo.xyz").get_by_test_id("job-reason")).not_to_be_empty()
        expect(rows.filter(has_text="security.md")).to_have_count(1)
        expect(rows).to_have_count(2)

        # A hostile file name is shown as text, never parsed as HTML.
        hostile = "<img src=x onerror=window.pwned=1>.txt"
        page.get_by_test_id("file-input").set_input_files(
            files=[{"name": hostile, "mimeType": "text/plain", "buffer": b"The canteen opens at eight."}]
        )
        expect(rows.filter(has_text=hostile)).to_have_count(1)
        assert page.locator("#doc-list img").count() == 0
        assert page.evaluate("window.pwned") is None

        # Tokens are rendered while the answer streams, before the verified answer replaces them.
        page.evaluate(
            """() => {
                window.streamed = [];
                new MutationObserver(() => {
                    for (const node of document.querySelectorAll('[data-state="streaming"] .msg-text')) {
                        if (node.textContent) window.streamed.push(node.textContent);
                    }
                }).observe(document.getElementById("chat-log"), {subtree: true, childList: true, characterData: true});
            }"""
        )
        english = ask(page, "Which class is required for flights under six hours?")
        expect(english).to_have_attribute("data-answerable", "true")
        expect(english.get_by_test_id("answer-text")).to_contain_text("Economy")
        streamed = page.evaluate("window.streamed")
        assert any("Economy" in text for text in streamed), streamed
        assert asks[0]["stream"] is True and asks[0]["history"] == []

        # [1] opens the cited passage with its file name, location and score.
        english.locator("button.cite[data-n='1']").first.click()
        dialog = page.get_by_test_id("cite-dialog")
        expect(dialog).to_be_visible()
        expect(page.get_by_test_id("cite-file")).to_have_text("travel.md")
        expect(page.get_by_test_id("cite-snippet")).to_contain_text("Economy class is required")
        expect(page.get_by_test_id("cite-location")).to_contain_text("Flights")
        expect(page.get_by_test_id("cite-score")).to_have_text(re.compile(r"^\d\.\d{3}$"))
        page.get_by_test_id("cite-close").click()
        expect(dialog).to_be_hidden()

        # A Chinese question, with the first turn sent as history.
        chinese = ask(page, "员工密码长度不得少于几位？")
        expect(chinese).to_have_attribute("data-answerable", "true")
        expect(chinese.get_by_test_id("answer-text")).to_contain_text("十二位")
        assert [turn["role"] for turn in asks[1]["history"]] == ["user", "assistant"]
        chinese.locator("button.cite").first.click()
        expect(page.get_by_test_id("cite-file")).to_have_text("security.md")
        expect(page.get_by_test_id("cite-snippet")).to_contain_text("十二位")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()

        # Something the documents do not hold: the refusal mark and the closest passages, no citations.
        absent = ask(page, "Who won the 1998 football world cup?")
        expect(absent).to_have_attribute("data-answerable", "false")
        expect(absent.get_by_test_id("refusal-badge")).to_have_text("Not in the knowledge base")
        expect(absent.locator("button.cite")).to_have_count(0)
        expect(absent.get_by_test_id("sources")).to_be_visible()

        # The language toggle switches every UI string, answers already shown included.
        page.get_by_test_id("lang-toggle").click()
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page.get_by_test_id("ask-button")).to_have_text("提问")
        expect(absent.get_by_test_id("refusal-badge")).to_have_text("知识库中没有")
        page.get_by_test_id("lang-toggle").click()
        expect(page.get_by_test_id("ask-button")).to_have_text("Ask")

        # Delete a document (confirmed), then the knowledge base.
        rows.filter(has_text="travel.md").get_by_test_id("doc-delete").click()
        expect(rows.filter(has_text="travel.md")).to_have_count(0)
        expect(rows).to_have_count(2)
        page.get_by_test_id("kb-delete").click()
        expect(page.get_by_test_id("kb-select")).to_have_value("")
        expect(rows).to_have_count(0)
        expect(page.get_by_test_id("error")).to_be_hidden()


def test_page_asks_for_the_api_key_and_shows_errors(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path, embedder, monkeypatch, api_keys=[{"key": API_KEY, "access": "write"}])
    with serving(app) as base_url, open_page(browser, base_url) as page:
        # The page itself is open; the first API call answers 401 and the key dialog opens.
        key_dialog = page.get_by_test_id("key-dialog")
        expect(key_dialog).to_be_visible()
        page.get_by_test_id("key-input").fill("a-wrong-key-of-enough-length")
        page.get_by_test_id("key-save").click()
        expect(page.locator("#key-reason")).to_contain_text("refused the API key")  # asked again
        expect(key_dialog).to_be_visible()
        page.get_by_test_id("key-input").fill(API_KEY)
        page.get_by_test_id("key-save").click()
        expect(key_dialog).to_be_hidden()
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        assert page.evaluate("localStorage.getItem('rag-kb.apiKey')") == API_KEY

        page.get_by_test_id("kb-name").fill("keyed")
        page.get_by_test_id("kb-create").click()
        expect(page.get_by_test_id("kb-select")).to_have_value("keyed")

        # A bad KB name: the server's error message is shown to the user.
        page.get_by_test_id("kb-name").fill("bad name/with slash")
        page.get_by_test_id("kb-create").click()
        error = page.get_by_test_id("error")
        expect(error).to_be_visible()
        expect(error).not_to_have_text(re.compile(r"^\s*(Request failed|\[object)"))

        # An upload with nothing ingestible is refused whole (415), and the page says why.
        page.get_by_test_id("error-close").click()
        page.get_by_test_id("file-input").set_input_files(
            files=[{"name": "photo.xyz", "mimeType": "application/octet-stream", "buffer": b"\x00\x01"}]
        )
        expect(error).to_be_visible()
        expect(error).to_contain_text("photo.xyz")

        # The key can be cleared from the header; the next call asks again.
        page.get_by_test_id("key-button").click()
        page.get_by_test_id("key-clear").click()
        assert page.evaluate("localStorage.getItem('rag-kb.apiKey')") is None
        page.reload()
        expect(key_dialog).to_be_visible()


# ---- issue 18: conversations, sources, documents at scale, uploads, keys, phone, hostile documents ----------

FLIGHTS = "Which class is required for flights under six hours?"
SUPPORT = "Economy class is required for flights under six hours."
BADGES = """# Visitors

Visitors must wear the badge <img src=x onerror=window.pwned=1> at all times on site.
Badges are returned at reception before leaving.
"""
READ_KEY = "browser-read-key-0123456789"


def ingest(app: FastAPI, kb: str, name: str, text: str) -> None:
    """A file ingested directly (not through the page), as a Markdown file so it has sections."""
    folder = app.state.engine.settings.data_dir.parent / "sources"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    app.state.engine.knowledge_bases.create(kb)
    assert app.state.engine.knowledge_bases.ingest_file(kb, folder / name) == "added"


def seeded(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> FastAPI:
    """The app with a KB ``policies`` holding the travel policy."""
    app = make_app(tmp_path, embedder, monkeypatch, **settings)
    ingest(app, "policies", "travel.md", ENGLISH_POLICY)
    return app


def add_catalog_rows(app: FastAPI, kb: str, count: int) -> None:
    """Catalog rows only (the document list reads nothing else), so 2,000 documents take a second, not an hour."""
    catalog = app.state.engine.knowledge_bases.catalog
    catalog.create_kb(kb)
    for i in range(count):
        catalog.mark_pending(kb, f"row{i:04d}", f"/uploads/{kb}/report-{i:04d}.txt", f"Report {i}", 100 + i)
        catalog.mark_ready(kb, f"row{i:04d}", "sha", 1 + i % 5)


def test_a_conversation_survives_a_reload_and_a_kb_switch(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = seeded(tmp_path, embedder, monkeypatch)
    app.state.engine.knowledge_bases.create("other")
    with serving(app) as base_url, open_page(browser, base_url) as page:
        asks: list[dict[str, Any]] = []

        def record(request: Request) -> None:
            if request.method == "POST" and request.url.endswith("/ask"):
                asks.append(json.loads(request.post_data or "{}"))

        page.on("request", record)
        expect(page.get_by_test_id("kb-select")).to_have_value("other")  # the first by name
        page.get_by_test_id("kb-select").select_option("policies")
        first = ask(page, FLIGHTS)
        expect(first.get_by_test_id("answer-text")).to_contain_text("Economy")
        conversations = page.get_by_test_id("conv-item")
        expect(conversations).to_have_count(1)
        expect(conversations.first).to_contain_text(FLIGHTS)

        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.get_by_test_id("kb-select")).to_have_value("policies")
        expect(page.get_by_test_id("question-text")).to_have_text([FLIGHTS])
        reloaded = last_answer(page)
        expect(reloaded.get_by_test_id("answer-text")).to_contain_text("Economy")
        expect(reloaded.locator("button.cite")).not_to_have_count(0)

        # A follow-up carries the conversation as history.
        ask(page, "And for longer flights?")
        assert [turn["role"] for turn in asks[-1]["history"]] == ["user", "assistant"]
        assert asks[-1]["history"][0]["content"] == FLIGHTS

        # Another KB has its own (none); coming back reopens this one.
        page.get_by_test_id("kb-select").select_option("other")
        expect(page.get_by_test_id("message-user")).to_have_count(0)
        expect(conversations).to_have_count(0)
        page.get_by_test_id("kb-select").select_option("policies")
        expect(page.get_by_test_id("message-user")).to_have_count(2)

        # Rename (inline), a new chat, reopen from the list, delete.
        conversations.first.get_by_test_id("conv-rename").click()
        page.get_by_test_id("conv-title-input").fill("Flight classes")
        page.get_by_test_id("conv-title-input").press("Enter")
        expect(conversations.first.get_by_test_id("conv-open")).to_have_text("Flight classes")
        page.get_by_test_id("chat-clear").click()
        expect(page.get_by_test_id("message-user")).to_have_count(0)
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.get_by_test_id("message-user")).to_have_count(0)  # the new, empty chat stays the open one
        conversations.first.get_by_test_id("conv-open").click()
        expect(page.get_by_test_id("message-user")).to_have_count(2)
        conversations.first.get_by_test_id("conv-delete").click()
        expect(conversations).to_have_count(0)
        expect(page.get_by_test_id("message-user")).to_have_count(0)


def test_a_citation_opens_the_sentence_in_its_whole_chunk_and_then_the_document(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path, embedder, monkeypatch)
    rule = "## Rule {i}\nRule {i} covers desk number {i}; desks are cleaned on Fridays."
    rules = "\n\n".join(rule.format(i=i) for i in range(30))
    long_policy = ENGLISH_POLICY.replace(
        SUPPORT,
        "Tickets are booked through the travel desk at least two weeks ahead, and changes after booking need a "
        "written reason from the traveller's manager. Group bookings for conferences are made by the organiser, "
        "who also confirms the hotel and the train tickets of every participant. " + SUPPORT,
    ) + "\n" + rules
    ingest(app, "policies", "travel.md", long_policy)
    with serving(app) as base_url, open_page(browser, base_url) as page:
        answer = ask(page, FLIGHTS)
        answer.locator("button.cite[data-n='1']").first.click()
        dialog = page.get_by_test_id("cite-dialog")
        expect(dialog).to_have_attribute("data-loaded", "true")
        highlight = page.get_by_test_id("cite-highlight")
        expect(highlight).to_have_text(SUPPORT)
        snippet = page.get_by_test_id("cite-snippet")
        expect(snippet).to_contain_text("written reason from the traveller's manager")  # the whole chunk
        assert len(snippet.inner_text()) > 300  # longer than the old cut-off snippet
        expect(page.get_by_test_id("cite-location")).to_contain_text("Flights")
        expect(page.get_by_test_id("cite-after")).not_to_be_empty()  # a neighbour for context

        page.get_by_test_id("cite-open-doc").click()
        expect(dialog).to_be_hidden()
        document = page.get_by_test_id("doc-dialog")
        expect(document).to_be_visible()
        expect(page.get_by_test_id("doc-title")).to_have_text("travel.md")
        expect(page.get_by_test_id("doc-passage")).to_contain_text("Tickets are booked through the travel desk")
        expect(page.get_by_test_id("doc-highlight")).to_have_text(SUPPORT)
        expect(page.get_by_test_id("doc-text")).to_contain_text("Travel policy")  # text around the passage
        assert page.get_by_test_id("doc-highlight").is_visible()

        # The same document's chunks, each with its metadata.
        page.get_by_test_id("doc-mode-chunks").click()
        cards = page.get_by_test_id("chunk-card")
        expect(cards.first).to_be_visible()
        assert cards.count() > 3
        expect(cards.first).to_contain_text("Travel policy")
        page.get_by_test_id("doc-close").click()
        expect(document).to_be_hidden()


def test_two_thousand_documents_page_and_search(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path, embedder, monkeypatch)
    add_catalog_rows(app, "big", 2000)
    with serving(app) as base_url, open_page(browser, base_url) as page:
        rows = page.get_by_test_id("doc-row")
        expect(rows).to_have_count(50)
        expect(page.get_by_test_id("doc-range")).to_have_text("1–50 of 2000")
        expect(rows.first).to_contain_text("report-0000.txt")
        assert page.evaluate("document.documentElement.scrollHeight") < 4000  # not a 90,000-pixel page
        page.get_by_test_id("doc-next").click()
        expect(page.get_by_test_id("doc-range")).to_have_text("51–100 of 2000")
        expect(rows.first).to_contain_text("report-0050.txt")

        page.get_by_test_id("doc-order").click()  # descending, back to the first page
        expect(rows.first).to_contain_text("report-1999.txt")
        page.get_by_test_id("doc-search").fill("report-123")
        expect(rows).to_have_count(10)
        expect(page.get_by_test_id("doc-range")).to_have_text("1–10 of 10")
        page.get_by_test_id("doc-search").fill("no such report")
        expect(rows).to_have_count(0)
        expect(page.get_by_test_id("doc-empty")).to_contain_text("no such report")


def test_two_concurrent_uploads_keep_separate_results(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path, embedder, monkeypatch)
    app.state.engine.knowledge_bases.create("policies")
    with serving(app) as base_url, open_page(browser, base_url) as page:
        expect(page.get_by_test_id("kb-select")).to_have_value("policies")
        # Both batches start before either is done: two drops in one tick.
        page.evaluate(
            """([a, b]) => {
                for (const files of [[["travel.md", a], ["bad.xyz", "?"]], [["bridge.txt", b]]]) {
                    const transfer = new DataTransfer();
                    for (const [name, text] of files) transfer.items.add(new File([text], name));
                    document.getElementById("drop-zone").dispatchEvent(
                        new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
                }
            }""",
            [ENGLISH_POLICY, ENGLISH_HISTORY],
        )
        cards = page.get_by_test_id("job-card")
        expect(cards).to_have_count(2)
        for card in (cards.nth(0), cards.nth(1)):
            expect(card.get_by_test_id("job-status")).to_have_attribute("data-status", "done")
        first = cards.filter(has_text="travel.md")
        second = cards.filter(has_text="bridge.txt")
        expect(first.get_by_test_id("job-file")).to_have_count(2)
        expect(first.get_by_test_id("job-file").filter(has_text="travel.md")).to_have_attribute("data-outcome", "added")
        expect(first.get_by_test_id("job-file").filter(has_text="bad.xyz")).to_have_attribute("data-outcome", "refused")
        expect(second.get_by_test_id("job-file")).to_have_count(1)
        expect(second.get_by_test_id("job-file")).to_have_attribute("data-outcome", "added")
        expect(page.get_by_test_id("doc-row")).to_have_count(2)

        # Both batches are still there after a reload: the server keeps them.
        page.reload()
        expect(cards).to_have_count(2)
        expect(cards.filter(has_text="bad.xyz").get_by_test_id("job-reason")).not_to_be_empty()


def test_a_read_only_key_sees_write_controls_disabled(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [{"key": READ_KEY, "name": "reader", "access": "read"}, {"key": API_KEY, "access": "write"}]
    app = seeded(tmp_path, embedder, monkeypatch, api_keys=keys)
    with serving(app) as base_url, open_page(browser, base_url) as page:
        key_dialog = page.get_by_test_id("key-dialog")
        expect(key_dialog).to_be_visible()
        page.get_by_test_id("key-input").fill(READ_KEY)
        page.get_by_test_id("key-save").click()
        expect(key_dialog).to_be_hidden()
        expect(page.get_by_test_id("kb-select")).to_have_value("policies")
        expect(page.get_by_test_id("doc-row")).to_have_count(1)
        for control in ("kb-create", "kb-name", "kb-delete", "file-input"):
            expect(page.get_by_test_id(control)).to_be_disabled()
        expect(page.get_by_test_id("doc-delete")).to_be_disabled()
        expect(page.get_by_test_id("drop-zone")).to_have_attribute("aria-disabled", "true")
        expect(page.get_by_test_id("readonly-note")).to_be_visible()
        expect(page.get_by_test_id("key-button")).to_contain_text("read")
        # Reading still works: asking, with the conversation kept.
        expect(ask(page, FLIGHTS).get_by_test_id("answer-text")).to_contain_text("Economy")
        expect(page.get_by_test_id("conv-item")).to_have_count(1)


def test_a_server_without_keys_says_so(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(make_app(tmp_path, embedder, monkeypatch)) as base_url, open_page(browser, base_url) as page:
        expect(page.get_by_test_id("key-button")).to_have_text("No key needed")
        page.get_by_test_id("key-button").click()
        expect(page.locator("#key-reason")).to_contain_text("without API keys")
        expect(page.get_by_test_id("key-save")).to_be_disabled()
        page.get_by_test_id("key-cancel").click()
        # Creating a KB that exists says so instead of silently switching.
        page.get_by_test_id("kb-name").fill("policies")
        page.get_by_test_id("kb-create").click()
        expect(page.get_by_test_id("kb-select")).to_have_value("policies")
        page.get_by_test_id("kb-name").fill("policies")
        page.get_by_test_id("kb-create").click()
        expect(page.get_by_test_id("notice")).to_contain_text("already exists")


def test_at_phone_width_the_question_box_comes_before_the_documents(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = seeded(tmp_path, embedder, monkeypatch)
    add_catalog_rows(app, "policies", 40)
    with serving(app) as base_url:
        context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 844}, has_touch=True)
        page = context.new_page()
        page.goto(base_url + "/")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        question = page.get_by_test_id("question")
        box = question.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 844, box
        expect(page.get_by_test_id("doc-row").first).to_be_hidden()  # the panel is folded
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen

        answer = ask(page, FLIGHTS)
        cite = answer.locator("button.cite").first
        cite_box = cite.bounding_box()
        assert cite_box is not None and cite_box["height"] < 30, cite_box  # "[1]" on one line

        page.get_by_test_id("side-panel-toggle").click()
        expect(page.get_by_test_id("doc-row").first).to_be_visible()
        context.close()


def test_html_in_a_document_renders_as_text(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path, embedder, monkeypatch)
    ingest(app, "site", "visitors.md", BADGES)
    with serving(app) as base_url, open_page(browser, base_url) as page:
        answer = ask(page, "What must visitors wear on site?")
        expect(answer).to_have_attribute("data-answerable", "true")
        expect(answer.get_by_test_id("answer-text")).to_contain_text("<img src=x onerror=window.pwned=1>")
        answer.locator("button.cite").first.click()
        expect(page.get_by_test_id("cite-dialog")).to_have_attribute("data-loaded", "true")
        expect(page.get_by_test_id("cite-snippet")).to_contain_text("<img src=x")
        page.get_by_test_id("cite-open-doc").click()
        expect(page.get_by_test_id("doc-text")).to_contain_text("<img src=x")
        page.get_by_test_id("doc-mode-chunks").click()
        expect(page.get_by_test_id("chunk-card").first).to_contain_text("<img src=x")

        # Markdown from the answer path is rendered, its raw HTML shown as text.
        page.evaluate(
            """async () => {
                const {renderMarkdown} = await import("/static/js/markdown.js");
                const target = document.createElement("div");
                target.id = "md-probe";
                document.body.append(target);
                const hostile = "**bold** <img src=x onerror=window.pwned=2> [x](javascript:alert(1))";
                renderMarkdown(target, hostile + " <script>window.pwned=3</script>", () => null);
            }"""
        )
        probe = page.locator("#md-probe")
        expect(probe.locator("strong")).to_have_text("bold")
        expect(probe).to_contain_text("<img src=x onerror=window.pwned=2>")
        assert probe.locator("a[href^='javascript']").count() == 0
        assert page.locator("img, script:not([src]):not([type])").count() == 0
        page.wait_for_timeout(300)
        assert page.evaluate("window.pwned") is None


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_screenshots(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, scheme: str, locale: str
) -> None:
    """Screenshots of the main states, to look at by eye: kept in $WEB_SCREENSHOT_DIR when it is set."""
    out = Path(os.environ.get("WEB_SCREENSHOT_DIR") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    app = seeded(tmp_path, embedder, monkeypatch)
    ingest(app, "policies", "security.md", CHINESE_POLICY)
    tag = f"{locale[:2]}-{scheme}"
    question = FLIGHTS if locale == "en-US" else "员工密码长度不得少于几位？"
    with serving(app) as base_url:
        for width, height, name in ((1280, 860, "desktop"), (390, 844, "phone")):
            viewport: Any = {"width": width, "height": height}
            colors: Any = scheme
            context = browser.new_context(locale=locale, color_scheme=colors, viewport=viewport)
            page = context.new_page()
            page.goto(base_url + "/")
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            answer = ask(page, question)
            page.screenshot(path=str(out / f"{tag}-{name}-chat.png"))
            if name == "desktop":
                answer.locator("button.cite").first.click()
                expect(page.get_by_test_id("cite-dialog")).to_have_attribute("data-loaded", "true")
                page.screenshot(path=str(out / f"{tag}-source.png"))
                page.get_by_test_id("cite-open-doc").click()
                expect(page.get_by_test_id("doc-passage")).to_be_visible()
                page.screenshot(path=str(out / f"{tag}-document.png"))
                page.get_by_test_id("doc-mode-chunks").click()
                expect(page.get_by_test_id("chunk-card").first).to_be_visible()
                page.screenshot(path=str(out / f"{tag}-chunks.png"))
                page.get_by_test_id("doc-close").click()
                page.get_by_test_id("tab-search").click()
                page.get_by_test_id("search-query").fill(question)
                page.get_by_test_id("search-button").click()
                expect(page.get_by_test_id("search-hit").first).to_be_visible()
                page.screenshot(path=str(out / f"{tag}-retrieval.png"))
            else:
                page.get_by_test_id("side-panel-toggle").click()
                page.get_by_test_id("side-panel-toggle").scroll_into_view_if_needed()
                expect(page.get_by_test_id("doc-row").first).to_be_visible()
                page.screenshot(path=str(out / f"{tag}-phone-panel.png"), full_page=True)
            context.close()
    assert len(list(out.glob(f"{tag}-*.png"))) == 7


def test_uploads_and_deletes_say_when_they_wait_for_another_writer(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = seeded(tmp_path, embedder, monkeypatch)
    lock = app.state.engine.settings.data_dir / "write.lock"
    with serving(app) as base_url, open_page(browser, base_url) as page:
        expect(page.get_by_test_id("doc-row")).to_have_count(1)
        with another_writer(lock) as pid:
            page.get_by_test_id("file-input").set_input_files(
                files=[{"name": "bridge.txt", "mimeType": "text/plain", "buffer": ENGLISH_HISTORY.encode()}]
            )
            card = page.get_by_test_id("job-card").first
            expect(card.get_by_test_id("job-waiting")).to_contain_text("Waiting for another writer")
            expect(card.get_by_test_id("job-waiting")).to_contain_text(f"process {pid}")
            page.get_by_test_id("doc-row").filter(has_text="travel.md").get_by_test_id("doc-delete").click()
            expect(page.get_by_test_id("notice")).to_contain_text(f"Waiting for another writer (process {pid})")
        expect(card.get_by_test_id("job-status")).to_have_attribute("data-status", "done")
        expect(card.get_by_test_id("job-waiting")).to_have_count(0)
        expect(page.get_by_test_id("doc-row")).to_have_text([re.compile("bridge.txt")])
        expect(page.get_by_test_id("notice")).to_be_hidden()


def test_stop_copy_and_regenerate(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(seeded(tmp_path, embedder, monkeypatch)) as base_url, open_page(browser, base_url) as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        expect(page.get_by_test_id("kb-select")).to_have_value("policies")
        # Stop: the request is held on its way, and the answer is stopped before it comes.
        held: list[Route] = []

        def hold(route: Route) -> None:
            held.append(route)

        page.route("**/ask", hold)
        page.get_by_test_id("question").fill(FLIGHTS)
        with page.expect_request("**/ask"):  # the question is on its way (and held there) before Stop
            page.get_by_test_id("ask-button").click()
        page.get_by_test_id("stop-button").click()
        stopped = page.get_by_test_id("message-assistant").last
        expect(stopped).to_have_attribute("data-state", "stopped")
        expect(page.get_by_test_id("ask-button")).to_be_visible()
        page.unroute("**/ask")  # the held request was cancelled by the page; Playwright settles it

        answer = ask(page, FLIGHTS)
        answer.get_by_test_id("copy").click()
        expect(answer.get_by_test_id("copy")).to_have_text("Copied")
        assert "Economy" in page.evaluate("navigator.clipboard.readText()")

        answer.get_by_test_id("regenerate").click()
        expect(answer).to_have_attribute("data-state", "done")
        expect(answer.get_by_test_id("answer-text")).to_contain_text("Economy")
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        # The stopped question, then the asked one and its (regenerated) answer: nothing doubled.
        expect(page.get_by_test_id("message-user")).to_have_count(2)
        expect(page.get_by_test_id("message-assistant")).to_have_count(1)


def test_retrieval_testing_ranks_chunks_with_the_api_filters(
    browser: Browser, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = seeded(tmp_path, embedder, monkeypatch)
    ingest(app, "policies", "bridge.txt", ENGLISH_HISTORY)
    with serving(app) as base_url, open_page(browser, base_url) as page:
        page.get_by_test_id("tab-search").click()
        expect(page.get_by_test_id("question")).to_be_hidden()
        page.get_by_test_id("search-query").fill("Which bridge spans the Calder River?")
        page.get_by_test_id("search-button").click()
        hits = page.get_by_test_id("search-hit")
        expect(hits.first).to_contain_text("bridge.txt")
        scores = [float(s) for s in page.get_by_test_id("search-score").all_inner_texts()]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)

        # The API's own filters, as JSON: only Markdown chunks now.
        page.get_by_test_id("search-filters").fill('{"format": "md"}')
        page.get_by_test_id("search-button").click()
        expect(hits.filter(has_text="bridge.txt")).to_have_count(0)
        page.get_by_test_id("search-filters").fill("{not json")
        page.get_by_test_id("search-button").click()
        expect(page.get_by_test_id("error")).to_contain_text("not valid JSON")

        # A hit opens like a citation: the whole chunk.
        page.get_by_test_id("error-close").click()
        page.get_by_test_id("search-filters").fill("")
        page.get_by_test_id("search-button").click()
        expect(hits.first).to_contain_text("bridge.txt")
        hits.first.get_by_test_id("search-open").click()
        expect(page.get_by_test_id("cite-snippet")).to_contain_text("Calder River")
