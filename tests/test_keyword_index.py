from __future__ import annotations

from pathlib import Path

from ingest.chunk import Chunk
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
