"""PowerPoint (.pptx) files: one section per slide with its shapes' text, tables and notes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE_TYPE
from pptx.shapes.base import BaseShape
from pptx.slide import Slide

from ingest.document import LoadedDocument, Section
from ingest.loaders.common import CELL_SEPARATOR, make_document


def load_pptx(path: Path) -> LoadedDocument:
    """A .pptx file with ``metadata["slide"]`` (1-based) and the slide title as ``section``."""
    presentation = Presentation(str(path))
    sections = [_slide_section(slide, number) for number, slide in enumerate(presentation.slides, start=1)]
    first_title = next((s.metadata["section"] for s in sections if "section" in s.metadata), None)
    title = presentation.core_properties.title or first_title
    return make_document(path, "pptx", sections, title=title, slides=len(presentation.slides))


def _slide_section(slide: Slide, number: int) -> Section:
    lines = list(_shape_lines(slide.shapes))
    if slide.has_notes_slide and (notes := _clean(slide.notes_slide.notes_text_frame.text)):
        lines.append(f"Notes: {notes}")
    metadata: dict[str, object] = {"slide": number}
    title_shape = slide.shapes.title
    if title_shape is not None and (title := " ".join(title_shape.text_frame.text.split())):
        metadata["section"] = title
    return Section("\n".join(lines), metadata)


def _shape_lines(shapes: Iterable[BaseShape]) -> Iterator[str]:
    """Text of every shape in slide order, descending into groups."""
    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shape_lines(shape.shapes)
        elif shape.has_text_frame:
            if text := _clean(shape.text_frame.text):
                yield text
        elif shape.has_table:
            for row in shape.table.rows:
                cells = [" ".join(cell.text.split()) for cell in row.cells]
                if any(cells):
                    yield CELL_SEPARATOR.join(cells)


def _clean(text: str) -> str:
    # python-pptx renders a soft line break (<a:br/>) as a vertical tab.
    return text.replace("\v", "\n").strip()
