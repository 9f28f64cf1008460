from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import bm25s
import numpy as np
import pytest

from ingest.chunk import Chunk
from stores.bm25_segments import Row, SegmentedBM25
from stores.keyword_index import KeywordIndex


def chunk(doc: str, text: str, **metadata: object) -> Chunk:
    return Chunk(Chunk.make_id(doc, 0), doc, 0, text, 0, len(text), dict(metadata))


CHUNKS = [
    chunk(
        "log4j",
        "Apache Log4j2 JNDI features allow remote code execution, tracked as CVE-2021-44228.",
        severity="critical",
    ),
    chunk(
        "tomcat",
        "Apache Tomcat PUT method allows JSP upload, CVE-2017-12615 漏洞利用条件是开启 PUT 方法。",
        severity="high",
    ),
    chunk("gong", "锣鼓经是大陆传统器乐及戏曲里面常用的打击乐记谱方法。", severity="none"),
]


def test_ranks_the_chunk_with_the_identifier_first(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "k.sqlite")
    index.add("kb", CHUNKS)
    assert index.search("kb", "Is CVE-2021-44228 exploited?", 3)[0].doc_id == "log4j"
    assert index.search("kb", "漏洞 CVE-2017-12615 的利用条件是什么？", 3)[0].doc_id == "tomcat"
    assert index.search("kb", "锣鼓经是什么？", 3)[0].doc_id == "gong"


def test_coverage_is_one_for_full_match_and_low_for_absent_topics(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "k.sqlite")
    index.add("kb", CHUNKS)
    assert index.search("kb", "CVE-2021-44228", 1)[0].coverage == 1.0
    partial = index.search("kb", "Apache Struts OGNL injection in Confluence", 3)
    assert all(hit.coverage < 0.5 for hit in partial)
    assert index.search("kb", "capital of Peru", 3) == []


def test_delete_document_and_kb(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "k.sqlite")
    index.add("kb", CHUNKS)
    index.delete_document("kb", "log4j")
    assert index.search("kb", "CVE-2021-44228", 3) == []
    assert index.ids("kb") == {"tomcat:0", "gong:0"}
    index.delete_kb("kb")
    assert index.ids("kb") == set()


def test_persisted_and_shared_between_instances(tmp_path: Path) -> None:
    first = KeywordIndex(tmp_path / "k.sqlite")
    second = KeywordIndex(tmp_path / "k.sqlite")  # as another process would open it
    first.add("kb", CHUNKS[:1])
    assert second.search("kb", "log4j2 jndi", 1)[0].doc_id == "log4j"
    first.add("kb", CHUNKS[2:])
    assert second.search("kb", "锣鼓经", 1)[0].doc_id == "gong"  # the revision change is noticed


def test_filters_and_kb_isolation(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "k.sqlite")
    index.add("kb", CHUNKS)
    index.add("other", [chunk("x", "Apache Tomcat notes")])
    hits = index.search("kb", "Apache", 5, where={"severity": {"$in": ["high"]}})
    assert [h.doc_id for h in hits] == ["tomcat"]
    assert {h.doc_id for h in index.search("other", "Apache", 5)} == {"x"}


# Incremental index: scores as bm25s gives them on the live chunks, changes shared through SQLite

WORDS = [f"w{i}" for i in range(60)]


def random_chunks(rng: random.Random, docs: int, start: int = 0, tag: str = "") -> list[Chunk]:
    """Chunks of Zipf-ish words, two per document; now and then one without any term."""
    chunks = []
    for d in range(start, start + docs):
        for part in range(2):
            n_terms = 0 if rng.random() < 0.05 else rng.randint(1, 30)
            text = " ".join(WORDS[min(int(rng.paretovariate(0.8)) - 1, len(WORDS) - 1)] for _ in range(n_terms))
            doc = f"d{d}"
            chunks.append(Chunk(Chunk.make_id(doc, part), doc, part, text, 0, len(text), {"tag": tag or doc}))
    return chunks


def bm25s_scores(texts: dict[str, str], query: list[str]) -> dict[str, float]:
    """Scores of a bm25s index built from scratch on ``texts`` (chunk id → text), chunks scoring > 0."""
    ids = sorted(texts)
    model = bm25s.BM25(k1=1.2, b=0.75)
    model.index([texts[i].split() for i in ids], show_progress=False)
    known = [model.vocab_dict[t] for t in dict.fromkeys(query) if t in model.vocab_dict]
    if not known:
        return {}
    scores = model.get_scores_from_ids(known)
    return {ids[i]: float(scores[i]) for i in np.flatnonzero(scores > 0)}


def assert_same_as_bm25s(index: KeywordIndex, texts: dict[str, str], rng: random.Random) -> None:
    for _ in range(25):
        query = rng.sample(WORDS[:40], rng.randint(1, 4))
        ours = {h.chunk_id: h.score for h in index.search("kb", " ".join(query), k=10_000)}
        theirs = bm25s_scores(texts, query)
        assert ours.keys() == theirs.keys()
        for chunk_id, score in theirs.items():
            assert ours[chunk_id] == pytest.approx(score, rel=1e-5)


