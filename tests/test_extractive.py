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


def test_the_sentence_with_an_answer_of_the_asked_kind_is_quoted_short_answer_first() -> None:
    text = (
        "吴淞路闸桥是上海的一座桥梁。该桥于1989年至1991年建造，连接吴淞路。"
        "由于外白渡桥改建工程，吴淞路闸桥于2009年拆除。"
    )
    result = "".join(ExtractiveGenerator().stream("吴淞路闸桥是哪一年拆除的？", [hit(text)], [], "zh"))
    assert result.startswith("2009年：") and "拆除" in result and "1989" not in result


def test_a_duration_question_quotes_the_sentence_with_the_duration() -> None:
    text = "球员合约是球员与球会签订的协议。合约的最长年限为六年，最短至赛季结束。"
    result = "".join(ExtractiveGenerator().stream("合约最长可以签几年？", [hit(text)], [], "zh"))
    assert result.startswith("六年：") and "[1]" in result


def test_a_title_line_never_glues_onto_the_quoted_sentence() -> None:
    chunk = Chunk("d:0", "d", 0, "吴淞路闸桥\n\n吴淞路闸桥是上海的一座桥梁。", 0, 20, {"section": "吴淞路闸桥"})
    result = "".join(ExtractiveGenerator().stream("吴淞路闸桥是什么？", [Hit(chunk, 1.0)], [], "zh"))
    assert result.startswith("吴淞路闸桥是上海") and "吴淞路闸桥吴淞路闸桥" not in result


def test_a_list_question_answers_with_every_source_that_holds_an_item() -> None:
    texts = [
        "CVE-2017-5638: Apache Struts Jakarta Multipart Parser Improper Input Validation Vulnerability.",
        "CVE-2018-11776: Apache Struts Remote Code Execution Vulnerability.",
        "CVE-2021-44228: Apache Log4j2 Remote Code Execution Vulnerability.",
    ]
    result = answer("Which Apache Struts vulnerabilities are known to be exploited?", *texts)
    assert "CVE-2017-5638" in result and "[1]" in result
    assert "CVE-2018-11776" in result and "[2]" in result
