"""Retrieval latency and memory as a knowledge base grows: 10k, 100k, (1M) chunks.

``HybridRetriever.run`` is what ``search`` and ``ask`` call: the question's embedding, Chroma's
nearest neighbours, BM25 (bm25s), the exact-identifier stage, fusion, the readiness check. It is
timed for real English and Chinese questions (SQuAD 2.0 and CMRC 2018 dev questions) against one
knowledge base grown step by step to each size.

The chunks are synthetic but drawn from the real corpora: each is three sentences of one real
passage (SQuAD, CMRC, the security write-ups), so its terms and its topic are real. Embedding a
million chunks on two cores would take a day, so only the sentences are embedded (once), and a
chunk's vector is the normalized mean of its sentences' vectors plus a little noise: clustered by
passage as real vectors are, and never two alike. Chunks go into the stores through their public
``add`` methods, documents into the catalog as ``ingest`` files them; the keyword index's analyzer
(a constructor argument) reuses the analysis of each known sentence, so building is not dominated by
jieba. Questions are analyzed and embedded as usual.

Usage::

    python bench/retrieval_bench.py                       # 10k and 100k chunks
    python bench/retrieval_bench.py --quick               # 10k chunks, a minute or two
    python bench/retrieval_bench.py --sizes 10000,100000,1000000 --max-build-minutes 90
    python bench/retrieval_bench.py --sizes 100000 --runtimes onnx-int8,torch   # query embedding both ways, one KB
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from measure import OtherLoad, Stopwatch, machine, peak_rss_mb, progress, rss_mb, table

from ingest.chunk import Chunk
from ingest.splitter import sentence_spans
from rag.evaluation import read_corpus, read_queries
from rag.evaluation.metrics import percentiles
from rag.knowledge_base import document_id
from rag.retrieval import HybridRetriever
from rag.settings import Settings
from stores import Catalog, ChromaVectorStore, Embedder, KeywordIndex
from stores.text_analysis import analyze

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KB = "bench"
SENTENCES_PER_CHUNK = 3
CHUNKS_PER_DOCUMENT = 20
BUILD_BATCH = 5000
NOISE = 0.02  # per component; about 0.4 in norm against a mean vector of norm 0.6 to 0.9
MIN_FREE_GIB = 2.0


@dataclass
class Passage:
    title: str
    lang: str
    sentences: list[int]  # positions in the sentence pool


class SentencePool:
    """Real sentences, their vectors and their analysis, grouped by the passage they come from."""

    def __init__(self, data: Path, limit: int, seed: int) -> None:
        rng = random.Random(seed)
        sources = [read_corpus(data / "squad2" / "corpus.jsonl"), read_corpus(data / "cmrc2018" / "corpus.jsonl")]
        write_ups = sorted((data / "security" / "vulhub").rglob("README*.md"))
        self.texts: list[str] = []
        self.passages: list[Passage] = []
        candidates = [(p.title, p.lang, p.text) for corpus in sources for p in corpus]
        candidates += [(path.parent.name, "zh" if "zh" in path.name else "en", path.read_text()) for path in write_ups]
        rng.shuffle(candidates)
        for title, lang, text in candidates:
            sentences = [text[a:b] for a, b in sentence_spans(text)]
            sentences = [s.replace("\n", " ") for s in sentences if 20 <= len(s) <= 400]
            if len(sentences) < SENTENCES_PER_CHUNK:
                continue
            first = len(self.texts)
            self.texts += sentences
            self.passages.append(Passage(title, lang, list(range(first, len(self.texts)))))
            if len(self.texts) >= limit:
                break
        self.terms = {text: analyze(text) for text in self.texts}
        self.vectors = np.zeros((0, 0), dtype=np.float32)

    def embed(self, embedder: Embedder) -> float:
        started = time.perf_counter()
        self.vectors = embedder.embed(self.texts)
        return time.perf_counter() - started

    def analyzer(self, text: str) -> list[str]:
        """Terms of a chunk made of known sentences (one a line), analyzed once each; others as usual."""
        return [term for line in text.split("\n") for term in (self.terms.get(line) or analyze(line))]


class SyntheticCorpus:
    """Chunk ``n`` of the growing knowledge base: three sentences of one passage, its vector derived."""

    def __init__(self, pool: SentencePool, seed: int) -> None:
        self.pool = pool
        self.rng = np.random.default_rng(seed)

    def source(self, n: int) -> str:
        """The file chunk ``n`` belongs to."""
        number = n // CHUNKS_PER_DOCUMENT
        passage = self.pool.passages[number % len(self.pool.passages)]
        return f"/synthetic/{passage.lang}/{number:07d}-{passage.title[:40]}.txt"

    def batch(self, first: int, count: int) -> tuple[list[Chunk], np.ndarray, dict[str, tuple[str, int]]]:
        """Chunks ``first`` .. ``first + count``, their vectors, and their documents (doc_id → title, chunks)."""
        chunks, picks = [], []
        documents: dict[str, tuple[str, int]] = {}
        for n in range(first, first + count):
            number, index = divmod(n, CHUNKS_PER_DOCUMENT)
            passage = self.pool.passages[number % len(self.pool.passages)]
            chosen = sorted(self.rng.choice(passage.sentences, SENTENCES_PER_CHUNK, replace=False))
            source = self.source(n)
            doc_id = document_id(KB, source)
            text = "\n".join(self.pool.texts[i] for i in chosen)
            metadata = {"source": source, "title": passage.title, "format": "text", "lang": passage.lang}
            chunks.append(Chunk(Chunk.make_id(doc_id, index), doc_id, index, text, 0, len(text), metadata))
            picks.append(chosen)
            documents[doc_id] = (source, documents.get(doc_id, ("", 0))[1] + 1)
        vectors = self.pool.vectors[np.asarray(picks)].mean(axis=1)
        vectors += self.rng.normal(0, NOISE, vectors.shape).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return chunks, vectors.astype(np.float32), documents


def free_gib() -> float:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        return int(next(line.split()[1] for line in meminfo if line.startswith("MemAvailable"))) / 2**20


def folder_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def grow(
    corpus: SyntheticCorpus,
    catalog: Catalog,
    vectors: ChromaVectorStore,
    keywords: KeywordIndex,
    start: int,
    target: int,
    watch: Stopwatch,
    deadline: float,
) -> tuple[int, str]:
    """Add chunks until ``target``; stops early (and says why) at the deadline or when memory runs short."""
    count = start
    while count < target:
        if time.monotonic() > deadline:
            return count, "the build time limit was reached"
        if free_gib() < MIN_FREE_GIB:
            return count, f"less than {MIN_FREE_GIB} GiB of memory was left"
        step = min(BUILD_BATCH, target - count)
        started = time.perf_counter()
        chunks, batch_vectors, documents = corpus.batch(count, step)
        watch.add("make chunks", time.perf_counter() - started)
        with watch.stage("catalog"):
            for doc_id, (source, _) in documents.items():
                catalog.mark_pending(KB, doc_id, source, Path(source).stem, 0)
        with watch.stage("chroma add"):
            vectors.add(KB, chunks, batch_vectors)
        with watch.stage("keyword terms add"):
            keywords.add(KB, chunks)
        with watch.stage("catalog"):
            for doc_id, (_, chunk_count) in documents.items():
                catalog.mark_ready(KB, doc_id, "synthetic", chunk_count)
        count += step
    return count, ""


def measure_queries(retriever: HybridRetriever, questions: list[str], watch: Stopwatch) -> list[float]:
    """Milliseconds of ``retriever.run`` per question (after one untimed question)."""
    retriever.run(KB, questions[0])
    watch.reset()
    times = []
    for question in questions:
        started = time.perf_counter()
        retriever.run(KB, question)
        times.append((time.perf_counter() - started) * 1000)
    return times


def profiled(retriever: HybridRetriever, questions: list[str]) -> str:
    """cProfile of the questions, asked again apart from the timed run (profiling slows Python code)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for question in questions:
        retriever.run(KB, question)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


