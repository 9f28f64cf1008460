"""The service's own overhead on ``/ask``: time to the first streamed token and to the end, less the LLM's time.

A knowledge base is filled with real passages (SQuAD 2.0 and CMRC 2018, as ``rag eval`` files them)
in a child process, then the real service (``uvicorn api.app:create_app``, one worker, loopback) is
started over it, as bench/soak.py does, and clients ask the corpora's own dev questions with
``stream: true``, 1 client and then 16 at a time. Each request is timed by its client; the answer
event's ``timings`` (ms) say how long the generator itself took, which is taken off:

- first-token overhead = client time to the first ``token`` event − the LLM's own time to its first
  token (``timings.first_token − timings.retrieve``; 0 for the extractive generator and refusals);
- total overhead = client time to the end of the stream − ``timings.generate``.

What is left is retrieval (embedding, Chroma, BM25, fusion), the prompt, citation checks, FastAPI,
SSE and HTTP on loopback. The generator is the extractive one by default; ``--llm-url`` asks an
OpenAI-compatible server instead (``--llm-model``, ``--llm-api-key``).

Usage::

    python bench/service_bench.py              # all passages, 1 client × 100 and 16 clients × 10 questions
    python bench/service_bench.py --quick      # 60 passages per corpus, fewer questions
    python bench/service_bench.py --llm-url http://127.0.0.1:8001/v1 --llm-model smollm2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from measure import OtherLoad, machine, table
from soak import start_service

from rag.evaluation import read_corpus, read_queries
from rag.evaluation.metrics import percentiles

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KB = "bench"
CORPORA = ("squad2", "cmrc2018")


def fill(data_dir: Path, data: Path, passages: int) -> None:
    """The first ``passages`` passages of each corpus into the KB (run in a child process: it loads Chroma)."""
    from rag.engine import Engine
    from rag.evaluation.runner import Evaluator
    from rag.settings import Settings

    engine = Engine(Settings(data_dir=data_dir))
    evaluator = Evaluator(engine.knowledge_bases, engine.answerer)
    for name in CORPORA:
        corpus = data / name / "corpus.jsonl"
        report = evaluator.ingest(KB, corpus, read_corpus(corpus)[:passages]).report
        print(f"{name}: {len(report.added)} passages, {report.chunks} chunks", flush=True)


def questions(data: Path, passages: int, count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (language, question) pairs, half English half Chinese, about passages the KB holds."""
    rng = random.Random(seed)
    chosen = []
    for name, lang in zip(CORPORA, ("en", "zh"), strict=True):
        held = {p.pid for p in read_corpus(data / name / "corpus.jsonl")[:passages]}
        pool = [q.question for q in read_queries(data / name / "queries_dev.jsonl") if q.gold_pid in held]
        chosen += [(lang, q) for q in rng.sample(pool, min(len(pool), (count + 1) // 2))]
    rng.shuffle(chosen)
    return chosen[:count]


def ask(client: httpx.Client, question: str) -> dict[str, Any]:
    """One streamed ``/ask``: client-side times (ms) and the answer's own timings."""
    started = time.perf_counter()
    first = None
    answer: dict[str, Any] | None = None
    event = ""
    with client.stream("POST", f"/kbs/{KB}/ask", json={"question": question, "stream": True}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                if event == "token" and first is None:
                    first = time.perf_counter()
                elif event == "answer":
                    answer = json.loads(line[6:])
                elif event == "error":
                    raise RuntimeError(f"the service answered with an error event: {line[6:]}")
    ended = time.perf_counter()
    if answer is None:
        raise RuntimeError("the stream ended without an answer event")
    timings = answer["timings"]
    llm_first = timings["first_token"] - timings["retrieve"] if "first_token" in timings else 0.0
    ttft = ((first or ended) - started) * 1000
    total = (ended - started) * 1000
    return {
        "ttft": ttft,
        "total": total,
        "overhead_ttft": ttft - llm_first,
        "overhead_total": total - timings.get("generate", 0.0),
        "retrieve": timings["retrieve"],
        "verify": timings.get("verify", 0.0),
        "http": total - timings["total"],
        "generate": timings.get("generate", 0.0),
        "refused": not answer["answerable"],
    }


def run_clients(base_url: str, work: list[tuple[str, str]], clients: int) -> tuple[list[dict[str, Any]], float]:
    """``work`` shared by ``clients`` threads, each asking one question at a time; results and seconds."""
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    lock = threading.Lock()
    queue = list(work)

    def client_loop() -> None:
        with httpx.Client(base_url=base_url, timeout=300) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    lang, question = queue.pop()
                try:
                    result = {**ask(client, question), "lang": lang}
                except (httpx.HTTPError, RuntimeError) as error:
                    with lock:
                        errors.append(f"{question!r}: {error}")
                    continue
                with lock:
                    results.append(result)

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        print(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return results, seconds


def summary_rows(clients: int, results: list[dict[str, Any]], seconds: float) -> list[list[str]]:
    rows = []
    for lang in ("all", "en", "zh"):
        chosen = [r for r in results if lang == "all" or r["lang"] == lang]
        if not chosen:
            continue
        cells = [str(clients), lang, str(len(chosen))]
        for key in ("overhead_ttft", "overhead_total", "retrieve", "http", "generate"):
            p = percentiles([r[key] for r in chosen])
            cells.append(f"{p['p50']:.1f} / {p['p95']:.1f}")
        refused = sum(r["refused"] for r in chosen)
        cells += [f"{100 * refused / len(chosen):.0f}%", f"{len(chosen) / seconds:.1f}" if lang == "all" else ""]
        rows.append(cells)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--quick", action="store_true", help="60 passages per corpus, fewer questions")
    parser.add_argument("--passages", type=int, default=None, help="passages per corpus (default: all)")
    parser.add_argument("--clients", default="1,16", help="concurrent clients, comma-separated")
    parser.add_argument("--questions", type=int, default=None, help="questions per client count (default 100/160)")
    parser.add_argument("--llm-url", help="an OpenAI-compatible server instead of the extractive generator")
    parser.add_argument("--llm-model", default=None)
    parser.add_argument("--llm-api-key", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fill-only", type=Path, help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args(argv)
    passages = args.passages or (60 if args.quick else 100_000)
    if args.fill_only:
        fill(args.fill_only, args.data, passages)
        return 0
    counts = sorted({int(c) for c in args.clients.split(",")})
    if not counts or counts[0] < 1 or counts[-1] > 64:
        parser.error("--clients must be between 1 and 64")

    print(f"# Service overhead of /ask (stream): clients {', '.join(map(str, counts))}")
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="rag-service-bench-") as folder:
        data_dir = Path(folder) / "data"
        started = time.perf_counter()
        command = [sys.executable, __file__, "--fill-only", str(data_dir), "--passages", str(passages)]
        subprocess.run([*command, "--data", str(args.data)], check=True)
        print(f"knowledge base filled in {time.perf_counter() - started:.0f} s")
        if args.llm_url:
            os.environ.update({"RAG_LLM_BACKEND": "openai", "RAG_LLM_URL": args.llm_url})
            if args.llm_model:
                os.environ["RAG_LLM_MODEL"] = args.llm_model
            if args.llm_api_key:
                os.environ["RAG_LLM_API_KEY"] = args.llm_api_key
        process, base_url = start_service(data_dir, 1, None)
        rows = []
        try:
            for clients in counts:
                count = args.questions or (20 if args.quick else 100) * (1 if clients == 1 else 2)
                count = max(count, clients)
                work = questions(args.data, passages, count, args.seed + clients)
                run_clients(base_url, work[: min(4, len(work))], 1)  # warm-up: first English and Chinese asks
                load = OtherLoad([process.pid])
                results, seconds = run_clients(base_url, work, clients)
                rows += summary_rows(clients, results, seconds)
                print(f"{clients} client(s): {len(results)} requests in {seconds:.1f} s, {load.note()}")
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    print()
    print("ms, p50 / p95: overhead = client time less the LLM's own (first token; whole generation);")
    print("retrieve = server's retrieval; http = client total less the server's total (FastAPI, SSE, loopback)")
    header = ["clients", "lang", "n", "first-token overhead", "total overhead", "retrieve", "http", "generate"]
    print(table([*header, "refused", "req/s"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
