"""The ``rag`` command line, driven through typer's CliRunner over a temporary data directory.

Every command gets a brand-new :class:`Engine` (sharing only the session's embedder), so what one
command did can only be seen by the next one through the files on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

import rag.cli
from rag.engine import Engine
from rag.knowledge_base import document_id
from rag.prompts import REFUSAL
from rag.settings import Settings
from stores import Embedder

FLIGHTS = "Which class is required for flights under six hours?"
PASSWORD = "密码多久必须更换一次？"
ABSENT = "Who won the 1998 football world cup?"

Invoke = Callable[..., Result]


@pytest.fixture
def engines(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> list[Engine]:
    """Patch ``rag.cli.engine`` to build a new Engine per command; returns the engines built so far."""
    monkeypatch.chdir(tmp_path)  # no stray rag-kb.toml
    built: list[Engine] = []

    def fresh_engine() -> Engine:
        engine = Engine(Settings(data_dir=tmp_path / "data"))
        engine.embedder = embedder
        built.append(engine)
        return engine

    monkeypatch.setattr(rag.cli, "engine", fresh_engine)
    return built


@pytest.fixture
def cli(engines: list[Engine]) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str | Path) -> Result:
        return runner.invoke(rag.cli.app, [str(a) for a in args])

    return invoke


@pytest.fixture
def ingested(cli: Invoke, corpus: Path) -> Path:
    """The corpus ingested into the knowledge base ``t``."""
    result = cli("ingest", corpus, "--kb", "t")
    assert result.exit_code == 0, result.output
    return corpus


def flat(text: str) -> str:
    """Text with rich's line wrapping undone (runs of whitespace become one space)."""
    return " ".join(text.split())


def listed_files(output: str, heading: str) -> list[str]:
    """File names of the ``[n] source, ...`` lines under ``heading`` in ``rag ask`` output."""
    _, found, rest = output.partition(f"\n{heading}\n")
    assert found, f"no {heading!r} in:\n{output}"
    return [Path(m.group(1)).name for m in re.finditer(r"^\[\d+\] (\S+?)(?:,| \()", rest, re.MULTILINE)]


def table_rows(output: str) -> list[list[str]]:
    """The cells of a rich table's body rows, with cells that wrapped onto more lines joined back up."""
    rows: list[list[str]] = []
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells[0] or not rows:
            rows.append(cells)
        else:
            rows[-1] = [a + b for a, b in zip(rows[-1], cells, strict=True)]
    return rows


def test_ingest_reports_added_then_unchanged(cli: Invoke, corpus: Path, engines: list[Engine]) -> None:
    first = cli("ingest", corpus, "--kb", "t")
    assert first.exit_code == 0, first.output
    assert "added 3, updated 0, unchanged 0, removed 0, failed 0" in first.stdout

    second = cli("ingest", corpus, "--kb", "t")
    assert second.exit_code == 0, second.output
    assert "added 0, updated 0, unchanged 3, removed 0, failed 0; 0 new chunks" in second.stdout
    assert len(engines) == 2 and engines[0] is not engines[1]  # the catalog on disk remembered the files


def test_ingest_notices_a_changed_and_a_removed_file(cli: Invoke, ingested: Path) -> None:
    (ingested / "bridge.txt").write_text("The Meridian Bridge was repainted green in 2001.\n", encoding="utf-8")
    (ingested / "security.md").unlink()
    result = cli("ingest", ingested, "--kb", "t")
    assert result.exit_code == 0, result.output
    assert "added 0, updated 1, unchanged 1, removed 1, failed 0" in result.stdout


def test_ask_answers_in_english_with_sources(cli: Invoke, ingested: Path, engines: list[Engine]) -> None:
    result = cli("ask", FLIGHTS, "--kb", "t")
    assert result.exit_code == 0, result.output
    answer, _, _ = result.stdout.partition("\nSources\n")
    assert "Economy class is required for flights under six hours" in flat(answer)
    assert listed_files(result.stdout, "Sources") == ["travel.md"]
    assert "answerable: false" not in result.stdout
    assert len(engines) == 2  # a fresh engine answered from what the ingest left on disk


def test_ask_answers_in_chinese_citing_the_chinese_file(cli: Invoke, ingested: Path) -> None:
    result = cli("ask", PASSWORD, "--kb", "t")
    assert result.exit_code == 0, result.output
    assert "九十天" in result.stdout.partition("\nSources\n")[0]
    assert set(listed_files(result.stdout, "Sources")) == {"security.md"}


