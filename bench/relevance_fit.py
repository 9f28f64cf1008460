"""Fit the relevance gate's weights on some development slices and check them on others.

Each slice is a folder with ``corpus.jsonl`` and ``queries_dev.jsonl`` (the shared data's format). A
slice named ``NAME:trad`` is a traditional-Chinese copy of ``NAME`` made here with OpenCC (``s2t``:
passages, titles, questions and answers), so the analyzer's script normalization is checked on text the
weights never saw. Each corpus is ingested into its own KB under ``--data-dir`` (kept: a second run
ingests nothing), every answerable and not-in-KB question is retrieved once, and the gate's signals
(rag/relevance.py) are recorded. SQuAD's own unanswerable questions are on-topic (the passage is there,
the fact is not): retrieval cannot refuse those, so they are left out here, as in the targets.

A logistic regression is fitted on the ``--fit`` slices (answerable = 1, not-in-KB = 0, each slice
weighted equally), and every slice is scored at the thresholds of the curve: answerable answered and
not-in-KB refused. The weights to paste into ``DEFAULT_WEIGHTS`` are printed last.

Usage::

    python bench/relevance_fit.py --slice cmrc=../shared/data/cmrc2018 --slice squad=../shared/data/squad2 \\
        --slice cmrc-trad=../shared/data/cmrc2018:trad --fit cmrc,squad --data-dir /tmp/relevance-fit
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import opencc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.chunk import Chunk
from rag.engine import Engine
from rag.evaluation.dataset import Passage, Query, read_corpus, read_queries
from rag.evaluation.runner import Evaluator, default_kb_name
from rag.relevance import GATE_DEPTH, SIGNALS, RelevanceGate, signals
from rag.settings import Settings
from stores.hit import Hit

THRESHOLDS = (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)


def load_slice(spec: str, scratch: Path) -> tuple[Path, list[Passage], list[Query]]:
    folder, _, variant = spec.partition(":")
    corpus, queries = Path(folder) / "corpus.jsonl", Path(folder) / "queries_dev.jsonl"
    passages, questions = read_corpus(corpus), read_queries(queries)
    if variant == "trad":
        convert = opencc.OpenCC("s2t").convert
        passages = [replace(p, title=convert(p.title), text=convert(p.text)) for p in passages]
        questions = [
            replace(q, question=convert(q.question), answers=tuple(map(convert, q.answers))) for q in questions
        ]
        corpus = scratch / f"{Path(folder).name}-trad" / "corpus.jsonl"
        corpus.parent.mkdir(parents=True, exist_ok=True)
        corpus.write_text(
            "".join(
                json.dumps({"pid": p.pid, "title": p.title, "text": p.text, "lang": p.lang}, ensure_ascii=False) + "\n"
                for p in passages
            ),
            encoding="utf-8",
        )
    elif variant:
        raise SystemExit(f"unknown variant {variant!r} in {spec!r} (only :trad)")
    return corpus, passages, questions


def record(engine: Engine, spec: str, scratch: Path) -> list[dict]:
    corpus, passages, questions = load_slice(spec, scratch)
    kb = default_kb_name(corpus)
    evaluator = Evaluator(engine.knowledge_bases, engine.answerer)
    evaluator.ingest(kb, corpus, passages)
    rows = []
    for query in questions:
        if not query.answerable and not query.not_in_kb:
            continue
        hits = engine.retriever.run(kb, query.question, GATE_DEPTH).hits
        rows.append({"qid": query.qid, "answerable": query.answerable, "hits": [_raw(h) for h in hits]})
    return rows


def _raw(hit: Hit) -> dict:
    """What the gate reads of a hit, so signals can be recomputed from the recorded file alone."""
    return {"doc": hit.chunk.doc_id, "index": hit.chunk.index, "relevance": hit.relevance, "scores": hit.scores}


def _hits(row: dict) -> list[Hit]:
    return [
        Hit(Chunk(f"{h['doc']}:{h['index']}", h["doc"], h["index"], "", 0, 0, {}), 0.0, h["relevance"], h["scores"])
        for h in row["hits"]
    ]


def with_signals(slices: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Each recorded question with the gate's signals of its hits (``x``) and whether an identifier decided."""
    out: dict[str, list[dict]] = {}
    for name, rows in slices.items():
        out[name] = []
        for row in rows:
            found = signals(_hits(row))
            out[name].append({**row, "x": found.vector(), "id": found.identified})
    return out


def fit(slices: dict[str, list[dict]], names: list[str]) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    x, y, w = [], [], []
    for name in names:
        rows = slices[name]
        positives = sum(r["answerable"] for r in rows)
        for r in rows:  # each slice, and each class within it, counts equally
            x.append(r["x"])
            y.append(int(r["answerable"]))
            w.append(1.0 / (2 * (positives if r["answerable"] else len(rows) - positives)))
    model = LogisticRegression(C=100.0, max_iter=2000).fit(np.array(x), np.array(y), sample_weight=np.array(w))
    weights = {"bias": round(float(model.intercept_[0]), 3)}
    weights.update({n: round(float(c), 3) for n, c in zip(SIGNALS, model.coef_[0], strict=True)})
    return weights


def shares(gate: RelevanceGate, rows: list[dict], threshold: float) -> tuple[float, float]:
    from rag.relevance import RelevanceSignals

    scores = [(r["answerable"], gate.score(RelevanceSignals(*r["x"], identified=r["id"]))) for r in rows]
    answered = [s >= threshold for a, s in scores if a]
    refused = [s < threshold for a, s in scores if not a]
    return float(np.mean(answered)) if answered else float("nan"), float(np.mean(refused)) if refused else float("nan")


def report(title: str, weights: dict[str, float], slices: dict[str, list[dict]]) -> None:
    gate = RelevanceGate(weights=weights)
    print(f"\n## {title}\nweights: {weights}")
    print("| threshold | " + " | ".join(f"{n} answered / not-in-KB refused" for n in slices) + " |")
    print("|---|" + "---|" * len(slices))
    for t in THRESHOLDS:
        cells = [shares(gate, rows, t) for rows in slices.values()]
        print(f"| {t} | " + " | ".join(f"{a:.3f} / {r:.3f}" for a, r in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slice", action="append", required=True, help="NAME=FOLDER or NAME=FOLDER:trad")
    parser.add_argument("--fit", required=True, help="comma-separated slice names to fit on")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "relevance-fit")
    parser.add_argument("--signals", type=Path, help="a JSON file of recorded signals: read if there, else written")
    args = parser.parse_args()
    specs = dict(s.split("=", 1) for s in args.slice)
    if args.signals and args.signals.exists():
        slices = json.loads(args.signals.read_text())
    else:
        engine = Engine(Settings(data_dir=args.data_dir))
        slices = {name: record(engine, spec, args.data_dir) for name, spec in specs.items()}
        if args.signals:
            args.signals.write_text(json.dumps(slices))
    slices = with_signals(slices)
    fitted_on = args.fit.split(",")
    report("current defaults (rag/relevance.py)", dict(RelevanceGate().weights), slices)
    for name in slices:  # the reverse checks: fitted on one slice, scored on all
        report(f"fitted on {name} only", fit(slices, [name]), slices)
    weights = fit(slices, fitted_on)
    report(f"fitted on {', '.join(fitted_on)}", weights, slices)
    print(f"\nDEFAULT_WEIGHTS = {json.dumps(weights)}")


if __name__ == "__main__":
    main()
