"""Ingestion throughput: rag-kb against the classic LangChain pipeline, same files, same embedder, one run.

rag-kb ingests the files into a fresh data directory (``KnowledgeBases.ingest``: parse, split, embed,
Chroma, BM25 terms, catalog), then ingests them again unchanged. The LangChain pipeline
(``rag.evaluation.baseline.LangChainBaseline``: ``RecursiveCharacterTextSplitter(1000, 0)``, the same
embedder through ``RagEmbeddings``, Chroma) gets the same files through a loader written as LangChain
users write it: each file read whole like ``TextLoader``, a JSON Lines corpus one Document per line's
``text`` like ``JSONLoader(jq_schema=".text", json_lines=True)``. Then the chunks rag-kb embedded are
embedded alone, in one call, the floor any pipeline with this embedder has; and the embedder's batch
sizes are compared on a sample of them.

Stages are timed from outside (bench/measure.py wraps the stores, the splitter and the loader), so
the figures say where the time goes without changing rag-kb.

Usage::

    python bench/ingest_bench.py                   # both QA corpora, security, logs, misc (several minutes)
    python bench/ingest_bench.py --quick           # a small slice, about a minute
    python bench/ingest_bench.py ../shared/data/security --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from measure import OtherLoad, Stopwatch, machine, peak_rss_mb, progress, ratio, table

import rag.knowledge_base as knowledge_base_module
from ingest.files import iter_files
from ingest.loaders import available_extensions
from rag.engine import Engine
from rag.evaluation.baseline import LangChainBaseline
from rag.settings import Settings
from stores import Embedder
from stores.text_analysis import analyze

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FULL = ["cmrc2018/corpus.jsonl", "squad2/corpus.jsonl", "security", "logs", "misc"]
QUICK = ["misc/state_of_the_union.txt", "security/csaf"]
BATCH_SIZES = (16, 32, 64, 128)
CALL_SIZE = 512  # texts per embed call in the batch-size comparison: as rag-kb's ingest calls the embedder


class TimedEmbedder(Embedder):
    """The real embedder (bundled MiniLM, on ``runtime``); each ``embed`` call is timed into ``watch`` as "embed".

    Its CPU seconds are added to ``cpu``; with ``keep``, each call's texts are kept, so the same
    chunks can be embedded again, as they were called and all at once.
    """

    def __init__(self, batch_size: int, runtime: str = "torch", cache_dir: Path | None = None) -> None:
        super().__init__(batch_size=batch_size, runtime=runtime, cache_dir=cache_dir)
        self.watch = Stopwatch()
        self.cpu = 0.0
        self.keep = False
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]):
        started, cpu = time.perf_counter(), time.process_time()
        vectors = super().embed(texts)
        self.watch.add("embed", time.perf_counter() - started)
        self.cpu += time.process_time() - cpu
        if self.keep:
            self.calls.append(list(texts))
        return vectors


class Phase:
    """Wall and CPU seconds of a ``with`` block, and what other processes did meanwhile.

    CPU seconds (this process, all its threads: torch's, Chroma's) barely move when other work
    shares the cores, so ratios of CPU seconds are the steadier figures on a busy machine.
    """

    def __enter__(self) -> Phase:
        self.load = OtherLoad()
        self.started, self.started_cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.started
        self.cpu = time.process_time() - self.started_cpu
        self.note = self.load.note()


@contextmanager
def patched(module: Any, name: str, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]):
    """``module.name`` replaced by ``wrapper(module.name)`` for a while (only if the module has it)."""
    original = getattr(module, name, None)
    if original is None:
        yield
        return
    setattr(module, name, wrapper(original))
    try:
        yield
    finally:
        setattr(module, name, original)


def ragkb_engine(folder: Path, embedder: TimedEmbedder, watch: Stopwatch) -> Engine:
    """rag-kb's engine over ``folder`` with its default settings, each part timed into ``watch``."""
    engine = Engine(Settings(data_dir=folder))
    engine.embedder = embedder  # seeds the cached property: the model is loaded once for both pipelines
    present = lambda obj, names: [n for n in names if hasattr(obj, n)]  # noqa: E731
    catalog_methods = ["create_kb", "document", "documents", "parts", "mark_pending", "mark_ready"]
    engine.catalog = watch.wrap(engine.catalog, "catalog", present(engine.catalog, catalog_methods))
    engine.vectors = watch.wrap(engine.vectors, "store: chroma add", ["add"])
    engine.vectors = watch.wrap(engine.vectors, "store: chroma delete old chunks", ["delete_document"])
    engine.keywords = watch.wrap(engine.keywords, "store: keyword terms", ["add", "delete_document"])
    # which chunks get a vector: the keyword index knows the templates that have one
    vector_plan = ["templates_with_vectors", "heirs", "mark_dense"]
    engine.keywords = watch.wrap(engine.keywords, "store: vector plan", present(engine.keywords, vector_plan))
    engine.splitter = watch.wrap(engine.splitter, "split", ["iter_chunks", "split_document"])
    return engine


