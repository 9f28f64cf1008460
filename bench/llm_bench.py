"""Tokens/s, first-token and first-visible-text latency of GGUF models, for two llama.cpp builds in one run.

Each (build, model) pair runs in its own process (a build is a folder of llama.cpp libraries, chosen with
llama-cpp-python's ``LLAMA_CPP_LIB_PATH``), round after round, interleaved, so that other load on the machine
falls on all of them alike. The prompt is the answerer's own: the citation prompt over a real CMRC passage
(``吴淞路闸桥``, ~400 prompt tokens). Per answer it records when the first token came, when the first verified
sentence could be shown (the answerer's ``VerifiedSentences``), and the generation speed after the first token.

Usage::

    python bench/llm_bench.py                                         # the installed build, both bundled models
    python bench/llm_bench.py --build avx=/tmp/llama-avx-lib --build variants=default --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import OtherLoad, machine, progress, table

PASSAGE = (
    "吴淞路闸桥是中国上海市已拆除的桥梁，原址接近苏州河与黄浦江交汇处，外白渡桥西侧，南端连接外滩（中山东一路），"
    "北端连接吴淞路。20世纪80年代，上海车辆猛增，经济活跃，外白渡桥车辆严重堵塞，加上当时苏州河环境整治需要，"
    "1989年吴淞路闸桥动工兴建，1991年4月完工，建成时为双向5车道，大大减轻了外白渡桥的交通压力。"
    "闸桥既是公路桥，也是苏州河口的水闸，故名“闸桥”。自吴淞路闸桥建成起，外白渡桥改为由南向北单向通行。"
    "为配合外白渡桥重新通车和外滩综合改造工程，2009年4月起，吴淞路闸桥由南向北的通行封闭，10月17日起，"
    "吴淞路闸桥由北向南的通行封闭，同日开始拆除工作。根据计划，吴淞路闸桥拆除工作于2009年12月底前完成。"
)
QUESTION = "吴淞路闸桥是哪一年拆除的？"


def worker(model: str, answers: int, max_tokens: int, threads: int | None) -> dict:
    """Load ``model`` with the build in ``LLAMA_CPP_LIB_PATH`` (or the installed one) and time ``answers``."""
    from ingest.chunk import Chunk
    from rag.answerer import VerifiedSentences
    from rag.llms.base import GenerationOptions
    from rag.llms.bundled_models import BUNDLED, assemble, default_cache_dir
    from rag.llms.llama_cpp_chat import LlamaCppLLM, cpu_variant
    from rag.prompts import build_messages
    from stores.hit import Hit

    path = assemble(BUNDLED[model], default_cache_dir()) if model in BUNDLED else Path(model)
    llm = LlamaCppLLM(path, n_ctx=2048, n_threads=threads)
    started = time.perf_counter()
    llama = llm._load()
    load_s = time.perf_counter() - started
    hits = [Hit(Chunk("c", "d", 0, PASSAGE, 0, len(PASSAGE), {"title": "吴淞路闸桥"}), 1.0, 1.0)]
    messages = build_messages(QUESTION, hits, language="zh")
    prompt_tokens = 0
    options = GenerationOptions(max_tokens=max_tokens, temperature=0)
    runs = []
    for _ in range(answers):  # each answer is timed, the first included (a first question pays the same)
        llama.reset()  # no prompt reuse between answers: each pays for its prompt, as a new question does
        verified = VerifiedSentences(hits, 0.5)
        started = time.perf_counter()
        first = visible = None
        tokens = 0
        text = ""
        for piece in llm.stream(messages, options):
            now = time.perf_counter()
            first = first or now
            tokens += 1
            text += piece
            if visible is None and verified.feed(piece):
                visible = now
        ended = time.perf_counter()
        if visible is None and verified.finish():
            visible = ended
        prompt_tokens = llama.n_tokens - tokens  # what the context holds, less the answer (±1 token)
        runs.append(
            {
                "first_token_s": first - started,
                "first_visible_s": None if visible is None else visible - started,
                "tokens": tokens,
                "tokens_per_s": (tokens - 1) / (ended - first) if tokens > 1 else 0.0,
                "text": text,
            }
        )
    return {"load_s": load_s, "prompt_tokens": prompt_tokens, "variant": cpu_variant() or "linked in", "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="append", help="NAME=LIBDIR, or NAME=default (the installed build)")
    parser.add_argument("--model", action="append", help="bundled model name or GGUF path (default: both bundled)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--answers", type=int, default=2, help="answers per round and pair, all timed")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.answers, args.max_tokens, args.threads), ensure_ascii=False))
        return

    from rag.llms.bundled_models import BUNDLED

    builds = dict(b.split("=", 1) for b in args.build or ["installed=default"])
    models = args.model or list(BUNDLED)
    results: dict[tuple[str, str], list[dict]] = {}
    info: dict[tuple[str, str], dict] = {}
    load = OtherLoad()
    for round_ in range(args.rounds):
        for model in models:
            for build, lib in builds.items():
                env = dict(os.environ)
                if lib != "default":
                    env["LLAMA_CPP_LIB_PATH"] = lib
                command = [sys.executable, __file__, "--worker", model, "--answers", str(args.answers),
                           "--max-tokens", str(args.max_tokens)]
                if args.threads:
                    command += ["--threads", str(args.threads)]
                out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                if out.returncode:
                    raise SystemExit(f"{build} {model} failed:\n{out.stderr[-3000:]}")
                report = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault((build, model), []).extend(report["runs"])
                info[(build, model)] = report
                run = report["runs"][-1]
                progress(f"round {round_ + 1} {build} {model} ({report['variant']}): "
                         f"{run['tokens_per_s']:.1f} tok/s, first token {run['first_token_s']:.2f} s")

    def median(key: str, runs: list[dict]) -> str:
        values = [r[key] for r in runs if r[key] is not None]
        return f"{statistics.median(values):.2f}" if values else "-"

    rows = [
        [model, build, info[(build, model)]["variant"], info[(build, model)]["prompt_tokens"],
         f"{info[(build, model)]['load_s']:.1f}", median("tokens_per_s", runs), median("first_token_s", runs),
         median("first_visible_s", runs), len(runs)]
        for (build, model), runs in results.items()
    ]
    print(machine())
    print(load.note())
    print(table(["model", "build", "CPU variant", "prompt tokens", "load s", "tokens/s", "first token s",
                 "first verified text s", "answers"], rows))
    sample = next(iter(results.values()))[-1]["text"]
    print(f"\nlast answer of the first pair: {sample!r}")


if __name__ == "__main__":
    main()
