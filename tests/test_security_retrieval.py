"""Security questions end to end: advisories and logs ingested, ids answered first, filters narrowing, lines cited."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rag.cli
from rag.engine import Engine
from rag.filters import SearchFilters, when
from rag.knowledge_base import document_id, part_source
from rag.settings import Settings
from stores import Embedder
from tests.kev_catalog import write_kev_catalog

FIXTURES = Path(__file__).parent / "fixtures" / "security"
KEV = "cisa_kev.json"


@pytest.fixture
def advisories(tmp_path: Path) -> Path:
    """The advisory fixtures and a KEV catalog in a folder of their own (without the NOTICE, which names ids too)."""
    folder = tmp_path / "advisories"
    shutil.copytree(FIXTURES, folder, ignore=shutil.ignore_patterns("NOTICE.md"))
    write_kev_catalog(folder / KEV)
    return folder


@pytest.fixture
def sec(engine: Engine, advisories: Path) -> Engine:
    report = engine.knowledge_bases.ingest("sec", [advisories])
    assert not report.failed and len(report.added) == 15  # 5 KEV entries + 10 single-advisory files
    return engine


def advisory_of(hit) -> str:
    return hit.chunk.metadata.get("advisory_id", "")


@pytest.mark.parametrize(
    ("question", "advisory"),
    [
        ("What is CVE-2017-12617?", "CVE-2017-12617"),
        ("Is cve-2021-45046 in the KEV catalog?", "CVE-2021-45046"),
        ("What does RUSTSEC-2020-0105 fix?", "RUSTSEC-2020-0105"),
        ("GHSA-7m8w-vg9p-qjr6 patched versions", "GHSA-7m8w-vg9p-qjr6"),
        ("漏洞 CVE-2017-7529 影响哪些版本？", "CVE-2017-7529"),
        ("BSI-2022-0001", "BSI-2022-0001"),
    ],
)
def test_a_question_naming_an_id_gets_that_advisory_first(sec: Engine, question: str, advisory: str) -> None:
    hits = sec.retriever.run("sec", question, 4).hits
    assert hits and advisory_of(hits[0]) == advisory
    assert all(advisory in (advisory_of(h), *h.chunk.metadata.get("aliases", "").split("; ")) or
               advisory.lower() in h.chunk.text.lower() for h in hits)  # fmt: skip


def test_the_id_wins_even_when_the_dense_side_prefers_another(sec: Engine) -> None:
    # Worded like CVE-2017-12615 (Tomcat on Windows with HTTP PUTs), asking about CVE-2017-12617.
    question = "When running Apache Tomcat on Windows with HTTP PUTs enabled, can a JSP be uploaded? CVE-2017-12617"
    dense = sec.vectors.query("sec", sec.embedder.embed_query(question), 5)
    assert advisory_of(dense[0]) == "CVE-2017-12615"  # the dense side alone prefers the other advisory
    hits = sec.retriever.run("sec", question, 4).hits
    assert advisory_of(hits[0]) == "CVE-2017-12617"
    answer = sec.answerer.run("sec", question)
    assert answer.answerable and answer.citations[0].metadata["advisory_id"] == "CVE-2017-12617"


def test_an_alias_finds_the_advisory_that_carries_it(sec: Engine) -> None:
    hits = sec.retriever.run("sec", "CVE-2020-36212", 3).hits
    assert advisory_of(hits[0]) == "RUSTSEC-2020-0105"


def test_kev_question_is_answered_with_its_due_date(sec: Engine) -> None:
    answer = sec.answerer.run("sec", "Is CVE-2021-44228 exploited in the wild, what must we do and by when?")
    assert answer.answerable and "2021-12-24" in answer.answer
    assert answer.citations[0].source.endswith(f"{KEV}#CVE-2021-44228")


def test_kev_entries_are_documents_of_their_own_and_reingest_is_idempotent(sec: Engine, advisories: Path) -> None:
    kbs = sec.knowledge_bases
    catalog = advisories / KEV
    source = str(catalog.resolve())
    names = {d.source for d in kbs.documents("sec")}
    assert part_source(source, "CVE-2017-12615") in names and source not in names
    again = kbs.ingest("sec", [advisories])
    assert len(again.unchanged) == 15 and not again.added and not again.updated and again.chunks == 0
    # One entry changes, one vanishes: only those two documents move.
    data = json.loads(catalog.read_text())
    data["vulnerabilities"] = [v for v in data["vulnerabilities"] if v["cveID"] != "CVE-2025-48384"]
    data["vulnerabilities"][0]["dueDate"] = "2030-01-01"
    changed = data["vulnerabilities"][0]["cveID"]
    catalog.write_text(json.dumps(data))
    report = kbs.ingest("sec", [advisories])
    assert report.updated == [part_source(source, changed)]
    assert report.removed == [part_source(source, "CVE-2025-48384")]
    assert len(report.unchanged) == 13
    gone = document_id("sec", part_source(source, "CVE-2025-48384"))
    assert sec.vectors.ids("sec", gone) == set() and sec.keywords.ids("sec", gone) == set()
    # The catalog file removed: all its entries go.
    catalog.unlink()
    report = kbs.ingest("sec", [advisories])
    assert len(report.removed) == 4 and not any(KEV in d.source for d in kbs.documents("sec"))


def test_a_file_that_becomes_a_catalog_replaces_its_single_document(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    path.write_text(json.dumps({"title": "not a catalog yet", "text": "Plain JSON."}))
    kbs = engine.knowledge_bases
    kbs.ingest("t", [path])
    assert [d.source for d in kbs.documents("t")] == [str(path.resolve())]
    write_kev_catalog(path)
    kbs.ingest("t", [path])
    assert len(kbs.documents("t")) == 5 and all("#CVE-" in d.source for d in kbs.documents("t"))


@pytest.mark.parametrize(
    ("options", "check"),
    [
        (SearchFilters(severity_at_least="high"), lambda m: m.get("severity_rank", -1) >= 3),
        (SearchFilters(cvss_at_least=9.5), lambda m: m.get("cvss", 0) >= 9.5),
        (SearchFilters(vendor="Apache"), lambda m: m.get("vendor") == "apache"),
        (SearchFilters(product="nginx"), lambda m: m.get("product") == "nginx"),
        (
            SearchFilters(since="2021-12-01", until="2022-12-31"),
            lambda m: 20211201 <= m.get("published_ts", 0) <= 20221231,
        ),
        (SearchFilters(source="rustsec"), lambda m: m["format"] == "rustsec"),
        (SearchFilters(advisory_id="cve-2021-44228"), lambda m: m["advisory_id"] == "CVE-2021-44228"),
    ],
)
def test_filters_narrow(sec: Engine, options: SearchFilters, check) -> None:
    question = "remote code execution vulnerability in Apache Log4j2"
    unfiltered = sec.retriever.run("sec", question, 20).hits
    hits = sec.retriever.run("sec", question, 20, options.to_filter()).hits
    assert hits and all(check(h.chunk.metadata) for h in hits)
    assert not all(check(h.chunk.metadata) for h in unfiltered if set(h.chunk.metadata) >= {"advisory_id"})


def test_filter_options_are_validated() -> None:
    assert SearchFilters().to_filter() is None
    assert SearchFilters(after="2026-11-20T10:40", before="2026-11-20").to_filter() == {
        "end_ts": {"$gte": 20261120104000},
        "start_ts": {"$lte": 20261120235959},
    }
    assert when("2021-12-10 10:42:07") == 20211210104207
    for bad in (
        {"severity_at_least": "huge"},
        {"level_at_least": "loud"},
        {"cvss_at_least": 11.0},
        {"since": "last week"},
    ):
        with pytest.raises(ValueError):
            SearchFilters(**bad)


HDFS = [
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 src: "
    "/10.250.19.102:54106",
    "081109 203519 145 INFO dfs.DataNode$PacketResponder: PacketResponder 0 for block blk_-1608999687919862906 "
    "terminating",
    "081109 203521 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /user/root/rand/_temporary/part-00001. "
    "blk_7503483334202473044",
    "081109 204005 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: 10.251.73.220:50010 "
    "is added to blk_7128370237687728475 size 67108864",
    "081109 204106 329 WARN dfs.DataNode: Failed to transfer blk_7128370237687728475 to 10.251.39.179:50010 got "
    "java.io.IOException: Connection reset by peer",
    "081109 204132 26 INFO dfs.FSNamesystem: BLOCK* ask 10.251.73.220:50010 to replicate blk_7128370237687728475 to "
    "datanode(s) 10.251.39.179:50010",
    "081109 204655 556 INFO dfs.DataNode$PacketResponder: Received block blk_3587508140051953248 of size 67108864 "
    "from /10.251.42.84",
    "081109 213225 19 ERROR dfs.DataNode: DataXceiver: java.io.IOException: Block blk_-1608999687919862906 is valid, "
    "and cannot be written to.",
]
SYSLOG = [
    "Nov 20 10:41:58 web-01 sshd[2211]: Accepted publickey for deploy from 10.0.0.5 port 51122 ssh2",
    "Nov 20 10:42:07 web-01 kernel: Out of memory: Killed process 3312 (java) total-vm:8123456kB",
    "Nov 20 10:43:30 db-01 postgres[881]: checkpoint starting: time",
    "Nov 20 11:10:02 db-01 postgres[881]: checkpoint complete: wrote 1127 buffers",
]


@pytest.fixture
def logs(engine: Engine, tmp_path: Path) -> Engine:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "hdfs.log").write_text("\n".join(HDFS) + "\n")
    (folder / "syslog.txt").write_text("\n".join(SYSLOG) + "\n")
    report = engine.knowledge_bases.ingest("logs", [folder])
    assert not report.failed
    return engine


def test_a_log_question_cites_the_right_lines(logs: Engine) -> None:
    answer = logs.answerer.run("logs", "Which block failed to transfer, and to which datanode?")
    assert answer.answerable
    cited = answer.citations[0]
    assert cited.source.endswith("hdfs.log") and cited.section is None
    first, last = cited.metadata["line_start"], cited.metadata["line_end"]
    assert first <= 5 <= last  # line 5 is the failed transfer
    assert "\n".join(HDFS[first - 1 : last]).startswith(cited.snippet.removesuffix("…"))  # the lines it names


def test_a_block_id_or_ip_matches_exactly(logs: Engine) -> None:
    hits = logs.retriever.run("logs", "blk_7128370237687728475", 10).hits
    assert hits and all("blk_7128370237687728475" in h.chunk.text for h in hits)
    hits = logs.retriever.run("logs", "what happened on 10.251.39.179?", 10).hits
    assert hits and all("10.251.39.179" in h.chunk.text for h in hits)


def test_log_filters_narrow_by_host_level_and_time(logs: Engine) -> None:
    def lines(options: SearchFilters) -> set[tuple[str, int]]:
        hits = logs.retriever.run("logs", "what happened", 20, options.to_filter()).hits
        return {(Path(h.chunk.metadata["source"]).name, h.chunk.metadata["line_start"]) for h in hits}

    assert {name for name, _ in lines(SearchFilters(host="db-01"))} == {"syslog.txt"}
    assert all(line >= 3 for _, line in lines(SearchFilters(host="db-01")))
    errors = lines(SearchFilters(level_at_least="error"))
    assert errors and all(name == "hdfs.log" for name, _ in errors)
    window = lines(SearchFilters(after="2008-11-09T21:30", before="2008-11-09T21:35"))
    assert window and all(name == "hdfs.log" for name, _ in window)


def test_cli_filters(engine: Engine, advisories: Path, monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> None:
    def fresh() -> Engine:
        built = Engine(Settings(data_dir=engine.settings.data_dir))
        built.embedder = embedder
        return built

    monkeypatch.setattr(rag.cli, "engine", fresh)
    runner = CliRunner()
    assert runner.invoke(rag.cli.app, ["ingest", str(advisories), "--kb", "sec"]).exit_code == 0
    result = runner.invoke(
        rag.cli.app,
        ["search", "remote code execution", "--kb", "sec", "--severity-at-least", "critical", "--top-k", "10"],
    )
    assert result.exit_code == 0, result.output
    assert "GHSA-jfh8-c2jp-5v3q.json" in result.output and "rubysec" not in result.output
    result = runner.invoke(rag.cli.app, ["ask", "What must we do?", "--kb", "sec", "--id", "CVE-2017-12615"])
    assert result.exit_code == 0 and f"{KEV}#CVE-2017-12615" in result.output
    bad = runner.invoke(rag.cli.app, ["search", "x", "--kb", "sec", "--level", "loud"])
    assert bad.exit_code == 1 and "unknown log level" in bad.output