def ingest_ragkb(engine: Engine, files: list[Path], watch: Stopwatch, profile: bool) -> tuple[Any, str]:
    """One ``ingest`` of ``files``: the report, and a profile if asked for."""
    embedder: TimedEmbedder = engine.embedder  # type: ignore[assignment]
    embedder.watch = watch
    profiler = cProfile.Profile() if profile else None
    with (
        patched(knowledge_base_module, "load_all", lambda f: watch.timed("parse", f)),
        patched(knowledge_base_module, "file_sha256", lambda f: watch.timed("hash", f)),
    ):
        if profiler:
            profiler.enable()
        report = engine.knowledge_bases.ingest("bench", files)
        if profiler:
            profiler.disable()
    return report, profile_text(profiler) if profiler else ""


def profile_text(profiler: cProfile.Profile, lines: int = 25) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


def langchain_documents(files: list[Path]) -> list[Any]:
    """The files as LangChain users load them: ``TextLoader`` (whole file), ``JSONLoader`` for .jsonl corpora."""
    from langchain_core.documents import Document

    documents = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".jsonl":  # JSONLoader(jq_schema=".text", json_lines=True)
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    content = json.loads(line).get("text", "")
                    documents.append(Document(content, metadata={"source": str(path), "seq_num": number}))
        else:
            documents.append(Document(text, metadata={"source": str(path)}))
    return documents


def ingest_langchain(files: list[Path], embedder: TimedEmbedder, chunk_size: int, overlap: int) -> dict[str, Any]:
    """Load → RecursiveCharacterTextSplitter → embeddings → Chroma, each step timed."""
    watch = Stopwatch()
    embedder.watch = watch
    started = time.perf_counter()
    baseline = LangChainBaseline(embedder, chunk_size=chunk_size, chunk_overlap=overlap)
    try:
        documents = watch.timed("parse", langchain_documents)(files)
        chunks = watch.timed("split", baseline.splitter.split_documents)(documents)
        # Chroma refuses a write of more than its max batch size (5461 here) and langchain-chroma does
        # not split one, so LangChain users add their chunks a batch at a time.
        batch = baseline.store._client.get_max_batch_size()
        add = watch.timed("embed + store", baseline.store.add_documents)
        for start in range(0, len(chunks), batch):
            add(chunks[start : start + batch])
        seconds = time.perf_counter() - started
    finally:
        baseline.close()
    watch.seconds["store: chroma"] = watch.seconds.pop("embed + store") - watch.seconds["embed"]
    return {
        "seconds": seconds,
        "chunks": len(chunks),
        "documents": len(documents),
        "stages": dict(watch.seconds),
        "texts": [chunk.page_content for chunk in chunks],
    }


