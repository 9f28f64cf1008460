"""Does sharing one vector among log chunks of the same template hurt retrieval? Both settings, one run.

``KnowledgeBases(share_template_vectors=True)`` embeds only the first of the chunks whose texts are
equal up to runs of digits and hex (log lines of one template); the others are found by BM25 alone.
This script ingests the loghub samples (the raw ``*_2k.log`` of each folder) twice, into fresh data
directories, with the option off and on, and asks each knowledge base one question per event
template: the template's text with its ``<*>`` slots removed (templates left with fewer than three
words are skipped, as are tokens left with no letter or digit). Ground truth is loghub's own
parse: ``*_2k.log_structured.csv`` names each line's EventId, and a chunk is relevant to a
template's question when its lines (metadata ``line_start``..``line_end``) hold a line of it.

For each setting and log: ingest seconds, chunks, chunks with a vector (Chroma's count), tokens
embedded; dense only (``vectors.query`` with the question's embedding) and hybrid
(``HybridRetriever.run``, as ``search`` and ``ask`` call it) hit@1, hit@5, hit@10 and MRR@10; and
how many distinct templates the dense top 10 cover (diversity). Then the on/off ratios.

One embedder serves both settings, so the model loads once; the questions' embeddings are computed
once. The option is set through ``Settings`` (``RAG_SHARE_TEMPLATE_VECTORS``), so ``Engine`` builds the
knowledge bases as the service does.

Usage::

    python bench/log_retrieval_bench.py                     # HDFS, Apache, Zookeeper, Proxifier (~3 minutes on 2 cores)
    python bench/log_retrieval_bench.py --quick             # HDFS only, about a minute and a half
    python bench/log_retrieval_bench.py ../shared/data/logs/Zookeeper ../shared/data/logs/Apache
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from measure import OtherLoad, machine, progress, ratio, table

from rag.engine import Engine
from rag.settings import Settings
from stores import Embedder, Hit

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LOGS = ("HDFS", "Apache", "Zookeeper", "Proxifier")
QUICK = ("HDFS",)
TOP = 10  # hits looked at per question: hit@10, MRR@10, templates in the top 10
MIN_WORDS = 3
OPTION = "share_template_vectors"
OTHERS = "others' cores"
METRICS = ("hit@1", "hit@5", "hit@10", "MRR@10")


@dataclass
class LogSet:
    """One loghub sample: the raw log, each line's template and one question per template."""

    name: str
    log: Path
    events: dict[int, str]  # 1-based line number → EventId
    questions: list[tuple[str, str]]  # (EventId, question)

    @property
    def kb(self) -> str:
        return f"log-{self.name.lower()}"

    def templates_of(self, hit: Hit) -> set[str]:
        """The EventIds of the lines a retrieved chunk holds."""
        first = int(hit.chunk.metadata["line_start"])
        last = int(hit.chunk.metadata.get("line_end", first))
        return {self.events[n] for n in range(first, last + 1) if n in self.events}


def question_of(template: str) -> str:
    """The template without its ``<*>`` slots and without tokens left as bare punctuation."""
    words = re.sub(r"<\*>", " ", template).split()
    return " ".join(w for w in words if re.search(r"\w", w) and w.strip("_"))


def read_log_set(folder: Path) -> LogSet:
    (log,) = folder.glob("*_2k.log")  # loghub's layout: one raw 2k sample per folder
    with open(f"{log}_structured.csv", encoding="utf-8", newline="") as structured:
        events = {int(row["LineId"]): row["EventId"] for row in csv.DictReader(structured)}
    with open(f"{log}_templates.csv", encoding="utf-8", newline="") as templates:
        rows = [(row["EventId"], question_of(row["EventTemplate"])) for row in csv.DictReader(templates)]
    present = set(events.values())  # a template the sample never uses has no answer
    questions = [(event, q) for event, q in rows if event in present and len(q.split()) >= MIN_WORDS]
    return LogSet(folder.name, log, events, questions)


