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
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from api.app import create_app
from rag.engine import Engine
from rag.settings import Settings
from stores import Embedder
from tests.conftest import CHINESE_POLICY, ENGLISH_POLICY
from tests.live_server import serving

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
        expect(page.get_by_test_id("job-status")).to_have_attribute("data-status", "done")
        expect(page.get_by_test_id("job-file")).to_have_attribute("data-outcome", "added")
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
        expect(page.get_by_test_id("job-status")).to_have_attribute("data-status", "done")
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
