"""Soak test: many clients mixing uploads, re-uploads, deletes, asks and searches against a live service.

Starts ``rag serve`` (uvicorn, loopback only) over a fresh data directory, runs ``--clients`` threads for
``--seconds``, then checks what the service holds against what each client was told: every accepted
document is present exactly once, every deleted one is absent, and no response was a 5xx. Prints the
request counts, errors and latency percentiles per operation. Exit status 1 if a check fails.

Each client owns its own file names, so what it expects is exact whatever the others do; the answers
it checks must cite only documents of its own knowledge base.

Usage::

    python bench/soak.py --clients 16 --seconds 60
    python bench/soak.py --workers 4          # several API processes over a Chroma server it starts
    python bench/soak.py --workers 4 --chroma-url http://127.0.0.1:8002   # or one already running

With several workers every request may land on another process than the one before, so a client's
checks (its own upload found by the next search, never an older version quoted) test that the
processes share one catalog, keyword index and vector store.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

WORDS = ("audit", "budget", "contract", "deadline", "engineer", "freight", "gateway", "harbor", "invoice", "journal")


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, operation: str, status: int, seconds: float) -> None:
        with self.lock:
            self.latencies[operation].append(seconds * 1000)
            self.statuses[operation][status] += 1

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


def document_text(client: int, name: int, version: int) -> str:
    """A small document whose facts say who wrote it and which version it is."""
    rng = random.Random(client * 1000 + name * 10 + version)
    filler = " ".join(rng.choice(WORDS) for _ in range(60))
    return (
        f"Report {client}-{name} version {version}.\n\n"
        f"The code of report {client}-{name} is {code(client, name, version)}.\n\n{filler}.\n"
    )


def code(client: int, name: int, version: int) -> str:
    """The code a document version states; :func:`quotes` finds it whole."""
    return f"K{client}X{name}V{version}"


def quotes(text: str, code: str) -> bool:
    """Whether ``text`` holds ``code`` as a whole word: K6X5V1 is not in K6X5V11."""
    return re.search(rf"\b{re.escape(code)}\b", text) is not None


class Client(threading.Thread):
    def __init__(self, number: int, base_url: str, deadline: float, tally: Tally, kbs: int) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.number = number
        self.kb = f"soak-{number % kbs}"
        self.http = httpx.Client(base_url=base_url, timeout=120)
        self.deadline = deadline
        self.tally = tally
        self.rng = random.Random(number)
        self.versions: dict[int, int] = {}  # the client's documents that must exist, and their version
        self.deleted: set[int] = set()

    def call(self, operation: str, method: str, path: str, **kwargs: object) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            self.tally.record(operation, 0, time.perf_counter() - started)
            self.tally.problem(f"{operation}: {type(error).__name__}: {error}")
            return None
        self.tally.record(operation, response.status_code, time.perf_counter() - started)
        if response.status_code >= 500:
            self.tally.problem(f"{operation} {path}: {response.status_code} {response.text[:200]}")
        return response

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            choice = self.rng.random()
            if choice < 0.25 or not self.versions:
                self.upload(self.rng.randrange(6))
            elif choice < 0.35:
                self.delete(self.rng.choice(sorted(self.versions)))
            elif choice < 0.7:
                self.ask()
            else:
                self.search()

    def upload(self, name: int) -> None:
        version = self.versions.get(name, 0) + 1
        files = {"files": (f"c{self.number}-{name}.txt", document_text(self.number, name, version).encode())}
        response = self.call("upload", "POST", f"/kbs/{self.kb}/documents", params={"wait": True}, files=files)
        if response is None or response.status_code != 200:
            return
        [outcome] = response.json()["files"]
        if outcome["outcome"] in {"added", "updated", "unchanged"}:
            self.versions[name] = version
            self.deleted.discard(name)
        else:
            self.tally.problem(f"upload c{self.number}-{name}: {outcome}")

    def delete(self, name: int) -> None:
        listing = self.call("list", "GET", f"/kbs/{self.kb}/documents")
        if listing is None or listing.status_code != 200:
            return
        mine = [d for d in listing.json() if d["name"] == f"c{self.number}-{name}.txt"]
        if len(mine) != 1:
            self.tally.problem(f"c{self.number}-{name}.txt listed {len(mine)} times before delete")
            return
        response = self.call("delete", "DELETE", f"/kbs/{self.kb}/documents/{mine[0]['doc_id']}")
        if response is not None and response.status_code == 200:
            del self.versions[name]
            self.deleted.add(name)

    def ask(self) -> None:
        name = self.rng.choice(sorted(self.versions))
        question = f"What is the code of report {self.number}-{name}?"
        response = self.call("ask", "POST", f"/kbs/{self.kb}/ask", json={"question": question})
        if response is None or response.status_code != 200:
            return
        answer = response.json()
        for citation in answer["citations"]:
            if not Path(citation["source"]).name.startswith("c"):
                self.tally.problem(f"ask cited {citation['source']}")
        latest = self.versions[name]
        for old in range(1, latest):  # this client's own upload returned: no worker may still serve the old one
            if quotes(answer["answer"], code(self.number, name, old)):
                self.tally.problem(f"c{self.number}-{name}.txt: the answer quoted version {old}, latest is {latest}")

    def search(self) -> None:
        self.call("search", "POST", f"/kbs/{self.kb}/search", json={"query": f"report {self.number}", "top_k": 5})

    def verify(self) -> None:
        listing = self.http.get(f"/kbs/{self.kb}/documents").json()
        names = [d["name"] for d in listing]
        for name, version in self.versions.items():
            count = names.count(f"c{self.number}-{name}.txt")
            if count != 1:
                self.tally.problem(f"c{self.number}-{name}.txt accepted but listed {count} times")
                continue
            latest = code(self.number, name, version)
            hits = self.http.post(f"/kbs/{self.kb}/search", json={"query": latest, "top_k": 10}).json()["hits"]
            if not any(quotes(h["snippet"], latest) for h in hits):
                self.tally.problem(f"c{self.number}-{name}.txt: version {version} ({latest}) not found by search")
            for old in range(1, version):
                stale = code(self.number, name, old)
                hits = self.http.post(f"/kbs/{self.kb}/search", json={"query": stale, "top_k": 10}).json()["hits"]
                if any(quotes(h["snippet"], stale) for h in hits):
                    self.tally.problem(f"c{self.number}-{name}.txt: replaced version {old} still found by search")
        for name in self.deleted:
            if f"c{self.number}-{name}.txt" in names:
                self.tally.problem(f"c{self.number}-{name}.txt deleted but still listed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(data_dir: Path, workers: int, chroma_url: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    if chroma_url:
        env["RAG_CHROMA_URL"] = chroma_url
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, cwd=Path(__file__).resolve().parent.parent, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited with status {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGTERM)
    raise SystemExit("the service did not become ready in 120 s")


@contextlib.contextmanager
def running_chroma(folder: Path) -> Iterator[str]:
    """A Chroma server (``chroma run``) on loopback over ``folder``; its URL while the block runs."""
    import shutil

    from stores import ChromaVectorStore

    chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [chroma, "run", "--path", str(folder / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ChromaVectorStore(url=url).heartbeat()
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chroma run did not start: {(folder / 'server.log').read_text()}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--kbs", type=int, default=4, help="knowledge bases the clients share")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--chroma-url", help="a Chroma server (default: embedded for one worker, one started here for more)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 64 or not 1 <= args.seconds <= 600 or not 1 <= args.workers <= 16:
        parser.error("at most 64 clients, 600 seconds and 16 workers")

    with tempfile.TemporaryDirectory(prefix="rag-soak-") as folder, contextlib.ExitStack() as stack:
        chroma_url = args.chroma_url
        if args.workers > 1 and not chroma_url:  # embedded Chroma is one process's
            chroma_url = stack.enter_context(running_chroma(Path(folder) / "chroma-server"))
        process, base_url = start_service(Path(folder) / "data", args.workers, chroma_url)
        try:
            tally = Tally()
            started = time.monotonic()
            clients = [Client(n, base_url, started + args.seconds, tally, args.kbs) for n in range(args.clients)]
            for client in clients:
                client.start()
            for client in clients:
                client.join()
            elapsed = time.monotonic() - started
            for client in clients:
                client.verify()
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)

    total = sum(len(v) for v in tally.latencies.values())
    server_errors = sum(n for s in tally.statuses.values() for code, n in s.items() if code >= 500 or code == 0)
    print(
        f"{args.clients} clients, {args.workers} worker(s), {elapsed:.0f} s: {total} requests "
        f"({total / elapsed:.1f}/s), {server_errors} 5xx or failed"
    )
    print(f"{'operation':<10}{'count':>7}{'p50 ms':>10}{'p95 ms':>10}  statuses")
    for operation in sorted(tally.latencies):
        values = tally.latencies[operation]
        statuses = " ".join(f"{code}:{n}" for code, n in sorted(tally.statuses[operation].items()))
        print(
            f"{operation:<10}{len(values):>7}{statistics.median(values):>10.0f}{percentile(values, 0.95):>10.0f}"
            f"  {statuses}"
        )
    accepted = sum(len(c.versions) for c in clients)
    deleted = sum(len(c.deleted) for c in clients)
    print(f"documents: {accepted} accepted and present, {deleted} deleted and absent (checked)")
    for problem in tally.problems[:20]:
        print(f"PROBLEM: {problem}")
    if tally.problems:
        print(f"{len(tally.problems)} problems")
        return 1
    print("OK: no 5xx, every accepted document present once, every deleted one absent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
