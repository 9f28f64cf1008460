"""Which chunks get a vector: one per template (chunks equal up to numbers and hex ids), none for a
language the embedder cannot read; every chunk stays findable, and a shared vector outlives its holder."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from rag.engine import Engine
from rag.knowledge_base import document_id
from rag.retrieval import fetch_chunks
from rag.settings import Settings
from stores import KeywordIndex
from stores.text_analysis import template_key

HDFS_LINES = [
    "081109 203615 148 INFO dfs.DataNode: PacketResponder 1 for block blk_38865049064139660 terminating",
    "081109 203807 222 INFO dfs.DataNode: PacketResponder 0 for block blk_-6952295868487656571 terminating",
    "081109 204005 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: 10.251.73.220:50010",
    "081109 204015 308 INFO dfs.DataNode: PacketResponder 2 for block blk_8229193803249955061 terminating",
]
GUIDE = "Reservoir pumps must be inspected every spring by the maintenance crew before the irrigation season."
CHINESE = "员工密码长度不得少于十二位，且必须每九十天更换一次。离开工位时必须锁定电脑屏幕。"


@pytest.fixture
def engine(tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Chunks of at most 60 characters: each log line (and each short text) is a chunk of its own."""
    monkeypatch.chdir(tmp_path)
    rag = Engine(Settings(data_dir=tmp_path / "data", chunk_size=60, chunk_overlap=0))
    rag.embedder = embedder
    return rag


