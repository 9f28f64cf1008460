"""The whole loop on real files with the bundled embedder: ingest, retrieve, answer, refuse, update, delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.chunk import Chunk
from ingest.loaders import load_all
from rag import knowledge_base
from rag.engine import Engine
from rag.knowledge_base import KnowledgeBaseError, document_id
from rag.prompts import REFUSAL


def ingest(engine: Engine, *paths: Path, kb: str = "t"):
    return engine.knowledge_bases.ingest(kb, list(paths))


def test_english_question_cites_the_document_that_holds_the_answer(engine: Engine, corpus: Path) -> None:
    ingest(engine, corpus)
    answer = engine.answerer.run("t", "Which class is required for flights under six hours?")
    assert answer.answerable
    assert "Economy class" in answer.answer
    assert answer.citations and all(c.source.endswith("travel.md") for c in answer.citations)
    assert "[1]" in answer.answer
    assert answer.citations[0].section == "Travel policy > Flights"


def test_chinese_question_cites_the_chinese_document(engine: Engine, corpus: Path) -> None:
    ingest(engine, corpus)
    answer = engine.answerer.run("t", "员工密码多久必须更换一次？")
    assert answer.answerable and answer.language == "zh"
    assert "九十天" in answer.answer
    assert all(c.source.endswith("security.md") for c in answer.citations)


def test_right_chunk_ranks_first(engine: Engine, corpus: Path) -> None:
    ingest(engine, corpus)
    for question, source in [
        ("Who designed the Meridian Bridge?", "bridge.txt"),
        ("hotel reimbursement per night in capital cities", "travel.md"),
        ("丢失笔记本电脑要多久内报告？", "security.md"),
    ]:
        top = engine.retriever.run("t", question, 3).hits[0]
        assert top.chunk.metadata["source"].endswith(source), question


def test_absent_topic_is_refused_with_evidence(engine: Engine, corpus: Path) -> None:
    ingest(engine, corpus)
    answer = engine.answerer.run("t", "Who won the 1998 football world cup?")
    assert not answer.answerable
    assert answer.answer == REFUSAL["en"]
    assert answer.citations == []
    chinese = engine.answerer.run("t", "公司的股票代码是什么？")
    assert not chinese.answerable and chinese.answer == REFUSAL["zh"]


def test_unchanged_reingest_touches_nothing(engine: Engine, corpus: Path) -> None:
    first = ingest(engine, corpus)
    assert len(first.added) == 3 and first.chunks > 0
    before = {d.doc_id: d.ingested_at for d in engine.knowledge_bases.documents("t")}
    second = ingest(engine, corpus)
    assert len(second.unchanged) == 3 and not second.added and not second.updated and second.chunks == 0
    assert {d.doc_id: d.ingested_at for d in engine.knowledge_bases.documents("t")} == before


def test_unchanged_files_are_skipped_by_hash_before_parsing(
    engine: Engine, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(engine, corpus)
    parsed: list[Path] = []
    monkeypatch.setattr(knowledge_base, "load_all", lambda path, *b: parsed.append(path) or load_all(path, *b))
    (corpus / "bridge.txt").write_text("The Meridian Bridge was painted red in 1990.", encoding="utf-8")
    report = ingest(engine, corpus)
    assert parsed == [corpus / "bridge.txt"] and len(report.unchanged) == 2
    assert engine.knowledge_bases.ingest_file("t", corpus / "travel.md") == "unchanged"  # one file, as uploads come
    assert parsed == [corpus / "bridge.txt"]


def test_file_changed_while_read_ahead_is_still_indexed(
    engine: Engine, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-ahead thread skips parsing a file the catalog holds unchanged; if another writer
    changes the catalog before the file's turn, it is parsed then, not lost."""
    ingest(engine, corpus)
    bridge = str((corpus / "bridge.txt").resolve())
    catalog = engine.knowledge_bases.catalog
    read = engine.knowledge_bases._read

    def read_then_someone_else_writes(path: Path, source: str, ready: dict[str, str]):
        result = read(path, source, ready)
        if source == bridge:  # another process marks it pending (a crashed update) after our snapshot
            record = catalog.document("t", document_id("t", bridge))
            catalog.mark_pending("t", record.doc_id, record.source, record.title, record.size)
        return result

    monkeypatch.setattr(engine.knowledge_bases, "_read", read_then_someone_else_writes)
    report = ingest(engine, corpus)
    assert report.updated == [bridge] and len(report.unchanged) == 2
    assert catalog.document("t", document_id("t", bridge)).status == "ready"


