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
from rag.filters import SearchFilters
from rag.knowledge_base import KnowledgeBaseError, document_id
from rag.settings import Settings
from rag.types import Answer, Citation
from stores.metadata_filter import MetadataFilter

app = typer.Typer(help="rag-kb: ask your documents, get cited answers.", no_args_is_help=True)
kb_app = typer.Typer(help="Create, list and delete knowledge bases.", no_args_is_help=True)
docs_app = typer.Typer(help="List and delete documents of a knowledge base.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
app.add_typer(docs_app, name="docs")

console = Console()
errors = Console(stderr=True)

KbOption = Annotated[
    str | None,
    typer.Option("--kb", "-k", help="Knowledge base name. Default: RAG_DEFAULT_KB, else the only one there is."),
]

# Filters of `ask` and `search` (rag.filters.SearchFilters); each one narrows, all must hold.
_PANEL = "Filters"
IdOption = Annotated[str | None, typer.Option("--id", help="Only the advisory with this id.", rich_help_panel=_PANEL)]
SeverityOption = Annotated[
    str | None,
    typer.Option("--severity-at-least", help="none, low, medium, high or critical.", rich_help_panel=_PANEL),
]
CvssOption = Annotated[
    float | None, typer.Option("--cvss-at-least", min=0, max=10, help="CVSS base score.", rich_help_panel=_PANEL)
]
VendorOption = Annotated[str | None, typer.Option(help="Affected vendor (any case).", rich_help_panel=_PANEL)]
ProductOption = Annotated[str | None, typer.Option(help="Affected product or package.", rich_help_panel=_PANEL)]
SinceOption = Annotated[str | None, typer.Option(help="Published on or after (2021-12-10).", rich_help_panel=_PANEL)]
UntilOption = Annotated[str | None, typer.Option(help="Published on or before.", rich_help_panel=_PANEL)]
SourceOption = Annotated[
    str | None,
    typer.Option(
        help="Feed or format: cisa-kev, csaf, osv, cve-json5, rustsec, rubysec, vuln-writeup, log, pdf …",
        rich_help_panel=_PANEL,
    ),
]
HostOption = Annotated[str | None, typer.Option(help="Log host.", rich_help_panel=_PANEL)]
LevelOption = Annotated[
    str | None, typer.Option("--level", help="Log level at least: info, warning, error …", rich_help_panel=_PANEL)
]
AfterOption = Annotated[
    str | None,
    typer.Option(help="Log chunks with a line at or after (2015-07-29T17:41).", rich_help_panel=_PANEL),
]
BeforeOption = Annotated[
    str | None,
    typer.Option(help="Log chunks with a line at or before (no seconds: the whole minute).", rich_help_panel=_PANEL),
]


def engine() -> Engine:
    return Engine(Settings())


def fail(message: str) -> typer.Exit:
    # Messages quote names and paths the user typed: print them literally, never as rich markup.
    errors.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=1)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    kb: KbOption = None,
) -> None:
    """Ingest files and folders; unchanged files are skipped, changed ones replaced."""
    from ingest.files import iter_files
    from ingest.loaders import available_extensions

    rag = engine()
    try:
        kb = rag.knowledge_base_for(kb, creating=True)
        total = sum(1 for _ in iter_files(paths, available_extensions()))
    except (FileNotFoundError, KnowledgeBaseError) as error:
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
    kb: KbOption = None,
    top_k: Annotated[int | None, typer.Option(min=1, max=50, help="Sources to retrieve.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    advisory_id: IdOption = None,
    severity_at_least: SeverityOption = None,
    cvss_at_least: CvssOption = None,
    vendor: VendorOption = None,
    product: ProductOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    source: SourceOption = None,
    host: HostOption = None,
    level: LevelOption = None,
    after: AfterOption = None,
    before: BeforeOption = None,
) -> None:
    """Answer a question from a knowledge base, with numbered sources."""
    rag = engine()
    try:
        filters = SearchFilters(
            advisory_id, severity_at_least, cvss_at_least, vendor, product, since, until, source, host, level, after,
            before,
        ).to_filter()  # fmt: skip
        kb = rag.knowledge_base_for(kb)
        rag.knowledge_bases.require(kb)
        if as_json:
            console.print_json(rag.answerer.run(kb, question, top_k=top_k, filters=filters).model_dump_json())
            return
        _ask_and_print(rag, kb, question, [], top_k, filters)
    except (KnowledgeBaseError, ValueError) as error:
        raise fail(str(error)) from error


@app.command()
def chat(kb: KbOption = "default", top_k: Annotated[int | None, typer.Option(min=1, max=50)] = None) -> None:
    """Ask questions one after another; follow-ups ("What was her previous job?") read the earlier turns.

    An empty line or end of input ends the conversation.
    """
    rag = engine()
    history: list[dict[str, str]] = []
    try:
        rag.knowledge_bases.require(kb)
    except KnowledgeBaseError as error:
        raise fail(str(error)) from error
    while True:
        try:
            question = input("> ").strip()
        except EOFError:
            break
        if not question:
            break
        try:
            answer = _ask_and_print(rag, kb, question, history, top_k, None)
        except (KnowledgeBaseError, ValueError) as error:
            console.print(f"[red]{escape(str(error))}[/red]")
            continue
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.answer}]


