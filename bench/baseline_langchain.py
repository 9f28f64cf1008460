"""The classic LangChain pipeline on an evaluation corpus: the baseline rag-kb is measured against.

Load the passages as Documents, RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=0), the
same embedder (bundled all-MiniLM-L6-v2 through sentence-transformers), Chroma, top-k similarity. The
pipeline itself is ``rag.evaluation.baseline`` (``rag eval --baseline`` runs it beside rag-kb and the
package never imports bench/); this script runs it alone and prints its scores as JSON.

Usage::

    pip install -e '.[bench]'
    python bench/baseline_langchain.py --corpus ../shared/data/squad2/corpus.jsonl \
        --queries ../shared/data/squad2/queries_dev.jsonl --top-k 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the embedder is bundled: nothing may be downloaded
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from rag.evaluation import DatasetError, read_corpus, read_queries
from rag.evaluation.baseline import evaluate_baseline
from stores import Embedder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="JSONL: pid, title, text, lang")
    parser.add_argument("--queries", type=Path, required=True, help="JSONL: qid, question, answers, gold_pid, ...")
    parser.add_argument("--top-k", type=int, default=4, help="chunks whose text is checked for the answer")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")
    try:
        passages, queries = read_corpus(args.corpus), read_queries(args.queries)[: args.limit]
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report = evaluate_baseline(Embedder(), passages, queries, args.top_k)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