def test_changed_file_replaces_its_old_chunks(engine: Engine, corpus: Path) -> None:
    ingest(engine, corpus)
    bridge = corpus / "bridge.txt"
    doc_id = document_id("t", str(bridge.resolve()))
    bridge.write_text("The Meridian Bridge was demolished in 2001 and replaced by a tunnel.", encoding="utf-8")
    report = ingest(engine, corpus)
    assert report.updated == [str(bridge.resolve())] and len(report.unchanged) == 2
    # The same id, and no stale chunk anywhere.
    assert engine.knowledge_bases.catalog.document("t", doc_id).chunk_count == 1
    assert engine.vectors.ids("t", doc_id) == {f"{doc_id}:0"}
    assert engine.keywords.ids("t", doc_id) == {f"{doc_id}:0"}
    hits = engine.retriever.run("t", "Agnes Holloway engineer railway tracks", 5).hits
    assert all("Holloway" not in h.chunk.text for h in hits)
    assert "demolished" in engine.answerer.run("t", "What happened to the Meridian Bridge?").answer


def test_a_leftover_chunk_of_an_older_version_is_never_served(engine: Engine, corpus: Path) -> None:
    """If a store missed a delete, a chunk numbered past the current version's count stays unserved."""
    ingest(engine, corpus)
    doc_id = document_id("t", str((corpus / "bridge.txt").resolve()))
    count = engine.knowledge_bases.catalog.document("t", doc_id).chunk_count
    text = "The Meridian Bridge was sold for scrap to Quillon Metals."
    stray = Chunk(Chunk.make_id(doc_id, count), doc_id, count, text, 0, len(text), {"source": "bridge.txt"})
    engine.vectors.add("t", [stray], engine.embedder.embed([text]))
    engine.keywords.add("t", [stray])
    hits = engine.retriever.run("t", "Quillon Metals scrap", 10).hits
    assert hits and all(h.chunk.id != stray.id for h in hits)
    engine.knowledge_bases.delete_document("t", doc_id)  # and a delete removes it, by id
    assert engine.vectors.ids("t", doc_id) == set()


def test_deleted_document_is_gone_from_answers(engine: Engine, corpus: Path) -> None:
    ingest(engine, corpus)
    doc_id = document_id("t", str((corpus / "travel.md").resolve()))
    assert engine.knowledge_bases.delete_document("t", doc_id)
    assert engine.vectors.ids("t", doc_id) == set() and engine.keywords.ids("t", doc_id) == set()
    answer = engine.answerer.run("t", "Which class is required for flights under six hours?")
    assert not any(c.doc_id == doc_id for c in answer.citations + answer.sources)


def test_file_removed_from_a_folder_is_removed_from_the_kb(engine: Engine, corpus: Path) -> None:
    ingest(engine, corpus)
    (corpus / "bridge.txt").unlink()
    report = ingest(engine, corpus)
    assert [Path(s).name for s in report.removed] == ["bridge.txt"]
    assert {Path(d.source).name for d in engine.knowledge_bases.documents("t")} == {"travel.md", "security.md"}
    assert not engine.answerer.run("t", "Who designed the Meridian Bridge?").answerable


def test_bad_files_are_reported_and_the_batch_goes_on(engine: Engine, corpus: Path) -> None:
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (corpus / "empty.txt").write_bytes(b"")
    notes = corpus / "notes.xyz"
    notes.write_text("unsupported")
    report = ingest(engine, corpus, notes)
    failed = {Path(source).name: reason for source, reason in report.failed}
    assert set(failed) == {"broken.pdf", "empty.txt", "notes.xyz"}
    assert "empty" in failed["empty.txt"] and "unsupported" in failed["notes.xyz"]
    assert len(report.added) == 3


def test_oversized_file_is_refused_without_indexing(engine: Engine, corpus: Path) -> None:
    engine.knowledge_bases.max_file_bytes = 100
    report = ingest(engine, corpus)
    assert len(report.failed) == 3 and all("limit" in reason for _, reason in report.failed)


def test_knowledge_bases_are_isolated(engine: Engine, corpus: Path) -> None:
    ingest(engine, corpus, kb="one")
    engine.knowledge_bases.add_text("two", "other.txt", "Completely unrelated text about gardening tomatoes.")
    answer = engine.answerer.run("two", "Who designed the Meridian Bridge?")
    assert not answer.answerable and all(c.source == "other.txt" for c in answer.sources)
    engine.knowledge_bases.delete("one")
    assert [kb.name for kb in engine.knowledge_bases.list()] == ["two"]
    assert engine.vectors.count("one") == 0


def test_metadata_filters(engine: Engine, corpus: Path) -> None:
    ingest(engine, corpus)
    travel = str((corpus / "travel.md").resolve())
    hits = engine.retriever.run("t", "approval", 5, filters={"source": travel}).hits
    assert hits and all(h.chunk.metadata["source"] == travel for h in hits)
    with pytest.raises(ValueError):
        engine.retriever.run("t", "approval", 5, filters={"source": {"$regex": ".*"}})


@pytest.mark.parametrize("name", ["", "../etc", "a/b", " padded", "x" * 65])
def test_invalid_kb_names_are_refused(engine: Engine, corpus: Path, name: str) -> None:
    with pytest.raises(KnowledgeBaseError):
        ingest(engine, corpus, kb=name)


def test_chinese_kb_name_works(engine: Engine, corpus: Path) -> None:
    ingest(engine, corpus, kb="制度")
    assert engine.answerer.run("制度", "员工密码多久必须更换一次？").answerable
