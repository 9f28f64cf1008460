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

from measure import OtherLoad, Stopwatch, machine, peak_rss_mb, ratio, table

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
    """The real embedder (bundled MiniLM); each ``embed`` call is timed into ``watch`` as "embed".

    With ``keep``, the texts are kept, so the same chunks can be embedded again alone.
    """

    def __init__(self, batch_size: int) -> None:
        super().__init__(batch_size=batch_size)
        self.watch = Stopwatch()
        self.keep = False
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]):
        started = time.perf_counter()
        vectors = super().embed(texts)
        self.watch.add("embed", time.perf_counter() - started)
        if self.keep:
            self.texts.extend(texts)
        return vectors


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
    engine.splitter = watch.wrap(engine.splitter, "split", ["iter_chunks", "split_document"])
    return engine


def ingest_ragkb(engine: Engine, files: list[Path], watch: Stopwatch, profile: bool) -> tuple[float, Any, str]:
    """One ``ingest`` of ``files``: seconds, the report, and a profile if asked for."""
    embedder: TimedEmbedder = engine.embedder  # type: ignore[assignment]
    embedder.watch = watch
    profiler = cProfile.Profile() if profile else None
    with (
        patched(knowledge_base_module, "load_all", lambda f: watch.timed("parse", f)),
        patched(knowledge_base_module, "file_sha256", lambda f: watch.timed("hash", f)),
    ):
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        report = engine.knowledge_bases.ingest("bench", files)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
    return seconds, report, profile_text(profiler) if profiler else ""


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
    return {"seconds": seconds, "chunks": len(chunks), "documents": len(documents), "stages": dict(watch.seconds)}


def batch_sizes(embedder: TimedEmbedder, texts: list[str], sizes: Sequence[int], rounds: int) -> list[list[str]]:
    """Chunks/s of the embedder at each batch size, in calls of :data:`CALL_SIZE` texts.

    The sizes take turns for ``rounds`` rounds and each keeps its best: other work on the machine
    comes and goes, and interleaving spreads it over all sizes instead of one.
    """
    best = dict.fromkeys(sizes, float("inf"))
    original = embedder.batch_size
    try:
        for _ in range(rounds):
            for size in sizes:
                embedder.batch_size = size
                started = time.perf_counter()
                for start in range(0, len(texts), CALL_SIZE):
                    Embedder.embed(embedder, texts[start : start + CALL_SIZE])
                best[size] = min(best[size], time.perf_counter() - started)
    finally:
        embedder.batch_size = original
    return [[str(size), f"{len(texts) / seconds:.1f}", f"{seconds:.2f}"] for size, seconds in best.items()]


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
        load = OtherLoad()
        embedder.keep = keep
        try:
            seconds, report, profiled = ingest_ragkb(engine, files, watch, profile)
        finally:
            embedder.keep = False
        stages, note = dict(watch.seconds), load.note()
        watch.reset()
        again_s, again, _ = ingest_ragkb(engine, files, watch, False)
    if report.failed:
        print(f"rag-kb failed on {len(report.failed)} files, e.g. {report.failed[0]}")
    if again.added or again.updated:
        print(f"WARNING: the unchanged re-ingest redid {len(again.added) + len(again.updated)} documents")
    return {
        "seconds": seconds,
        "chunks": report.chunks,
        "stages": stages,
        "again_s": again_s,
        "again_stages": dict(watch.seconds),
        "profile": profiled,
        "load": note,
    }


def embed_alone(embedder: TimedEmbedder, texts: list[str]) -> dict[str, Any]:
    """The chunks rag-kb embedded, embedded alone in one call (the embedder sorts them by length)."""
    load = OtherLoad()
    started = time.perf_counter()
    Embedder.embed(embedder, texts)
    return {"seconds": time.perf_counter() - started, "load": load.note()}