def write_log(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def chunk_ids(engine: Engine, path: Path) -> list[str]:
    doc_id = document_id("t", str(path.resolve()))
    return sorted(engine.keywords.ids("t", doc_id), key=lambda i: int(i.split(":")[1]))


def test_template_key_ignores_numbers_and_hex_ids_only() -> None:
    assert template_key(HDFS_LINES[0]) == template_key(HDFS_LINES[1]) == template_key(HDFS_LINES[3])
    assert template_key(HDFS_LINES[0]) != template_key(HDFS_LINES[2])
    assert template_key("Required action for CVE-2021-44228, due 2022-01-10") == template_key(
        "Required action for CVE-2024-3400, due 2024-05-02"
    )
    assert template_key("disk 0x1f full") == template_key("disk 0x2a full") != template_key("disk 0x2a empty")


def test_one_vector_per_template_and_every_chunk_still_found(engine: Engine, tmp_path: Path) -> None:
    log = write_log(tmp_path / "docs", "hdfs.log", HDFS_LINES)
    engine.knowledge_bases.ingest("t", [log.parent])
    ids = chunk_ids(engine, log)
    assert len(ids) == 4
    # the first PacketResponder line and the addStoredBlock line carry vectors; the repeats do not
    assert engine.vectors.ids("t") == {ids[0], ids[2]}
    whole = fetch_chunks(engine.vectors, engine.keywords, "t", ids)
    assert [whole[i].text.strip() for i in ids] == HDFS_LINES
    assert whole[ids[3]].metadata["source"] == str(log.resolve()) and whole[ids[3]].index == 3
    # an exact identifier finds a chunk that has no vector, with its whole text
    hits = engine.retriever.run("t", "What happened to blk_8229193803249955061?", 3).hits
    assert hits[0].chunk.id == ids[3] and "blk_8229193803249955061" in hits[0].chunk.text
    # a question by meaning finds the template through the one chunk that holds its vector
    dense = engine.vectors.query("t", engine.embedder.embed_query("packet responder terminating"), 1)
    assert dense[0].chunk.id == ids[0]


def test_chinese_chunks_get_no_vector_from_an_english_only_embedder(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "zh.txt").write_text(CHINESE, encoding="utf-8")
    (folder / "en.txt").write_text(GUIDE, encoding="utf-8")
    engine.knowledge_bases.ingest("t", [folder])
    assert not engine.embedder.reads("zh")
    zh = chunk_ids(engine, folder / "zh.txt")
    assert zh and not engine.vectors.ids("t") & set(zh)
    assert engine.vectors.ids("t") == set(chunk_ids(engine, folder / "en.txt"))
    hits = engine.retriever.run("t", "密码多久更换一次？", 2).hits
    assert hits[0].chunk.id == zh[0] and "九十天" in hits[0].chunk.text


def test_an_embedder_that_reads_chinese_embeds_it(tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = Engine(Settings(data_dir=tmp_path / "d", embedder_languages=["en", "zh"]))
    engine.embedder.__dict__["_model"] = embedder.model  # the shared model, read as both languages
    (tmp_path / "zh.txt").write_text(CHINESE, encoding="utf-8")
    engine.knowledge_bases.ingest("t", [tmp_path / "zh.txt"])
    assert engine.vectors.ids("t") == set(chunk_ids(engine, tmp_path / "zh.txt"))


def test_sharing_can_be_turned_off(tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = Engine(Settings(data_dir=tmp_path / "d", chunk_size=60, chunk_overlap=0, share_template_vectors=False))
    engine.embedder = embedder
    log = write_log(tmp_path / "docs", "hdfs.log", HDFS_LINES)
    engine.knowledge_bases.ingest("t", [log])
    assert engine.vectors.ids("t") == set(chunk_ids(engine, log))


def test_a_shared_vector_passes_to_another_document_when_its_holder_goes(engine: Engine, tmp_path: Path) -> None:
    first = write_log(tmp_path / "a", "first.log", HDFS_LINES[:1])
    second = write_log(tmp_path / "b", "second.log", [HDFS_LINES[1], GUIDE])
    kbs = engine.knowledge_bases
    kbs.ingest("t", [first])
    kbs.ingest("t", [second])
    holder, heir = chunk_ids(engine, first)[0], chunk_ids(engine, second)[0]
    assert holder in engine.vectors.ids("t") and heir not in engine.vectors.ids("t")
    vector = engine.vectors.vectors("t", [holder])[holder]

    assert kbs.delete_document("t", document_id("t", str(first.resolve())))
    assert heir in engine.vectors.ids("t") and holder not in engine.vectors.ids("t")
    np.testing.assert_allclose(engine.vectors.vectors("t", [heir])[heir], vector, atol=1e-6)
    assert engine.keywords.chunks("t", [heir]) == {}  # Chroma serves it now
    dense = engine.vectors.query("t", engine.embedder.embed_query("packet responder terminating"), 1)
    assert dense[0].chunk.id == heir and dense[0].chunk.text.strip() == HDFS_LINES[1]


def test_a_new_version_keeps_its_templates_vector(engine: Engine, tmp_path: Path) -> None:
    """Replacing the holder's document with a version of the same template keeps one vector for it."""
    first = write_log(tmp_path / "a", "first.log", HDFS_LINES[:1])
    second = write_log(tmp_path / "b", "second.log", HDFS_LINES[1:2])
    kbs = engine.knowledge_bases
    kbs.ingest("t", [first])
    kbs.ingest("t", [second])
    write_log(tmp_path / "a", "first.log", [HDFS_LINES[3], GUIDE])
    kbs.ingest("t", [first])
    first_ids, heir = chunk_ids(engine, first), chunk_ids(engine, second)[0]
    assert engine.vectors.ids("t") == set(first_ids)
    assert set(engine.keywords.chunks("t", [heir])) == {heir}


def test_an_index_written_before_sharing_reads_as_all_dense(tmp_path: Path) -> None:
    path = tmp_path / "keyword.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE keyword_terms (kb TEXT NOT NULL, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,"
            " terms TEXT NOT NULL, metadata TEXT NOT NULL, PRIMARY KEY (kb, chunk_id))"
        )
        db.execute("INSERT INTO keyword_terms VALUES ('t', 'd:0', 'd', 'pump', '{}')")
    index = KeywordIndex(path)
    assert index.templates_with_vectors("t", ["x"]) == set() and index.chunks("t", ["d:0"]) == {}
    assert [h.chunk_id for h in index.search("t", "pump", 1)] == ["d:0"]
    assert index.heirs("t", "d") == []