def token_row(name: str, embedder: Embedder, texts: list[str]) -> list[str]:
    """How much of the chunks' text the model reads: tokens in them, and tokens past its window, cut off."""
    limit = embedder.model.max_seq_length
    lengths = [len(ids) for ids in embedder.model.tokenizer(texts, add_special_tokens=True)["input_ids"]]
    total = sum(lengths)
    embedded = sum(min(n, limit) for n in lengths)
    over = sum(n > limit for n in lengths)
    return [name, f"{len(texts):,}", f"{total:,}", f"{embedded:,}", f"{100 * (total - embedded) / total:.1f}%",
            f"{100 * over / len(texts):.1f}%"]  # fmt: skip


def batch_sizes(embedder: TimedEmbedder, texts: list[str], sizes: Sequence[int], rounds: int) -> list[list[str]]:
    """Chunks/s of the embedder at each batch size, in calls of :data:`CALL_SIZE` texts.

    The sizes take turns for ``rounds`` rounds and each keeps its best: other work on the machine
    comes and goes, and interleaving spreads it over all sizes instead of one.
    """
    best = {size: [float("inf"), float("inf")] for size in sizes}
    original = embedder.batch_size
    try:
        for _ in range(rounds):
            for size in sizes:
                embedder.batch_size = size
                started, cpu = time.perf_counter(), time.process_time()
                for start in range(0, len(texts), CALL_SIZE):
                    Embedder.embed(embedder, texts[start : start + CALL_SIZE])
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
                best[size] = [min(best[size][0], wall), min(best[size][1], cpu)]
    finally:
        embedder.batch_size = original
    return [
        [str(size), f"{len(texts) / wall:.1f}", f"{wall:.2f}", f"{1000 * cpu / len(texts):.1f}"]
        for size, (wall, cpu) in best.items()
    ]


def stage_rows(stages: dict[str, float], total: float) -> list[list[str]]:
    rows = [[name, f"{s:.2f}", f"{100 * s / total:.0f}%"] for name, s in sorted(stages.items(), key=lambda x: -x[1])]
    rest = total - sum(stages.values())
    rows.append(["other (walk, loop, commits)", f"{rest:.2f}", f"{100 * rest / total:.0f}%"])
    return rows


def run_ragkb(files: list[Path], embedder: TimedEmbedder, keep: bool, profile: bool) -> dict[str, Any]:
    """A first ingest into a fresh data directory, then the same files again, unchanged."""
    with tempfile.TemporaryDirectory(prefix="rag-ingest-bench-") as folder:
        watch = Stopwatch()
        engine = ragkb_engine(Path(folder), embedder, watch)
        embedder.keep, embedder.cpu = keep, 0.0
        try:
            with Phase() as first:
                report, profiled = ingest_ragkb(engine, files, watch, profile)
        finally:
            embedder.keep = False
        stages, embed_cpu = dict(watch.seconds), embedder.cpu
        with_vectors = engine.vectors.count("bench")
        watch.reset()
        with Phase() as again:
            second, _ = ingest_ragkb(engine, files, watch, False)
    if report.failed:
        print(f"rag-kb failed on {len(report.failed)} files, e.g. {report.failed[0]}")
    if second.added or second.updated:
        print(f"WARNING: the unchanged re-ingest redid {len(second.added) + len(second.updated)} documents")
    return {
        "seconds": first.seconds,
        "cpu": first.cpu,
        "embed_s": stages["embed"],
        "embed_cpu": embed_cpu,
        "chunks": report.chunks,
        "with_vectors": with_vectors,
        "stages": stages,
        "again_s": again.seconds,
        "again_cpu": again.cpu,
        "again_stages": dict(watch.seconds),
        "profile": profiled,
        "load": first.note,
    }


def timed_langchain(files: list[Path], embedder: TimedEmbedder, size: int, overlap: int) -> dict[str, Any]:
    embedder.cpu = 0.0
    with Phase() as phase:
        result = ingest_langchain(files, embedder, size, overlap)
    return {
        **result,
        "cpu": phase.cpu,
        "embed_s": result["stages"]["embed"],
        "embed_cpu": embedder.cpu,
        "load": phase.note,
    }