class CountingEmbedder(Embedder):
    """The real embedder; while ``texts`` is a list, the documents it embeds are appended to it."""

    texts: list[str] | None = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.texts is not None:
            self.texts.extend(texts)
        return super().embed(texts)

    def tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model read for ``texts`` (each cut at its maximum sequence length, as it is cut)."""
        if not texts:
            return 0
        limit = self.model.max_seq_length
        prefixed = [self.document_prefix + t for t in texts]
        ids = self.model.tokenizer(prefixed, add_special_tokens=True, verbose=False)["input_ids"]
        return sum(min(len(i), limit) for i in ids)


def build_engine(folder: Path, embedder: CountingEmbedder, share: bool) -> Engine:
    """An engine on a fresh data directory, with the shared embedder and the option set to ``share``:
    the knowledge bases are built as the service builds them."""
    engine = Engine(Settings(data_dir=folder, **{OPTION: share}))
    engine.embedder = embedder  # seeds the cached property: the model is loaded once for both settings
    return engine


@dataclass
class Scores:
    """Per-question figures, to be averaged per log or over all questions."""

    ranks: list[int] = field(default_factory=list)  # rank of the first relevant hit in the top 10; 0 = none
    templates: list[int] = field(default_factory=list)  # distinct templates in the top 10

    def add(self, log_set: LogSet, event: str, hits: list[Hit]) -> None:
        held = [log_set.templates_of(h) for h in hits[:TOP]]
        self.ranks.append(next((n for n, events in enumerate(held, start=1) if event in events), 0))
        self.templates.append(len(set().union(*held)))

    def extend(self, other: Scores) -> None:
        self.ranks += other.ranks
        self.templates += other.templates

    def metrics(self) -> dict[str, float]:
        n = len(self.ranks) or 1
        found = [r for r in self.ranks if r]
        return {
            "hit@1": sum(r <= 1 for r in found) / n,
            "hit@5": sum(r <= 5 for r in found) / n,
            "hit@10": len(found) / n,
            "MRR@10": sum(1 / r for r in found) / n,
            "templates@10": sum(self.templates) / n,
        }


@dataclass
class LogResult:
    questions: int = 0
    ingest_s: float = 0.0
    chunks: int = 0
    vectors: int = 0
    tokens: int = 0
    others_core_s: float = 0.0  # cores other processes kept busy × seconds, during the ingest
    dense: Scores = field(default_factory=Scores)
    hybrid: Scores = field(default_factory=Scores)

    def extend(self, other: LogResult) -> None:
        self.questions += other.questions
        self.ingest_s += other.ingest_s
        self.chunks += other.chunks
        self.vectors += other.vectors
        self.tokens += other.tokens
        self.others_core_s += other.others_core_s
        self.dense.extend(other.dense)
        self.hybrid.extend(other.hybrid)

    def row(self) -> dict[str, float]:
        """Every figure of the tables, by column name."""
        dense, hybrid = self.dense.metrics(), self.hybrid.metrics()
        return {
            "questions": self.questions,
            "ingest s": self.ingest_s,
            OTHERS: self.others_core_s / self.ingest_s if self.ingest_s else 0.0,
            "chunks": self.chunks,
            "with vector": self.vectors,
            "tokens embedded": self.tokens,
            **{f"dense {m}": dense[m] for m in METRICS},
            "dense templates@10": dense["templates@10"],
            **{f"hybrid {m}": hybrid[m] for m in METRICS},
        }


def measure_log(
    engine: Engine, share: bool, log_set: LogSet, embedder: CountingEmbedder, query_vectors: dict[str, np.ndarray]
) -> LogResult:
    """Ingest one log into ``engine`` (option set to ``share``), then ask its questions, dense and hybrid."""
    result = LogResult(questions=len(log_set.questions))
    embedder.texts = []
    load = OtherLoad()
    started = time.perf_counter()
    report = engine.knowledge_bases.ingest(log_set.kb, [log_set.log])
    result.ingest_s = time.perf_counter() - started
    result.others_core_s = load.cores() * result.ingest_s
    embedded, embedder.texts = embedder.texts, None
    if not report.ok:
        raise RuntimeError(f"{log_set.log}: {report.failed}")
    result.chunks, result.vectors = report.chunks, engine.vectors.count(log_set.kb)
    result.tokens = embedder.tokens(embedded)
    for event, question in log_set.questions:
        result.dense.add(log_set, event, engine.vectors.query(log_set.kb, query_vectors[question], TOP))
        result.hybrid.add(log_set, event, engine.retriever.run(log_set.kb, question, top_k=TOP).hits)
    figures = result.row()
    progress(
        f"sharing {'on' if share else 'off'}, {log_set.name}: {result.ingest_s:.1f} s, {result.chunks} chunks, "
        f"{result.vectors} with a vector; dense hit@10 {figures['dense hit@10']:.2f}, "
        f"hybrid hit@10 {figures['hybrid hit@10']:.2f}"
    )
    return result


def run_both(
    log_sets: list[LogSet], embedder: CountingEmbedder, query_vectors: dict[str, np.ndarray]
) -> dict[bool, dict[str, LogResult]]:
    """Each log ingested with the option off and on, one after the other, the first of the two alternating:
    the machine is shared, and load that comes and goes should fall on both settings alike."""
    runs: dict[bool, dict[str, LogResult]] = {False: {}, True: {}}
    with (
        tempfile.TemporaryDirectory(prefix="rag-log-retrieval-bench-off-") as off,
        tempfile.TemporaryDirectory(prefix="rag-log-retrieval-bench-on-") as on,
    ):
        engines = {False: build_engine(Path(off), embedder, False), True: build_engine(Path(on), embedder, True)}
        for n, log_set in enumerate(log_sets):
            for share in (False, True) if n % 2 == 0 else (True, False):
                runs[share][log_set.name] = measure_log(engines[share], share, log_set, embedder, query_vectors)
    return runs


def with_total(results: dict[str, LogResult]) -> dict[str, LogResult]:
    """The logs' results and, with more than one log, all of them pooled (metrics over all questions)."""
    if len(results) < 2:
        return results
    total = LogResult()
    for result in results.values():
        total.extend(result)
    return {**results, "all": total}