def timed_parts(retriever: HybridRetriever, watch: Stopwatch) -> HybridRetriever:
    """The same retriever, its stores' calls timed into ``watch`` per part."""
    return HybridRetriever(
        watch.wrap(retriever.embedder, "query embedding", ["embed_query"]),
        watch.wrap(retriever.vectors, "chroma query + get", ["query", "get"]),
        watch.wrap(retriever.keywords, "bm25 search", ["search"]),
        watch.wrap(retriever.catalog, "catalog ready", ["ready_chunk_counts"]),
        retriever.candidates,
    )


def first_query_ms(retriever: HybridRetriever, question: str) -> float:
    """The first question after the index changed: BM25 first reads the rows written since it last looked."""
    started = time.perf_counter()
    retriever.run(KB, question)
    return (time.perf_counter() - started) * 1000


def after_small_writes(
    corpus: SyntheticCorpus,
    catalog: Catalog,
    vectors: ChromaVectorStore,
    keywords: KeywordIndex,
    retriever: HybridRetriever,
    count: int,
    question: str,
) -> tuple[float, float, float, int]:
    """What a live KB sees: ms of the next question after one document is added, then after it is
    deleted, against the question's own ms with nothing changed; and the KB's size after."""
    steady = first_query_ms(retriever, question)
    grown, _ = grow(corpus, catalog, vectors, keywords, count, count + CHUNKS_PER_DOCUMENT, Stopwatch(), float("inf"))
    added = first_query_ms(retriever, question)
    doc_id = document_id(KB, corpus.source(count))
    vectors.delete_document(KB, doc_id)
    keywords.delete_document(KB, doc_id)
    catalog.remove_document(KB, doc_id)
    deleted = first_query_ms(retriever, question)
    return added, deleted, steady, grown - CHUNKS_PER_DOCUMENT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--quick", action="store_true", help="10k chunks, fewer sentences and questions")
    parser.add_argument("--sizes", default=None, help="comma-separated chunk counts (default 10000,100000)")
    parser.add_argument("--sentences", type=int, default=None, help="real sentences embedded (default 3000)")
    parser.add_argument("--questions", type=int, default=None, help="questions per language (default 100)")
    parser.add_argument("--max-build-minutes", type=float, default=60, help="stop growing after this long")
    parser.add_argument("--profile", action="store_true", help="cProfile the questions at the largest size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--runtimes", default=None, help="embedder runtimes questions are timed with, one KB (default: the setting's)"
    )
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in (args.sizes or ("10000" if args.quick else "10000,100000")).split(",")})
    if not sizes or sizes[0] < 100 or sizes[-1] > 5_000_000:
        parser.error("sizes must be between 100 and 5,000,000 chunks")
    sentences = args.sentences or (600 if args.quick else 3000)
    per_language = args.questions or (20 if args.quick else 100)
    if not 1 <= per_language <= 1000 or not 30 <= sentences <= 100_000:
        parser.error("--questions must be 1..1000 and --sentences 30..100000")
    rng = random.Random(args.seed)
    english = [q.question for q in read_queries(args.data / "squad2" / "queries_dev.jsonl")]
    chinese = [q.question for q in read_queries(args.data / "cmrc2018" / "queries_dev.jsonl")]
    questions = {"en": rng.sample(english, per_language), "zh": rng.sample(chinese, per_language)}

    settings = Settings(data_dir=Path(tempfile.gettempdir()))
    runtimes = [r.strip() for r in (args.runtimes or settings.embedder_runtime).split(",") if r.strip()]
    embedders = {
        runtime: Embedder(
            settings.embedder_model,
            settings.embedder_device,
            settings.embedder_batch_size,
            runtime=runtime,
            cache_dir=Settings().embedder_cache(),
        )
        for runtime in runtimes
    }
    embedder = embedders[runtimes[0]]  # embeds the chunks' sentences; the others only embed questions
    for each in embedders.values():
        each.embed(["warm-up"])
    print(f"# Retrieval: sizes {', '.join(f'{s:,}' for s in sizes)}; {per_language} questions per language")
    print(f"machine: {machine()}")
    print(f"embedder runtimes: {', '.join(e.runtime_in_use for e in embedders.values())}")
    started = time.perf_counter()
    pool = SentencePool(args.data, sentences, args.seed)
    print(
        f"model loaded, {len(pool.texts)} sentences of {len(pool.passages)} passages read and analyzed "
        f"in {time.perf_counter() - started:.1f} s; embedded in {pool.embed(embedder):.1f} s\n"
    )
    corpus = SyntheticCorpus(pool, args.seed)

    rows, build_rows, stage_rows, write_rows, notes = [], [], [], [], []
    profile_text = ""
    with tempfile.TemporaryDirectory(prefix="rag-retrieval-bench-") as folder:
        root = Path(folder)
        catalog = Catalog(root / "catalog.sqlite")
        catalog.create_kb(KB)
        vectors = ChromaVectorStore(path=root / "chroma")
        keywords = KeywordIndex(root / "keyword.sqlite", analyzer=pool.analyzer)
        retrievers = {
            runtime: HybridRetriever(each, vectors, keywords, catalog, settings.candidates)
            for runtime, each in embedders.items()
        }
        retriever = retrievers[runtimes[0]]
        deadline = time.monotonic() + args.max_build_minutes * 60
        count = 0
        for size in sizes:
            build = Stopwatch()
            load = OtherLoad()
            began = time.perf_counter()
            progress(f"growing to {size:,} chunks")
            reached, stopped = grow(corpus, catalog, vectors, keywords, count, size, build, deadline)
            build_s = time.perf_counter() - began
            added = reached - count
            count = reached
            rate = added / build_s if build_s else float("nan")
            progress(f"{count:,} chunks built in {build_s:.0f} s ({rate:.0f} chunks/s), RSS {rss_mb():.0f} MiB")
            memory = rss_mb()
            cold_ms = first_query_ms(retriever, questions["zh"][0])  # Chinese: BM25 alone, no embedding
            build_rows.append(
                [f"{count:,}", f"{added:,}", f"{build_s:.0f}", f"{rate:.0f}"]
                + [f"{build.seconds[s]:.0f}" for s in ("chroma add", "keyword terms add", "catalog")]
                + [f"{cold_ms / 1000:.1f}", f"{rss_mb() - memory:+.0f}", load.note()]
            )
            progress(f"first question after the write: {cold_ms / 1000:.1f} s")
            if not stopped:
                added_ms, deleted_ms, steady_ms, count = after_small_writes(
                    corpus, catalog, vectors, keywords, retriever, count, questions["zh"][1]
                )
                write_rows.append([f"{count:,}", f"{steady_ms:.1f}", f"{added_ms:.1f}", f"{deleted_ms:.1f}"])
                progress(f"next question after adding a document {added_ms:.1f} ms, after deleting it {deleted_ms:.1f}")
            if stopped:
                remaining = (size - count) / rate if rate else float("inf")
                notes.append(
                    f"stopped at {count:,} of {size:,} chunks: {stopped}; at {rate:.0f} chunks/s the rest would "
                    f"take {remaining / 60:.0f} more minutes"
                )
            load = OtherLoad()
            for lang, qs in questions.items():
                for runtime, each in retrievers.items():
                    if lang == "zh" and runtime != runtimes[0]:
                        continue  # Chinese questions skip MiniLM's dense side: no embedding to compare
                    watch = Stopwatch()
                    times = measure_queries(timed_parts(each, watch), qs, watch)
                    p = percentiles(times)
                    rows.append(
                        [f"{count:,}", lang, runtime, f"{p['p50']:.1f}", f"{p['p95']:.1f}", f"{max(times):.1f}",
                         f"{rss_mb():.0f}", f"{peak_rss_mb():.0f}"]
                    )  # fmt: skip
                    progress(f"{count:,} chunks, {lang}, {runtime}: p50 {p['p50']:.1f} ms, p95 {p['p95']:.1f} ms")
                    per_query = {stage: 1000 * s / len(qs) for stage, s in watch.seconds.items()}
                    stage_rows.append(
                        [f"{count:,}", lang, runtime]
                        + [f"{per_query.get(s, 0):.1f}" for s in STAGES]
                        + [f"{sum(times) / len(times) - sum(per_query.values()):.1f}"]
                    )
            notes.append(f"{count:,} chunks: questions measured while {load.note()}")
            if args.profile and (size == sizes[-1] or stopped):
                profile_text = profiled(retriever, questions["en"])
            disk = f"disk: chroma {folder_mib(root / 'chroma'):.0f} MiB, keyword.sqlite "
            disk += f"{(root / 'keyword.sqlite').stat().st_size / 2**20:.0f} MiB"
            notes.append(f"{count:,} chunks: {disk}")
            if stopped:
                break

    print("## Latency of HybridRetriever.run (ms) and memory (MiB)")
    print(
        table(
            ["chunks", "lang", "embedder", "p50", "p95", "max", "RSS", "peak RSS"],
            rows,
        )
    )
    print("\n## Mean ms per question by part (timed from outside; 'fusion + rest' is the retriever's own work)")
    print(table(["chunks", "lang", "embedder", *STAGES, "fusion + rest"], stage_rows))
    print("\n## Building (seconds); the first question after a write rebuilds BM25 from SQLite")
    print(
        table(
            [
                "chunks",
                "added",
                "seconds",
                "chunks/s",
                "chroma add",
                "keyword add",
                "catalog",
                "first question after (s)",
                "its RSS growth (MiB)",
                "load",
            ],
            build_rows,
        )
    )
    print(f"\n## A live KB: the next question after one document ({CHUNKS_PER_DOCUMENT} chunks) is written (ms)")
    print(table(["chunks", "nothing changed", "after adding a document", "after deleting it"], write_rows))
    print()
    for note in notes:
        print(f"- {note}")
    if profile_text:
        print("\n## cProfile (by own time) of the English questions at the largest size, asked again\n" + profile_text)
    return 0


STAGES = ("query embedding", "chroma query + get", "bm25 search", "catalog ready")

if __name__ == "__main__":
    sys.exit(main())