def test_ask_refuses_what_the_documents_do_not_say(cli: Invoke, ingested: Path) -> None:
    result = cli("ask", ABSENT, "--kb", "t")
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert REFUSAL["en"] in out
    assert out.count(REFUSAL["en"]) == 1  # streamed once; no "checked answer" repeating the same refusal
    assert "answerable: false" in out
    assert "\nSources\n" not in result.stdout
    assert listed_files(result.stdout, "Closest passages")  # the evidence is still shown


def test_ask_json_is_machine_readable(cli: Invoke, ingested: Path) -> None:
    result = cli("ask", "--json", FLIGHTS, "--kb", "t")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert {"answer", "answerable", "citations"} <= answer.keys()
    assert answer["answerable"] is True
    assert "Economy" in answer["answer"]
    assert [Path(c["source"]).name for c in answer["citations"]] == ["travel.md"]

    refused = json.loads(cli("ask", "--json", ABSENT, "--kb", "t").stdout)
    assert refused["answerable"] is False
    assert refused["answer"] == REFUSAL["en"]
    assert refused["citations"] == [] and refused["sources"]


def test_search_lists_ranked_passages(cli: Invoke, ingested: Path) -> None:
    result = cli("search", "Who designed the Meridian Bridge?", "--kb", "t", "--top-k", "2")
    assert result.exit_code == 0, result.output
    files = listed_files(result.stdout, "Results")
    assert files[0] == "bridge.txt" and len(files) <= 2


def test_kb_and_docs_list(cli: Invoke, ingested: Path) -> None:
    kbs = cli("kb", "list")
    assert kbs.exit_code == 0, kbs.output
    [[name, documents, chunks]] = table_rows(kbs.stdout)
    assert (name, documents) == ("t", "3") and int(chunks) >= 3
    [record] = json.loads(cli("kb", "list", "--json").stdout)
    assert record["name"] == "t" and record["documents"] == 3

    docs = cli("docs", "list", "--kb", "t")
    assert docs.exit_code == 0, docs.output
    rows = table_rows(docs.stdout)
    # Full ids and full paths, even when the paths are longer than the terminal is wide.
    expected = {
        document_id("t", str((ingested / n).resolve())): str((ingested / n).resolve())
        for n in ("travel.md", "security.md", "bridge.txt")
    }
    assert {doc_id: source for doc_id, source, _, _ in rows} == expected
    assert all(status == "ready" and int(chunks) >= 1 for _, _, chunks, status in rows)


def test_docs_delete_removes_the_document(cli: Invoke, ingested: Path) -> None:
    doc_id = document_id("t", str((ingested / "travel.md").resolve()))
    assert "travel.md" in listed_files(cli("ask", FLIGHTS, "--kb", "t").stdout, "Sources")

    deleted = cli("docs", "delete", doc_id, "--kb", "t")
    assert deleted.exit_code == 0, deleted.output
    assert f"deleted {doc_id}" in deleted.stdout
    assert doc_id not in [row[0] for row in table_rows(cli("docs", "list", "--kb", "t").stdout)]

    after = cli("ask", FLIGHTS, "--kb", "t")
    assert after.exit_code == 0, after.output
    assert "Economy" not in after.stdout
    assert "travel.md" not in after.stdout

    again = cli("docs", "delete", doc_id, "--kb", "t")
    assert again.exit_code != 0
    assert f"no document '{doc_id}' in 't'" in flat(again.stderr)

    by_path = cli("docs", "delete", str(ingested / "bridge.txt"), "--kb", "t")  # the path it was ingested from
    assert by_path.exit_code == 0, by_path.output
    assert f"deleted {document_id('t', str((ingested / 'bridge.txt').resolve()))}" in by_path.stdout


