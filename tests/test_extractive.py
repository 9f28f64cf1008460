"""The extractive generator: the best-covering source sentence, with its marker, never a heading."""

from __future__ import annotations

from ingest.chunk import Chunk
from rag.generators import ExtractiveGenerator
from stores.hit import Hit


def hit(text: str) -> Hit:
    return Hit(Chunk("d:0", "d", 0, text, 0, len(text), {"source": "d.md"}), 1.0)


def answer(question: str, *texts: str) -> str:
    return "".join(ExtractiveGenerator().stream(question, [hit(t) for t in texts], [], "en"))


def test_quotes_the_sentence_that_covers_the_question() -> None:
    text = "Hotels cost extra. Economy class is required for flights under six hours. Taxis are fine."
    assert answer("Which class is required for flights?", text).startswith(
        "Economy class is required for flights under six hours [1]."
    )


def test_a_markdown_heading_is_never_the_answer() -> None:
    text = "# Nginx Parsing Vulnerability\n\nNginx is a web server. This setup has a parsing vulnerability."
    result = answer("Which advisories affect nginx parsing?", text)
    assert not result.startswith("#") and "Nginx Parsing Vulnerability" not in result
    assert result.startswith("Nginx is a web server [1].")