def test_scores_equal_a_fresh_bm25s_index_through_adds_replacements_and_deletes(tmp_path: Path) -> None:
    rng = random.Random(7)
    writer = KeywordIndex(tmp_path / "k.sqlite", analyzer=str.split)
    reader = KeywordIndex(tmp_path / "k.sqlite", analyzer=str.split)
    chunks = random_chunks(rng, 120)
    writer.add("kb", chunks)
    texts = {c.id: c.text for c in chunks}
    assert any(not t for t in texts.values())  # chunks without terms count in N and the average length
    assert_same_as_bm25s(reader, texts, rng)
    for step in range(6):
        extra = random_chunks(rng, 10, start=120 + 10 * step)
        replaced = random_chunks(rng, 8, start=rng.randint(0, 100))  # same ids, new text
        writer.add("kb", extra + replaced)
        texts |= {c.id: c.text for c in extra + replaced}
        for doc in rng.sample(sorted({c.doc_id for c in chunks}), 5):
            writer.delete_document("kb", doc)
            texts = {i: t for i, t in texts.items() if not i.startswith(f"{doc}:")}
        assert_same_as_bm25s(reader, texts, rng)
    assert reader.full_loads == 1  # every change since came through the change feed


def test_changes_reach_another_process_by_reading_only_the_new_rows(tmp_path: Path) -> None:
    writer = KeywordIndex(tmp_path / "k.sqlite", analyzer=str.split)
    reader = KeywordIndex(tmp_path / "k.sqlite", analyzer=str.split)
    writer.add("kb", random_chunks(random.Random(1), 50))
    reader.search("kb", "w1", 5)
    assert (reader.full_loads, reader.rows_read) == (1, 100)
    writer.add("kb", [chunk("new", "zebra w1")])
    assert reader.search("kb", "zebra", 5)[0].doc_id == "new"
    assert (reader.full_loads, reader.rows_read) == (1, 101)
    writer.add("kb", [chunk("new", "okapi w2")])  # the same chunk id, replaced
    assert reader.search("kb", "zebra", 5) == []
    assert [h.chunk_id for h in reader.search("kb", "okapi", 5)] == ["new:0"]
    writer.delete_document("kb", "d3")
    assert not any(h.doc_id == "d3" for h in reader.search("kb", "w0 w1 w2 w3", 200))
    assert (reader.full_loads, reader.rows_read) == (1, 102)  # a deletion reads no terms
    fresh = KeywordIndex(tmp_path / "k.sqlite", analyzer=str.split)
    for query in ("w0", "w1 w5", "okapi w2 w9"):  # incremental and full load agree to the bit, ties included
        assert reader.search("kb", query, 30) == fresh.search("kb", query, 30)


def test_a_process_behind_the_pruned_deletion_log_reloads(tmp_path: Path) -> None:
    writer = KeywordIndex(tmp_path / "k.sqlite", analyzer=str.split)
    writer.deletion_log_limit = 3
    reader = KeywordIndex(tmp_path / "k.sqlite", analyzer=str.split)
    writer.add("kb", random_chunks(random.Random(2), 10))
    reader.search("kb", "w1", 5)
    writer.delete_document("kb", "d0")  # 2 rows: still within the log
    reader.search("kb", "w1", 5)
    assert reader.full_loads == 1
    writer.delete_document("kb", "d1")
    writer.delete_document("kb", "d2")  # 6 rows: the oldest revisions go, the floor moves past the reader
    hits = reader.search("kb", "w0 w1 w2 w3", 100)
    assert reader.full_loads == 2
    assert {h.doc_id for h in hits} <= {f"d{i}" for i in range(3, 10)}
    assert hits == KeywordIndex(tmp_path / "k.sqlite", analyzer=str.split).search("kb", "w0 w1 w2 w3", 100)


def test_a_deleted_and_recreated_kb_is_not_mistaken_for_the_old_one(tmp_path: Path) -> None:
    first = KeywordIndex(tmp_path / "k.sqlite")
    second = KeywordIndex(tmp_path / "k.sqlite")
    first.add("kb", CHUNKS[:1])
    assert first.search("kb", "log4j2", 1)[0].doc_id == "log4j"
    second.delete_kb("kb")
    second.add("kb", CHUNKS[1:2])  # the old code came back to revision 1 here: first thought it current
    assert first.search("kb", "log4j2", 1) == []
    assert first.search("kb", "tomcat", 1)[0].doc_id == "tomcat"