def timed_langchain(files: list[Path], embedder: TimedEmbedder, size: int, overlap: int) -> dict[str, Any]:
    load = OtherLoad()
    result = ingest_langchain(files, embedder, size, overlap)
    return {**result, "load": load.note()}


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated runs: the one least slowed by other work on the machine."""
    return min(runs, key=lambda run: run["seconds"])


def throughput_row(name: str, seconds: float, files: int, size_mb: float, chunks: int | None) -> list[str]:
    per_chunk = f"{chunks / seconds:.1f}" if chunks else "-"
    return [name, f"{seconds:.3f}", f"{files / seconds:.2f}", f"{size_mb / seconds:.3f}", str(chunks or 0), per_chunk]


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
    embedder = TimedEmbedder(args.batch_size or settings.embedder_batch_size)

    print(f"# Ingestion: {len(files)} files, {size_mb:.2f} MiB, embedder batch size {embedder.batch_size}")
    print(f"machine: {machine()}")
    started = time.perf_counter()
    embedder.embed(["warm-up"])  # the model loads once per process; not part of either pipeline's time
    analyze("预热 warm-up")  # jieba's dictionary, likewise
    print(f"model and jieba loaded in {time.perf_counter() - started:.1f} s (excluded below)\n")

    ragkb, alone, lc, same = [], [], [], []
    for repetition in range(args.repeat):
        # Alternate the order so that a burst of other work on the machine does not always hit the same one.
        steps = ["rag-kb", "alone", "langchain"]
        for step in steps if repetition % 2 == 0 else reversed(steps):
            if step == "rag-kb":
                ragkb.append(run_ragkb(files, embedder, keep=repetition == 0, profile=args.profile and not ragkb))
                progress(f"rag-kb: {ragkb[-1]['seconds']:.1f} s, re-ingest {ragkb[-1]['again_s']:.3f} s")
            elif step == "alone" and embedder.texts:
                alone.append(embed_alone(embedder, embedder.texts))
                progress(f"embedding alone: {alone[-1]['seconds']:.1f} s")
            elif step == "langchain":
                lc.append(timed_langchain(files, embedder, 1000, 0))
                progress(f"LangChain: {lc[-1]['seconds']:.1f} s")
                if args.same_chunking:
                    same.append(timed_langchain(files, embedder, settings.chunk_size, settings.chunk_overlap))
                    progress(f"LangChain at rag-kb's chunk size: {same[-1]['seconds']:.1f} s")
    r, a, c = best(ragkb), best(alone), best(lc)
    s = best(same) if same else None

    rows = [
        throughput_row("rag-kb (first ingest)", r["seconds"], len(files), size_mb, r["chunks"]),
        throughput_row("LangChain (1000/0)", c["seconds"], len(files), size_mb, c["chunks"]),
    ]
    if s:
        name = f"LangChain ({settings.chunk_size}/{settings.chunk_overlap})"
        rows.append(throughput_row(name, s["seconds"], len(files), size_mb, s["chunks"]))
    rows.append(throughput_row("embedding rag-kb's chunks alone", a["seconds"], len(files), size_mb, r["chunks"]))
    rows.append(throughput_row("rag-kb re-ingest (unchanged)", r["again_s"], len(files), size_mb, None))
    print(table(["pipeline", "seconds", "files/s", "MiB/s", "chunks", "chunks/s"], rows))
    print()
    ratios = [
        ["throughput rag-kb / LangChain (files/s)", ratio(c["seconds"], r["seconds"]), "≥ 1.5×"],
        ["rag-kb ingest / embedding its chunks alone", ratio(r["seconds"], a["seconds"]), "≤ 1.25×"],
        ["rag-kb embed calls / embedding alone (batching loss)", ratio(r["stages"]["embed"], a["seconds"]), "-"],
        ["first ingest / unchanged re-ingest", ratio(r["seconds"], r["again_s"]), "≥ 50×"],
        ["chunks rag-kb / LangChain", ratio(r["chunks"], c["chunks"]), "-"],
        ["embedded chunks/s rag-kb / LangChain", ratio(r["chunks"] / r["seconds"], c["chunks"] / c["seconds"]), "-"],
    ]
    if s:
        ratios.insert(
            1, ["throughput rag-kb / LangChain at the same chunk size", ratio(s["seconds"], r["seconds"]), "-"]
        )
    print(table(["ratio", "measured", "target"], ratios))
    print(
        f"\nbest of {args.repeat}; load while measuring: rag-kb {r['load']}; embedding alone {a['load']}; "
        f"LangChain {c['load']}"
    )
    print("\n## Where rag-kb's first ingest goes (seconds of wall time, timed from outside)")
    print(table(["stage", "seconds", "share"], stage_rows(r["stages"], r["seconds"])))
    print("\n## Where the unchanged re-ingest goes")
    print(table(["stage", "seconds", "share"], stage_rows(r["again_stages"], r["again_s"])))
    print("\n## Where LangChain's goes")
    print(table(["stage", "seconds", "share"], stage_rows(c["stages"], c["seconds"])))
    if sweep and embedder.texts:
        count = args.sweep_texts or (128 if args.quick else 512)
        rounds = 1 if args.quick else 2
        sample = random.Random(0).sample(embedder.texts, min(count, len(embedder.texts)))
        load = OtherLoad()
        rows = batch_sizes(embedder, sample, sweep, rounds)
        print(
            f"\n## Embedder batch size ({len(sample)} of rag-kb's chunks, calls of {CALL_SIZE}, "
            f"best of {rounds} interleaved rounds; {load.note()})"
        )
        print(table(["batch size", "chunks/s", "seconds"], rows))
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB")
    profiled = next((run["profile"] for run in ragkb if run["profile"]), "")
    if profiled:
        print("\n## cProfile of rag-kb's first ingest (cumulative; profiling slows Python code)\n" + profiled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