def formatted(column: str, value: float) -> str:
    if column == "ingest s":
        return f"{value:.1f}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if column.split()[-1] in METRICS else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, help="loghub folders (default: the four under --data/logs)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--quick", action="store_true", help="one log (HDFS)")
    args = parser.parse_args(argv)
    folders = args.folders or [args.data / "logs" / name for name in (QUICK if args.quick else LOGS)]
    log_sets = [read_log_set(folder) for folder in folders]

    settings = Settings(data_dir=Path(tempfile.gettempdir()))
    embedder = CountingEmbedder(
        settings.embedder_model, settings.embedder_device, settings.embedder_batch_size, settings.embedder_languages
    )
    questions = sum(len(s.questions) for s in log_sets)
    print(f"# Log retrieval with {OPTION} off and on: {', '.join(s.name for s in log_sets)}; {questions} questions")
    print(f"machine: {machine()}")
    started = time.perf_counter()
    embedder.embed(["warm-up"])  # the model loads once; not part of either setting's ingest time
    query_vectors = {q: embedder.embed_query(q) for s in log_sets for _, q in s.questions}
    print(f"model loaded and {len(query_vectors)} questions embedded in {time.perf_counter() - started:.1f} s\n")

    runs = run_both(log_sets, embedder, query_vectors)
    rows = {share: {name: r.row() for name, r in with_total(results).items()} for share, results in runs.items()}
    columns = list(next(iter(rows[False].values())))
    for share in (False, True):
        print(f"## {OPTION}={share}")
        cells = [[name, *(formatted(c, v) for c, v in r.items())] for name, r in rows[share].items()]
        print(table(["log", *columns], cells))
        print()
    print("## on / off")
    compared = [c for c in columns if c not in {"questions", OTHERS}]
    print(
        table(
            ["log", *compared],
            [[name, *(ratio(on[c], rows[False][name][c]) for c in compared)] for name, on in rows[True].items()],
        )
    )
    print()
    print(f"- {OTHERS}: cores other processes kept busy during the ingest (the machine is shared; 2 cores)")
    print(f"- hit@k: share of questions with a chunk holding a line of the template among the first k; top {TOP} asked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