def batching_loss(embedder: TimedEmbedder, texts: int, rounds: int) -> dict[str, Any]:
    """How much slower rag-kb's embed calls are than one call for the same chunks (wall and CPU).

    A sample of rag-kb's own calls (about ``texts`` chunks) is embedded as rag-kb called it and as
    one call, taking turns for ``rounds`` rounds, each keeping its best: both see the same load.
    """
    calls = list(embedder.calls)
    random.Random(0).shuffle(calls)
    sample, total = [], 0
    for call in calls:
        if total >= texts:
            break
        sample.append(call)
        total += len(call)
    together = [text for call in sample for text in call]
    best = {"as called": [float("inf")] * 2, "one call": [float("inf")] * 2}
    with Phase() as phase:
        for _ in range(rounds):
            for way in best:
                started, cpu = time.perf_counter(), time.process_time()
                for call in sample if way == "as called" else [together]:
                    Embedder.embed(embedder, call)
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
                best[way] = [min(best[way][0], wall), min(best[way][1], cpu)]
    (called_s, called_cpu), (one_s, one_cpu) = best["as called"], best["one call"]
    return {
        "calls": len(sample),
        "texts": len(together),
        "wall": called_s / one_s,
        "cpu": called_cpu / one_cpu,
        "one_call_s": one_s,
        "load": phase.note,
    }