def test_empty_kbs_and_chunks_without_terms(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "k.sqlite", analyzer=str.split)
    assert index.search("nothing", "w1", 5) == []
    index.add("kb", [chunk("blank", ""), chunk("x", "w1 w2")])
    hits = index.search("kb", "w1", 5)
    assert [h.doc_id for h in hits] == ["x"]
    assert hits[0].score == pytest.approx(bm25s_scores({"blank:0": "", "x:0": "w1 w2"}, ["w1"])["x:0"], rel=1e-5)
    index.delete_document("kb", "x")
    index.delete_document("kb", "blank")
    assert index.search("kb", "w1", 5) == []
    index.add("kb", [chunk("y", "w1")])
    assert [h.doc_id for h in index.search("kb", "w1", 5)] == ["y"]


def test_containing_and_where_after_incremental_changes(tmp_path: Path) -> None:
    writer = KeywordIndex(tmp_path / "k.sqlite")
    reader = KeywordIndex(tmp_path / "k.sqlite")
    writer.add("kb", CHUNKS)
    reader.search("kb", "Apache", 5)
    writer.add("kb", [chunk("struts", "Apache Struts OGNL injection, CVE-2017-5638", severity="critical")])
    exact = reader.search("kb", "Apache CVE-2017-5638", 5, containing=["cve-2017-5638"])
    assert [h.doc_id for h in exact] == ["struts"]
    critical = reader.search("kb", "Apache", 5, where={"severity": "critical"})
    assert {h.doc_id for h in critical} == {"log4j", "struts"}
    assert reader.search("kb", "Apache", 5, where={"severity": "none"}) == []
    assert reader.full_loads == 1


def test_migrates_a_database_written_before_the_change_feed(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "k.sqlite")
    db.executescript(
        """
        CREATE TABLE keyword_terms (kb TEXT NOT NULL, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,
            terms TEXT NOT NULL, metadata TEXT NOT NULL, PRIMARY KEY (kb, chunk_id));
        CREATE TABLE keyword_revisions (kb TEXT PRIMARY KEY, revision INTEGER NOT NULL);
        INSERT INTO keyword_terms VALUES ('kb', 'old:0', 'old', 'w1\tw2', '{"doc_id": "old"}');
        INSERT INTO keyword_revisions VALUES ('kb', 4);
        """
    )
    db.close()
    index = KeywordIndex(tmp_path / "k.sqlite", analyzer=str.split)
    assert [h.doc_id for h in index.search("kb", "w1", 5)] == ["old"]
    index.add("kb", [chunk("new", "w1")])
    index.delete_document("kb", "old")
    assert [h.doc_id for h in index.search("kb", "w1", 5)] == ["new"]
    assert index.full_loads == 1


# The in-memory segments


def rows(chunks: list[Chunk]) -> list[Row]:
    return [(c.id, c.doc_id, c.text.split(), json.dumps({"tag": c.metadata["tag"]})) for c in chunks]


def results(index: SegmentedBM25, query: str) -> list[tuple[str, float, float]]:
    return [(index.chunk_ids[p], s, c) for p, s, c, _ in index.search(query.split(), 50)]


def test_compaction_keeps_results_and_drops_the_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SegmentedBM25, "merge_share", 0.9)  # let deltas and dead chunks pile up
    rng = random.Random(3)
    index = SegmentedBM25(k1=1.2, b=0.75)
    index.add(rows(random_chunks(rng, 100)))
    for step in range(40):
        index.add(rows(random_chunks(rng, 1, start=100 + step)))
    index.add(rows(random_chunks(rng, 30)))  # replaces d0..d29
    index.delete([f"d{i}:0" for i in range(50, 80)])
    index.add(rows([chunk("rare", "only-here w1", tag="rare")]))
    index.delete(["rare:0"])
    assert 2 < len(index.segments) <= 8  # the newest merge like a binary counter: log-many segments
    queries = ["w0", "w1 w2", "w3 w7 w20", "w45 w50"]
    before = {q: results(index, q) for q in queries}
    assert "only-here" in index.vocab
    index.compact()
    assert len(index.segments) == 1
    assert index.live.all() and index.live.size == index.n_live == 2 * 140 - 30
    assert "only-here" not in index.vocab
    assert {q: results(index, q) for q in queries} == before


def test_chunks_of_a_document_share_one_metadata_dict() -> None:
    index = SegmentedBM25(k1=1.2, b=0.75)
    index.add(rows(random_chunks(random.Random(4), 20, tag="same")))
    assert len(index.metadata) == 1
    hits = index.search(["w0", "w1"], 5, accept=lambda m: m["tag"] == "same")
    assert hits and hits == index.search(["w0", "w1"], 5)
    assert index.search(["w0", "w1"], 5, accept=lambda m: m["tag"] == "other") == []


def test_ties_go_to_the_smaller_chunk_id_whatever_the_arrival_order(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "k.sqlite", analyzer=str.split)
    for doc in ["c", "a", "d", "b"]:
        index.add("kb", [chunk(doc, "same words")])
        index.search("kb", "same", 1)  # each one arrives through its own catch-up, after the others
    assert [h.doc_id for h in index.search("kb", "same", 2)] == ["a", "b"]
    assert [h.doc_id for h in index.search("kb", "same words", 4)] == ["a", "b", "c", "d"]
