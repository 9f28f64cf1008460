"""The ``rag`` command line: ingest, ask, search, manage knowledge bases and documents, serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from rag.engine import Engine
from rag.knowledge_base import KnowledgeBaseError
from rag.settings import Settings
from rag.types import Answer, Citation

app = typer.Typer(help="rag-kb: ask your documents, get cited answers.", no_args_is_help=True)
kb_app = typer.Typer(help="Create, list and delete knowledge bases.", no_args_is_help=True)
docs_app = typer.Typer(help="List and delete documents of a knowledge base.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
app.add_typer(docs_app, name="docs")

console = Console()
errors = Console(stderr=True)

KbOption = Annotated[str, typer.Option("--kb", "-k", help="Knowledge base name.")]


def engine() -> Engine:
    return Engine(Settings())


def fail(message: str) -> typer.Exit:
    # Messages quote names and paths the user typed: print them literally, never as rich markup.
    errors.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=1)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    kb: KbOption = "default",
) -> None:
    """Ingest files and folders; unchanged files are skipped, changed ones replaced."""
    from ingest.files import iter_files
    from ingest.loaders import available_extensions

    rag = engine()
    try:
        total = sum(1 for _ in iter_files(paths, available_extensions()))
    except FileNotFoundError as error:
        raise fail(str(error)) from error
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=errors, transient=False) as progress:
        task = progress.add_task(f"ingesting into {escape(kb)}", total=total)

        def advance(source: str, outcome: str) -> None:
            if outcome != "removed":
                progress.advance(task)
            progress.update(task, description=f"{outcome:>9} {escape(Path(source).name[:40])}")

        try:
            report = rag.knowledge_bases.ingest(kb, paths, progress=advance)
        except KnowledgeBaseError as error:
            raise fail(str(error)) from error
        progress.update(task, description=f"ingested into {escape(kb)}")
    console.print(
        f"added {len(report.added)}, updated {len(report.updated)}, unchanged {len(report.unchanged)}, "
        f"removed {len(report.removed)}, failed {len(report.failed)}; {report.chunks} new chunks"
    )
    for source, reason in report.failed:
        errors.print(f"[yellow]failed[/yellow] {escape(source)}: {escape(reason)}", soft_wrap=True)
    if report.failed and not (report.added or report.updated or report.unchanged):
        raise typer.Exit(code=1)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in Chinese or English.")],
    kb: KbOption = "default",
    top_k: Annotated[int | None, typer.Option(min=1, max=50, help="Sources to retrieve.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Answer a question from a knowledge base, with numbered sources."""
    rag = engine()
    try:
        rag.knowledge_bases.require(kb)
        if as_json:
            console.print_json(rag.answerer.run(kb, question, top_k=top_k).model_dump_json())
            return
        answer: Answer | None = None
        streamed: list[str] = []
        for event in rag.answerer.stream(kb, question, top_k=top_k):
            if isinstance(event, Answer):
                answer = event
            else:
                streamed.append(event)
                console.print(event, end="", markup=False, highlight=False, style="dim")
    except (KnowledgeBaseError, ValueError) as error:
        raise fail(str(error)) from error
    assert answer is not None
    console.print()
    if answer.answer.strip() != "".join(streamed).strip():
        # What was streamed is not what stands: say so and show the checked answer.
        console.print("\n[bold]Checked answer[/bold] (unsupported sentences and invalid \\[n] removed):")
        console.print(answer.answer, markup=False, highlight=False)
    if answer.answerable:
        _print_citations("Sources", answer.citations)
    else:
        console.print("[yellow]The knowledge base does not answer this (answerable: false).[/yellow]")
        _print_citations("Closest passages", answer.sources)


def _print_citations(heading: str, citations: list[Citation]) -> None:
    if not citations:
        return
    console.print(f"\n[bold]{heading}[/bold]")
    for c in citations:
        where = f", page {c.page}" if c.page else ""
        where += f", {c.section}" if c.section else ""
        # One line per source, never wrapped by rich, so a long path stays whole (and greppable).
        console.print(
            f"[{c.n}] {c.source}{where} (chars {c.start}-{c.end}, score {c.score:.2f})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        console.print("    " + c.snippet.replace("\n", " ")[:160], style="dim", markup=False, highlight=False)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Search text.")],
    kb: KbOption = "default",
    top_k: Annotated[int, typer.Option(min=1, max=100)] = 5,
) -> None:
    """Retrieve passages only (dense + keyword), with their scores."""
    rag = engine()
    try:
        rag.knowledge_bases.require(kb)
        retrieval = rag.retriever.run(kb, query, top_k)
    except (KnowledgeBaseError, ValueError) as error:
        raise fail(str(error)) from error
    _print_citations("Results", [Citation.from_hit(n, h) for n, h in enumerate(retrieval.hits, start=1)])


@kb_app.command("list")
def kb_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List knowledge bases."""
    records = engine().knowledge_bases.list()
    if as_json:
        rows = [{"name": r.name, "documents": r.documents, "chunks": r.chunks} for r in records]
        console.print_json(json.dumps(rows))
        return
    table = Table(Column("name", overflow="fold"), "documents", "chunks")
    for r in records:
        table.add_row(escape(r.name), str(r.documents), str(r.chunks))
    console.print(table)


@kb_app.command("create")
def kb_create(name: Annotated[str, typer.Argument()]) -> None:
    """Create an empty knowledge base."""
    try:
        created = engine().knowledge_bases.create(name)
    except KnowledgeBaseError as error:
        raise fail(str(error)) from error
    console.print(f"created {name}" if created else f"{name} already exists", markup=False, highlight=False)


@kb_app.command("delete")
def kb_delete(
    name: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a knowledge base with all its documents."""
    if not yes:
        typer.confirm(f"Delete knowledge base {name} and all its documents?", abort=True)
    try:
        existed = engine().knowledge_bases.delete(name)
    except KnowledgeBaseError as error:
        raise fail(str(error)) from error
    if not existed:
        raise fail(f"unknown knowledge base {name!r}")
    console.print(f"deleted {name}", markup=False, highlight=False)


@docs_app.command("list")
def docs_list(kb: KbOption = "default") -> None:
    """List the documents of a knowledge base."""
    try:
        records = engine().knowledge_bases.documents(kb)
    except KnowledgeBaseError as error:
        raise fail(str(error)) from error
    # The id is what `docs delete` needs and the path tells documents apart: both are shown whole.
    table = Table(Column("doc_id", no_wrap=True, min_width=20), Column("source", overflow="fold"), "chunks", "status")
    for r in records:
        table.add_row(r.doc_id, escape(r.source), str(r.chunk_count), r.status)
    console.print(table)


@docs_app.command("delete")
def docs_delete(doc_id: Annotated[str, typer.Argument()], kb: KbOption = "default") -> None:
    """Delete one document (its chunks leave Chroma, the keyword index and the catalog)."""
    try:
        deleted = engine().knowledge_bases.delete_document(kb, doc_id)
    except KnowledgeBaseError as error:
        raise fail(str(error)) from error
    if not deleted:
        raise fail(f"no document {doc_id!r} in {kb!r}")
    console.print(f"deleted {doc_id}", markup=False, highlight=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: RAG_HOST or 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: RAG_PORT or 8000.")] = None,
) -> None:
    """Start the HTTP API service."""
    import uvicorn

    settings = Settings()  # checked here, so a bad setting is reported before the server starts
    # Named, not imported: the api package sits above rag and rag never imports it.
    uvicorn.run("api.app:create_app", factory=True, host=host or settings.host, port=port or settings.port)


if __name__ == "__main__":
    app()