def embed_alone(embedder: TimedEmbedder) -> dict[str, Any]:
    """All the chunks rag-kb embedded, embedded again alone in one call (the embedder sorts them by length)."""
    texts = [text for call in embedder.calls for text in call]
    with Phase() as phase:
        Embedder.embed(embedder, texts)
    return {"seconds": phase.seconds, "cpu": phase.cpu, "load": phase.note}


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated runs: the one least slowed by other work on the machine."""
    return min(runs, key=lambda run: run["seconds"])


def throughput_row(name: str, run: dict[str, Any], files: int, size_mb: float) -> list[str]:
    seconds, chunks = run["seconds"], run.get("chunks")
    per_chunk = f"{chunks / seconds:.1f}" if chunks else "-"
    return [
        name,
        f"{seconds:.3f}",
        f"{run['cpu']:.3f}",
        f"{files / seconds:.2f}",
        f"{size_mb / seconds:.3f}",
        str(chunks or 0),
        per_chunk,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help=f"files and folders (default: {', '.join(FULL)} of --data)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--quick", action="store_true", help=f"a small slice: {', '.join(QUICK)}")
    parser.add_argument("--batch-size", type=int, default=None, help="embedder batch size (default: the setting's)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each pipeline, alternating order; best kept")
    parser.add_argument("--sweep", default=",".join(map(str, BATCH_SIZES)), help="batch sizes to compare; '' = none")
    parser.add_argument("--sweep-texts", type=int, default=None, help="chunks embedded per batch size")
    parser.add_argument("--same-chunking", action="store_true", help="also run LangChain with rag-kb's chunk size")
    parser.add_argument("--profile", action="store_true", help="cProfile rag-kb's first ingest")
    parser.add_argument("--alone", action="store_true", help="also embed all of rag-kb's chunks again in one call")
    parser.add_argument("--runtime", default=None, help="rag-kb's embedder runtime (default: the setting's)")
    parser.add_argument("--langchain-runtime", default="torch", help="LangChain's (default: torch, as users run it)")
    args = parser.parse_args(argv)
    paths = args.paths or [args.data / p for p in (QUICK if args.quick else FULL)]
    sweep = [int(s) for s in args.sweep.split(",") if s.strip()]
    if any(s < 1 or s > 1024 for s in sweep):
        parser.error("batch sizes must be in 1..1024")
    if not 1 <= args.repeat <= 5:
        parser.error("--repeat must be 1..5")
    try:
        files = list(iter_files(paths, available_extensions()))
    except FileNotFoundError as error:
        parser.error(str(error))
    if not files:
        parser.error("no supported files under the paths given")
    size_mb = sum(f.stat().st_size for f in files) / 2**20
    settings = Settings(data_dir=Path(tempfile.gettempdir()))
    batch_size, cache = args.batch_size or settings.embedder_batch_size, Settings().embedder_cache()
    embedder = TimedEmbedder(batch_size, args.runtime or settings.embedder_runtime, cache)
    lc_embedder = embedder
    if args.langchain_runtime != embedder.runtime:
        lc_embedder = TimedEmbedder(batch_size, args.langchain_runtime, cache)

    print(f"# Ingestion: {len(files)} files, {size_mb:.2f} MiB, embedder batch size {embedder.batch_size}")
    print(f"machine: {machine()}")
    started = time.perf_counter()
    for each in {id(e): e for e in (embedder, lc_embedder)}.values():
        each.embed(["warm-up"])  # the model loads once per process; not part of either pipeline's time
    print(f"embedder runtime: rag-kb {embedder.runtime_in_use}, LangChain {lc_embedder.runtime_in_use}")
    analyze("预热 warm-up")  # jieba's dictionary, likewise
    print(f"model and jieba loaded in {time.perf_counter() - started:.1f} s (excluded below)\n")

    ragkb, lc, same = [], [], []
    for repetition in range(args.repeat):
        # Alternate the order so that a burst of other work on the machine does not always hit the same one.
        for step in ("rag-kb", "langchain") if repetition % 2 == 0 else ("langchain", "rag-kb"):
            if step == "rag-kb":
                ragkb.append(run_ragkb(files, embedder, keep=not ragkb, profile=args.profile and not ragkb))
                progress(f"rag-kb: {ragkb[-1]['seconds']:.1f} s, re-ingest {ragkb[-1]['again_s']:.3f} s")
            else:
                lc.append(timed_langchain(files, lc_embedder, 1000, 0))
                progress(f"LangChain: {lc[-1]['seconds']:.1f} s")
                if args.same_chunking:
                    same.append(timed_langchain(files, lc_embedder, settings.chunk_size, settings.chunk_overlap))
                    progress(f"LangChain at rag-kb's chunk size: {same[-1]['seconds']:.1f} s")
    r, c = best(ragkb), best(lc)
    s = best(same) if same else None
    loss = batching_loss(embedder, 256 if args.quick else 1024, 1 if args.quick else 2)
    progress(f"batching loss: {loss['wall']:.2f}× wall, {loss['cpu']:.2f}× CPU")
    alone = embed_alone(embedder) if args.alone else None

    rows = [
        throughput_row("rag-kb (first ingest)", r, len(files), size_mb),
        throughput_row("LangChain (1000/0)", c, len(files), size_mb),
    ]
    if s:
        rows.append(
            throughput_row(f"LangChain ({settings.chunk_size}/{settings.chunk_overlap})", s, len(files), size_mb)
        )
    if alone:
        rows.append(throughput_row("embedding rag-kb's chunks alone", {**alone, "chunks": r["chunks"]}, 0, 0))
    rows.append(throughput_row("rag-kb re-ingest (unchanged)", {"seconds": r["again_s"], "cpu": r["again_cpu"]},
                               len(files), size_mb))  # fmt: skip
    print(table(["pipeline", "wall s", "CPU s", "files/s", "MiB/s", "chunks", "chunks/s"], rows))
    print()
    # The embedding alone of the same chunks under the same load: rag-kb's embed time without the batching loss.
    alone_s, alone_cpu = r["embed_s"] / loss["wall"], r["embed_cpu"] / loss["cpu"]
    ratios = [
        ["throughput rag-kb / LangChain", ratio(c["seconds"], r["seconds"]), ratio(c["cpu"], r["cpu"]),
         "≥ 2.5× (English), ≥ 3× (both QA corpora)"],
        ["rag-kb ingest / embedding its chunks alone", ratio(r["seconds"], alone_s), ratio(r["cpu"], alone_cpu),
         "≤ 1.25×"],
        ["  of which: time outside the embedder", ratio(r["seconds"], r["embed_s"]), ratio(r["cpu"], r["embed_cpu"]),
         "-"],
        [f"  of which: rag-kb's embed calls / one call ({loss['calls']} calls, {loss['texts']} chunks)",
         f"{loss['wall']:.2f}×", f"{loss['cpu']:.2f}×", "-"],
        ["first ingest / unchanged re-ingest", ratio(r["seconds"], r["again_s"]), ratio(r["cpu"], r["again_cpu"]),
         "≥ 50×"],
        ["chunks rag-kb / LangChain", ratio(r["chunks"], c["chunks"]), "", "-"],
        ["chunks embedded rag-kb / LangChain", ratio(r["with_vectors"], c["chunks"]), "", "-"],
        ["chunks indexed per second rag-kb / LangChain", ratio(r["chunks"] / r["seconds"], c["chunks"] / c["seconds"]),
         ratio(r["chunks"] / r["cpu"], c["chunks"] / c["cpu"]), "-"],
    ]  # fmt: skip
    if s:
        ratios.insert(1, ["throughput rag-kb / LangChain at the same chunk size", ratio(s["seconds"], r["seconds"]),
                          ratio(s["cpu"], r["cpu"]), "-"])  # fmt: skip
    if alone:
        ratios.insert(2, ["rag-kb ingest / embedding alone, measured apart", ratio(r["seconds"], alone["seconds"]),
                          ratio(r["cpu"], alone["cpu"]), "≤ 1.25×"])  # fmt: skip
    print(table(["ratio", "wall", "CPU", "target"], ratios))
    print(
        f"\nbest of {args.repeat}; while measuring: rag-kb {r['load']}; LangChain {c['load']}; "
        f"batching sample {loss['load']}" + (f"; embedding alone {alone['load']}" if alone else "")
    )
    print("\n## Where rag-kb's first ingest goes (seconds of wall time, timed from outside)")
    print(table(["stage", "seconds", "share"], stage_rows(r["stages"], r["seconds"])))
    print("\n## Where the unchanged re-ingest goes")
    print(table(["stage", "seconds", "share"], stage_rows(r["again_stages"], r["again_s"])))
    print("\n## Where LangChain's goes")
    print(table(["stage", "seconds", "share"], stage_rows(c["stages"], c["seconds"])))
    texts = [text for call in embedder.calls for text in call]
    print(f"\nrag-kb: {r['chunks']:,} chunks indexed, {r['with_vectors']:,} of them with a vector (the rest: a template"
          " another chunk's vector stands for, or a language the embedder cannot read)")  # fmt: skip
    print(f"\n## What the model reads (window {embedder.model.max_seq_length} tokens; text past it is cut off)")
    rows = [token_row("rag-kb", embedder, texts), token_row("LangChain (1000/0)", embedder, c["texts"])]
    if s:
        rows.append(token_row(f"LangChain ({settings.chunk_size}/{settings.chunk_overlap})", embedder, s["texts"]))
    print(table(["pipeline", "chunks", "tokens", "tokens embedded", "text cut off", "chunks cut"], rows))
    if sweep and texts:
        count = args.sweep_texts or (128 if args.quick else 512)
        rounds = 1 if args.quick else 2
        sample = random.Random(0).sample(texts, min(count, len(texts)))
        with Phase() as phase:
            rows = batch_sizes(embedder, sample, sweep, rounds)
        print(
            f"\n## Embedder batch size ({len(sample)} of rag-kb's chunks, calls of {CALL_SIZE}, "
            f"best of {rounds} interleaved rounds; {phase.note})"
        )
        print(table(["batch size", "chunks/s", "seconds", "CPU ms per chunk"], rows))
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB")
    profiled = next((run["profile"] for run in ragkb if run["profile"]), "")
    if profiled:
        print("\n## cProfile of rag-kb's first ingest (cumulative; profiling slows Python code)\n" + profiled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