def test_kb_delete_then_ask_is_an_unknown_kb(cli: Invoke, ingested: Path) -> None:
    deleted = cli("kb", "delete", "t", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert "deleted t" in deleted.stdout
    assert table_rows(cli("kb", "list").stdout) == []

    result = cli("ask", FLIGHTS, "--kb", "t")
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "unknown knowledge base 't'" in result.stderr
    assert "Traceback" not in result.output

    again = cli("kb", "delete", "t", "--yes")
    assert again.exit_code != 0 and "unknown knowledge base 't'" in again.stderr


def test_kb_delete_asks_first(cli: Invoke, ingested: Path) -> None:
    result = CliRunner().invoke(rag.cli.app, ["kb", "delete", "t"], input="n\n")
    assert result.exit_code != 0
    assert [row[0] for row in table_rows(cli("kb", "list").stdout)] == ["t"]


@pytest.mark.parametrize("name", ["../etc", "a/b", "", " padded", "[/x]"])
def test_invalid_kb_name_is_a_clear_error(cli: Invoke, corpus: Path, name: str) -> None:
    for args in (("ask", FLIGHTS, "--kb", name), ("ingest", corpus, "--kb", name), ("kb", "create", name)):
        result = cli(*args)
        assert result.exit_code != 0, args
        assert isinstance(result.exception, SystemExit), (args, result.exception)  # e.g. no rich MarkupError
        assert "invalid knowledge base name" in flat(result.stderr), (args, result.stderr)
    assert json.loads(cli("kb", "list", "--json").stdout) == []  # nothing was created


def test_names_are_printed_literally_not_as_markup(cli: Invoke) -> None:
    created = cli("kb", "create", "[bold]notes")
    assert created.exit_code == 0, created.output
    assert "created [bold]notes" in created.stdout
    assert "[bold]notes" in cli("kb", "list").stdout
    unknown = cli("ask", "anything", "--kb", "[red]x")
    assert unknown.exit_code != 0
    assert "unknown knowledge base '[red]x'" in unknown.stderr


def test_ingest_of_a_missing_path_is_a_clear_error(cli: Invoke, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    result = cli("ingest", missing, "--kb", "t")
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)
    assert f"no such file or folder: {missing}" in flat(result.stderr)


def test_a_corrupt_pdf_is_reported_and_the_good_files_still_go_in(cli: Invoke, corpus: Path) -> None:
    (corpus / "broken.pdf").write_bytes(os.urandom(4096))
    result = cli("ingest", corpus, "--kb", "t")
    assert result.exit_code == 0, result.output
    assert "added 3, updated 0, unchanged 0, removed 0, failed 1" in result.stdout
    failure = next(line for line in result.stderr.splitlines() if line.startswith("failed "))
    assert "broken.pdf" in failure and "PDF" in failure

    assert listed_files(cli("ask", FLIGHTS, "--kb", "t").stdout, "Sources") == ["travel.md"]


def test_ingest_of_only_broken_files_fails(cli: Invoke, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(os.urandom(4096))
    result = cli("ingest", broken, "--kb", "t")
    assert result.exit_code == 1
    assert "failed 1" in result.stdout and "broken.pdf" in result.stderr


def _rag_script() -> str:
    script = Path(sys.executable).parent / "rag"
    return str(script) if script.exists() else shutil.which("rag") or pytest.skip("no rag console script")


@pytest.mark.slow
def test_the_installed_console_script(tmp_path: Path, corpus: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "COLUMNS": "200",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_rag_script(), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
        )

    ingest = run("ingest", str(corpus), "--kb", "t")
    assert ingest.returncode == 0, ingest.stderr
    assert "added 3" in ingest.stdout

    ask = run("ask", FLIGHTS, "--kb", "t")
    assert ask.returncode == 0, ask.stderr
    assert "Economy" in ask.stdout
    assert listed_files(ask.stdout, "Sources") == ["travel.md"]
    assert (tmp_path / "data" / "catalog.sqlite").is_file()


def test_serve_refuses_several_workers_over_embedded_chroma(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    started: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: started.append(kwargs))
    monkeypatch.delenv("RAG_CHROMA_URL", raising=False)
    result = cli("serve", "--workers", "4")
    assert result.exit_code != 0 and "need a Chroma server" in flat(result.stderr) and not started

    monkeypatch.setenv("RAG_CHROMA_URL", "http://127.0.0.1:8002")
    assert cli("serve", "--workers", "4").exit_code == 0
    assert started[-1]["workers"] == 4 and started[-1]["factory"] is True


def test_without_kb_the_only_knowledge_base_or_the_default_setting_is_used(
    cli: Invoke, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    none_yet = cli("ask", FLIGHTS)
    assert none_yet.exit_code == 1 and "no knowledge base yet" in flat(none_yet.stderr)
    assert cli("ingest", corpus / "travel.md").exit_code == 0  # into "default", created
    assert "default" in cli("kb", "list").stdout
    assert "Economy class" in cli("ask", FLIGHTS).stdout  # the only one there is
    assert cli("ingest", corpus / "bridge.txt", "--kb", "other").exit_code == 0
    several = cli("search", FLIGHTS)
    assert several.exit_code == 1 and "RAG_DEFAULT_KB" in flat(several.stderr), several.stderr
    assert "default, other" in flat(several.stderr)
    monkeypatch.setenv("RAG_DEFAULT_KB", "other")
    chosen = cli("search", FLIGHTS)
    assert chosen.exit_code == 0 and "bridge.txt" in chosen.stdout and "travel.md" not in chosen.stdout