def _ask_and_print(
    rag: Engine,
    kb: str,
    question: str,
    history: list[dict[str, str]],
    top_k: int | None,
    filters: MetadataFilter | None,
) -> Answer:
    """Stream the answer to the console, then the checked answer if it differs, and its sources."""
    answer: Answer | None = None
    streamed: list[str] = []
    # Verified text only, a sentence at a time as the generator finishes it (a generative backend streams).
    for event in rag.answerer.stream(kb, question, history, top_k=top_k, filters=filters, verified=True):
        if isinstance(event, Answer):
            answer = event
        else:
            streamed.append(event)
            console.print(event, end="", markup=False, highlight=False, style="dim")
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
    return answer


def _print_citations(heading: str, citations: list[Citation]) -> None:
    if not citations:
        return
    console.print(f"\n[bold]{heading}[/bold]")
    for c in citations:
        where = f", page {c.page}" if c.page else ""
        where += f", {c.section}" if c.section else ""
        if "line_start" in c.metadata:
            where += f", lines {c.metadata['line_start']}-{c.metadata.get('line_end', c.metadata['line_start'])}"
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
    kb: KbOption = None,
    top_k: Annotated[int, typer.Option(min=1, max=100)] = 5,
    advisory_id: IdOption = None,
    severity_at_least: SeverityOption = None,
    cvss_at_least: CvssOption = None,
    vendor: VendorOption = None,
    product: ProductOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    source: SourceOption = None,
    host: HostOption = None,
    level: LevelOption = None,
    after: AfterOption = None,
    before: BeforeOption = None,
) -> None:
    """Retrieve passages only (dense + keyword), with their scores."""
    rag = engine()
    try:
        filters = SearchFilters(
            advisory_id, severity_at_least, cvss_at_least, vendor, product, since, until, source, host, level, after,
            before,
        ).to_filter()  # fmt: skip
        kb = rag.knowledge_base_for(kb)
        rag.knowledge_bases.require(kb)
        retrieval = rag.retriever.run(kb, query, top_k, filters)
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
def docs_list(kb: KbOption = None) -> None:
    """List the documents of a knowledge base."""
    try:
        rag = engine()
        records = rag.knowledge_bases.documents(rag.knowledge_base_for(kb))
    except KnowledgeBaseError as error:
        raise fail(str(error)) from error
    # The id is what `docs delete` needs and the path tells documents apart: both are shown whole.
    table = Table(Column("doc_id", no_wrap=True, min_width=20), Column("source", overflow="fold"), "chunks", "status")
    for r in records:
        table.add_row(r.doc_id, escape(r.source), str(r.chunk_count), r.status)
    console.print(table)


@docs_app.command("delete")
def docs_delete(
    doc_id: Annotated[str, typer.Argument(help="An id `rag docs list` prints, or the path ingested.")],
    kb: KbOption = None,
) -> None:
    """Delete one document (its chunks leave Chroma, the keyword index and the catalog)."""
    try:
        rag = engine()
        kb = rag.knowledge_base_for(kb)
        deleted = rag.knowledge_bases.delete_document(kb, doc_id)
        if not deleted:  # a path names its document too: the id is made from the KB and the resolved path
            by_path = document_id(kb, str(Path(doc_id).expanduser().resolve()))
            if rag.knowledge_bases.delete_document(kb, by_path):
                deleted, doc_id = True, by_path
    except KnowledgeBaseError as error:
        raise fail(str(error)) from error
    if not deleted:
        raise fail(f"no document {doc_id!r} in {kb!r}")
    console.print(f"deleted {doc_id}", markup=False, highlight=False)


