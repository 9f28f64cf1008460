from __future__ import annotations

import pytest

from ingest.document import LoadedDocument, Section
from ingest.splitter import ChineseRecursiveSplitter, sentence_spans

CHINESE = (
    "锣鼓经是大陆传统器乐及戏曲里面常用的打击乐记谱方法，以中文字的声音模拟敲击乐的声音，纪录打击乐的各种不同的演奏方法。"
    "常用的节奏型称为「锣鼓点」。而锣鼓是戏曲节奏的支柱，除了加强演员身段动作的节奏感，也作为音乐的引子和尾声。"
    "提示音乐的板式和速度，以及作为唱腔和念白之间的过门。\n\n"
    "京剧的打击乐器主要有板鼓、大锣、小锣和铙钹。"
)


def test_chunks_respect_size_and_point_at_their_text() -> None:
    splitter = ChineseRecursiveSplitter(chunk_size=60, chunk_overlap=15)
    spans = splitter.split_text(CHINESE)
    assert len(spans) > 2
    for start, end in spans:
        assert end - start <= 60
        assert CHINESE[start:end].strip() == CHINESE[start:end]
    # Every character of content is in some chunk.
    covered = set()
    for start, end in spans:
        covered.update(range(start, end))
    assert all(i in covered for i, c in enumerate(CHINESE) if not c.isspace())


def test_chinese_chunks_end_at_sentence_or_clause_boundaries() -> None:
    spans = ChineseRecursiveSplitter(chunk_size=60, chunk_overlap=0).split_text(CHINESE)
    for start, end in spans:
        assert CHINESE[end - 1] in "。，」、" or end == len(CHINESE), CHINESE[start:end]


def test_paragraph_boundary_preferred_over_sentence() -> None:
    text = "第一段第一句。第一段第二句。\n\n第二段只有一句。"
    spans = ChineseRecursiveSplitter(chunk_size=16, chunk_overlap=0).split_text(text)
    assert [text[s:e] for s, e in spans] == ["第一段第一句。第一段第二句。", "第二段只有一句。"]


def test_overlap_carries_the_previous_sentence() -> None:
    text = "One short line. Two short line. Three short line. Four short line."
    spans = ChineseRecursiveSplitter(chunk_size=35, chunk_overlap=17).split_text(text)
    texts = [text[s:e] for s, e in spans]
    assert texts[0] == "One short line. Two short line."
    assert texts[1].startswith("Two short line.")


def test_unbreakable_run_is_cut_hard() -> None:
    text = "a" * 250
    spans = ChineseRecursiveSplitter(chunk_size=100, chunk_overlap=0).split_text(text)
    assert [e - s for s, e in spans] == [100, 100, 50]


def test_token_length_function() -> None:
    words = " ".join(f"w{i}" for i in range(100))
    splitter = ChineseRecursiveSplitter(chunk_size=10, chunk_overlap=2, length_function=lambda t: len(t.split()))
    spans = splitter.split_text(words)
    assert all(len(words[s:e].split()) <= 10 for s, e in spans)
    assert len(spans) >= 10


def test_document_offsets_and_section_metadata() -> None:
    document = LoadedDocument(
        source="/tmp/report.pdf",
        title="Report",
        sections=[Section("Page one text. More.", {"page": 1}), Section("第二页的内容。", {"page": 2})],
        metadata={"format": "pdf"},
    )
    chunks = ChineseRecursiveSplitter(chunk_size=100, chunk_overlap=0).split_document(document, "doc1")
    assert [c.metadata["page"] for c in chunks] == [1, 2]
    assert [c.id for c in chunks] == ["doc1:0", "doc1:1"]
    for chunk in chunks:
        assert document.text[chunk.start : chunk.end] == chunk.text
        assert chunk.metadata["source"] == "/tmp/report.pdf"
        assert chunk.metadata["title"] == "Report"


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_invalid_sizes_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        ChineseRecursiveSplitter(chunk_size=size, chunk_overlap=overlap)


def test_sentence_spans_chinese_and_english() -> None:
    text = "第一句。第二句！Third one. Fourth?"
    assert [text[s:e] for s, e in sentence_spans(text)] == ["第一句。", "第二句！", "Third one.", "Fourth?"]


def test_a_markdown_heading_is_a_sentence_of_its_own() -> None:
    text = "## Flights\nEconomy class is required.\n## Why?\nBecause.\nC# is a language."
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "## Flights", "Economy class is required.", "## Why?", "Because.", "C# is a language."
    ]
