"""Chinese-aware recursive splitting that keeps exact character offsets.

Splits at the coarsest boundary that makes pieces fit: paragraph, line, sentence
(。！？；!?; and ". "), clause (，,、：:), whitespace, and finally characters, then packs the
pieces greedily into chunks of at most ``chunk_size`` with ``chunk_overlap`` carried over.
Work is done on spans of the original text, never on copies, so every chunk knows where it
came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ingest.chunk import Chunk
from ingest.document import SECTION_SEPARATOR, LoadedDocument
from stores.text_analysis import CLOSING_QUOTES, SENTENCE_END, SENTENCE_PUNCTUATION

# Each level's pattern matches the end of a piece; the match stays with the piece before it.
BOUNDARY_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\n[ \t\u3000]*\n\s*"),  # paragraph
    re.compile(r"\n"),  # line
    re.compile(rf"[{SENTENCE_PUNCTUATION}]+[{CLOSING_QUOTES}]*\s*|\.(?:\s+|$)"),  # sentence
    re.compile(r"[，,、：:]\s*"),  # clause
    re.compile(r"\s+"),  # word
)

LINE_LEVEL = 1  # the index of the line pattern: whole-line text is never cut below it

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class ChineseRecursiveSplitter:
    """Split text into overlapping chunks at the most natural boundary, Chinese and English alike.

    ``length_function`` measures size: ``len`` (characters, the default) or a token counter.

    Usage::

        splitter = ChineseRecursiveSplitter(chunk_size=300, chunk_overlap=50)
        chunks = splitter.split_document(document, doc_id="a1b2")
    """

    chunk_size: int = 500
    chunk_overlap: int = 80
    length_function: Callable[[str], int] = len

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(
                f"chunk_overlap must be in [0, chunk_size); got {self.chunk_overlap} with size {self.chunk_size}"
            )

    def split_text(self, text: str, whole_lines: bool = False) -> list[Span]:
        """The ``(start, end)`` spans of the chunks of ``text``, whitespace trimmed, empty ones dropped.

        With ``whole_lines`` (log lines) text is cut only between lines: a line longer than
        ``chunk_size`` stays whole in a chunk of its own rather than losing its end.
        """
        pieces = self._pieces(text, 0, len(text), level=0, last_level=LINE_LEVEL if whole_lines else None)
        return [span for span in self._pack(text, pieces) if span[1] > span[0]]

    def split_document(self, document: LoadedDocument, doc_id: str) -> list[Chunk]:
        """Chunks of a document; sections (pages, sheets, slides) are never mixed in one chunk."""
        return list(self.iter_chunks(document, doc_id))

    def iter_chunks(self, document: LoadedDocument, doc_id: str) -> Iterator[Chunk]:
        """The chunks of :meth:`split_document` one by one, so a big log is split as it is read.

        A section numbered by lines (``line_start``) is cut only between lines, and each of its
        chunks gets the ``line_start``/``line_end`` of the lines it holds.
        """
        index = 0
        offset = 0
        base_metadata = {"source": document.source, "title": document.title, **document.metadata}
        for section in document.sections:
            first_line = section.metadata.get("line_start")
            numbered = isinstance(first_line, int)
            for start, end in self.split_text(section.text, whole_lines=numbered):
                metadata = {**base_metadata, **section.metadata}
                if numbered:
                    metadata["line_start"] = first_line + section.text.count("\n", 0, start)
                    metadata["line_end"] = first_line + section.text.count("\n", 0, end)
                yield Chunk(
                    id=Chunk.make_id(doc_id, index),
                    doc_id=doc_id,
                    index=index,
                    text=section.text[start:end],
                    start=offset + start,
                    end=offset + end,
                    metadata=metadata,
                )
                index += 1
            offset += len(section.text) + len(SECTION_SEPARATOR)

    def _size(self, text: str, start: int, end: int) -> int:
        return self.length_function(text[start:end])

    def _pieces(self, text: str, start: int, end: int, level: int, last_level: int | None = None) -> list[Span]:
        """Break ``text[start:end]`` into spans that each fit ``chunk_size``, at boundaries up to ``last_level``."""
        if self._size(text, start, end) <= self.chunk_size:
            return [(start, end)]
        if last_level is not None and level > last_level:
            return [(start, end)]
        if level >= len(BOUNDARY_PATTERNS):
            return self._hard_cut(text, start, end)
        cuts = [m.end() for m in BOUNDARY_PATTERNS[level].finditer(text, start, end) if m.end() < end]
        if not cuts:
            return self._pieces(text, start, end, level + 1, last_level)
        spans: list[Span] = []
        for piece_start, piece_end in zip([start, *cuts], [*cuts, end], strict=True):
            if piece_end > piece_start:
                spans.extend(self._pieces(text, piece_start, piece_end, level + 1, last_level))
        return spans

    def _hard_cut(self, text: str, start: int, end: int) -> list[Span]:
        """Last resort for a run with no boundary at all (a long token, a hash dump)."""
        spans: list[Span] = []
        while start < end:
            stop = min(end, start + self.chunk_size)
            # With a token length function, shrink until it fits.
            while stop > start + 1 and self._size(text, start, stop) > self.chunk_size:
                stop = start + max(1, (stop - start) * 3 // 4)
            spans.append((start, stop))
            start = stop
        return spans

    def _pack(self, text: str, pieces: list[Span]) -> list[Span]:
        """Merge consecutive pieces into chunks, starting each new chunk with up to ``chunk_overlap``."""
        chunks: list[Span] = []
        current: list[Span] = []
        for piece in pieces:
            if current and self._size(text, current[0][0], piece[1]) > self.chunk_size:
                chunks.append(self._trim(text, current[0][0], current[-1][1]))
                current = self._overlap_tail(text, current, piece)
            current.append(piece)
        if current:
            chunks.append(self._trim(text, current[0][0], current[-1][1]))
        return chunks

    def _overlap_tail(self, text: str, previous: list[Span], next_piece: Span) -> list[Span]:
        """The trailing pieces of ``previous`` that fit in the overlap and leave room for ``next_piece``."""
        tail: list[Span] = []
        for piece in reversed(previous):
            if self._size(text, piece[0], previous[-1][1]) > self.chunk_overlap:
                break
            if self._size(text, piece[0], next_piece[1]) > self.chunk_size:
                break
            tail.insert(0, piece)
        return tail

    @staticmethod
    def _trim(text: str, start: int, end: int) -> Span:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        return start, end


def sentence_spans(text: str) -> list[Span]:
    """``(start, end)`` of each sentence in ``text``.

    Sentences end at Chinese and English end punctuation, blank lines, line breaks that start a
    heading, list item or table row, and the end of a heading line; other line breaks are hard
    wrapping inside a sentence.
    """
    spans: list[Span] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        spans.append(ChineseRecursiveSplitter._trim(text, start, match.end()))
        start = match.end()
    spans.append(ChineseRecursiveSplitter._trim(text, start, len(text)))
    return [span for span in spans if span[1] > span[0] and text[span[0] : span[1]].strip("\n.。")]