@app.command("eval")
def evaluate(
    queries: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="JSONL: qid, question, answers, gold_pid, answerable.")
    ],
    corpus: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="JSONL: pid, title, text, lang. Without it: --kb as it is."),
    ] = None,
    kb: Annotated[str | None, typer.Option("--kb", "-k", help="Default: eval-<folder>-<hash>, one per corpus.")] = None,
    top_k: Annotated[int | None, typer.Option(min=1, max=50, help="Sources an answer rests on.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Score retrieval, evidence and refusal only.")] = False,
    baseline: Annotated[bool, typer.Option("--baseline", help="Run the LangChain baseline too (bench extra).")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
) -> None:
    """Measure retrieval, refusals, citations and answers on a corpus and its questions.

    The corpus is ingested first, skipping passages the KB holds unchanged; questions go through `rag ask`'s answerer.
    Without --corpus the questions are asked of the KB --kb as `rag ingest` filled it (no passage ranks then).
    """
    from rag.evaluation import DatasetError, Evaluator, corpus_label, default_kb_name, read_corpus, read_queries
    from rag.evaluation import summarize as summarize_eval

    if corpus is None and kb is None:
        raise fail("give --corpus, or --kb to ask a knowledge base as it is")
    try:
        passages, questions = read_corpus(corpus) if corpus else [], read_queries(queries)[:limit]
    except DatasetError as error:
        raise fail(str(error)) from error
    rag = engine()
    kb = kb or default_kb_name(corpus)  # type: ignore[arg-type]  # one of the two, checked above
    label = corpus_label(corpus) if corpus else ""
    evaluator = Evaluator(rag.knowledge_bases, rag.answerer, top_k)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    baseline_report = None
    with Progress(*columns, console=errors, transient=False) as progress:
        task = progress.add_task(f"ingesting into {escape(kb)}", total=len(passages))
        try:
            if corpus:
                ingested = evaluator.ingest(kb, corpus, passages, progress=lambda _, __: progress.advance(task))
            else:
                rag.knowledge_bases.require(kb)
        except KnowledgeBaseError as error:
            raise fail(str(error)) from error
        task = progress.add_task("asking" if no_llm else f"asking ({rag.generator.name})", total=len(questions))
        results = evaluator.run(kb, label, questions, generate=not no_llm, on_question=lambda: progress.advance(task))
        if baseline and corpus:
            from rag.evaluation.baseline import evaluate_baseline

            task = progress.add_task("langchain baseline", total=len(questions))
            try:
                baseline_report = evaluate_baseline(
                    rag.embedder, passages, questions, evaluator.top_k, on_question=lambda: progress.advance(task)
                )
            except RuntimeError as error:
                raise fail(str(error)) from error
    report = {
        "corpus": str(corpus),
        "queries": str(queries),
        "kb": kb,
        "top_k": evaluator.top_k,
        "generator": None if no_llm else rag.generator.name,
        "ingest": None
        if corpus is None
        else {
            "passages": len(passages),
            "added": len(ingested.report.added),
            "updated": len(ingested.report.updated),
            "unchanged": len(ingested.report.unchanged),
            "removed": ingested.removed,
            "failed": len(ingested.report.failed),
            "chunks": ingested.report.chunks,
            "seconds": round(ingested.seconds, 2),
            "kb_chunks": next((k.chunks for k in rag.knowledge_bases.list() if k.name == kb), 0),
        },
        **summarize_eval(results, label, rag.answerer.min_relevance, generated=not no_llm),
        "baseline": baseline_report,
    }
    _print_eval(report)
    if json_out:
        json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _print_eval(report: dict) -> None:
    def f(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    def ms(stages: dict | None) -> str:
        stage = (stages or {}).get("retrieve")
        return "-" if not stage else f"{stage['p50']:.0f}/{stage['p95']:.0f}"

    n = report["n"]
    table = Table(
        Column("system", no_wrap=True), "chunks", "hit@1", "hit@3", "hit@5", "hit@10", "MRR@10",
        f"answer in top {report['top_k']}", "ms p50/p95",
        title=f"Retrieval: {n['answerable']} answerable of {n['queries']} questions",
    )  # fmt: skip
    scores = {**report["retrieval"], **report["evidence"]}
    rows = [("rag-kb", (report["ingest"] or {}).get("kb_chunks", "-"), scores, report["latency_ms"])]
    if report["baseline"]:
        b = report["baseline"]
        rows.append(("langchain", b["chunks"], b, b["latency_ms"]))
    for name, count, values, latency in rows:
        keys = ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "contains_answer")
        table.add_row(name, str(count), *(f(values[k]) for k in keys), ms(latency))
    console.print(table)

    refusal = report["refusal"]
    curve = Table(
        "threshold", "answerable answered", "not-in-KB refused", "unanswerable refused",
        title=f"Refusal gate ({n['unanswerable']} unanswerable, {n['not_in_kb']} of them not in the KB)",
    )  # fmt: skip
    for point in refusal["curve"]:
        if round(point["threshold"] * 10, 6) % 1 == 0 or point["threshold"] == refusal["threshold"]:
            style = "bold" if point["threshold"] == refusal["threshold"] else None
            keys = ("answered_answerable", "refused_not_in_kb", "refused_unanswerable")
            curve.add_row(f"{point['threshold']:.2f}", *(f(point[k]) for k in keys), style=style)
    console.print(curve)
    generator = f" ({report['generator']})" if report["generator"] else " (gate only, --no-llm)"
    console.print(
        f"At threshold {refusal['threshold']}{generator}: answerable answered {f(refusal['answered_answerable'])}, "
        f"not-in-KB refused {f(refusal['refused_not_in_kb'])}, unanswerable refused "
        f"{f(refusal['refused_unanswerable'])}",
        markup=False,
    )
    if report["answer"]:
        c, a = report["citations"], report["answer"]
        console.print(
            f"Answers: EM {f(a['em'])}, F1 {f(a['f1'])}; citations valid {f(c['valid'])}, supported "
            f"{f(c['supported'])} (generator's own text: valid {f(c['raw_valid'])}, supported {f(c['raw_supported'])})",
            markup=False,
        )
    stages = ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in report["latency_ms"].items() if v)
    ingest = report["ingest"]
    done = (
        f" Ingest: {ingest['passages']} passages, {ingest['added']} added, {ingest['updated']} updated, "
        f"{ingest['unchanged']} unchanged, {ingest['chunks']} new chunks, {ingest['seconds']:.1f} s"
        if ingest
        else ""
    )
    console.print(f"Latency ms p50/p95: {stages}.{done}", markup=False)
    for kind, figures in report["by_kind"].items():
        items = f", list items found {f(figures['items_found'])}" if figures["items_found"] is not None else ""
        console.print(f"{kind}: {figures['right']}/{figures['n']} right{items}", markup=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: RAG_HOST or 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: RAG_PORT or 8000.")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="API processes. Default: RAG_WORKERS or 1; more need RAG_CHROMA_URL.")
    ] = None,
) -> None:
    """Start the HTTP API service."""
    import uvicorn

    settings = Settings()  # checked here, so a bad setting is reported before the server starts
    try:
        keys = settings.load_api_keys()
    except ValueError as error:
        raise fail(str(error)) from error
    host = host or settings.host
    workers = workers or settings.workers
    if workers > 1 and not settings.chroma_url:
        raise fail(
            f"{workers} workers need a Chroma server: embedded Chroma belongs to one process. "
            "Start one (chroma run --path /srv/chroma --port 8002) and set RAG_CHROMA_URL=http://127.0.0.1:8002"
        )
    if not keys and host not in {"127.0.0.1", "localhost", "::1"}:
        errors.print(
            f"[yellow]warning:[/] serving on {escape(host)} without API keys: anyone who reaches it can read "
            "and change every knowledge base (set RAG_API_KEYS or RAG_API_KEYS_FILE)"
        )
    # Named, not imported: the api package sits above rag and rag never imports it.
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port or settings.port, workers=workers)


if __name__ == "__main__":
    app()
