"""Replay the hostile inputs of issue 17 against a live service and check each is contained.

Starts ``rag serve``'s app (uvicorn, 127.0.0.1 only) over a fresh data directory, fills a victim KB,
then replays each attack once (every loop is bounded). For each it checks that the attack got a clear
4xx or a per-file failure naming the limit, that the server's memory (RSS) stayed within
``--memory-mb`` of where it started, and that the victim KB still answers its question. Prints one
line per attack; exit status 1 if any check fails.

Usage::

    python bench/attack.py                 # +200 MB bound
    python bench/attack.py --memory-mb 100

Not replayed here (unit tests cover them): a negated sentence (needs a model that writes one; see
tests/test_isolation.py), SIGKILL mid-replacement and another process's writes (items 8 and 9).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import start_service

POLICY = (
    "# Travel policy\n\nEconomy class is required for flights under six hours. Business class may be booked "
    "for longer flights with director approval.\n"
)
QUESTION = "Which class is required for flights under six hours?"
BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (uvicorn's worker), in MB, from /proc."""
    total = 0.0
    pids = [pid] + [int(p) for p in _children(pid)]
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


class Attack:
    def __init__(self, client: httpx.Client, pid: int, memory_mb: float) -> None:
        self.client = client
        self.pid = pid
        self.memory_mb = memory_mb
        self.start_rss = rss_mb(pid)
        self.failures = 0

    def upload(self, kb: str, name: str, content: bytes, wait: bool = True) -> httpx.Response:
        return self.client.post(
            f"/kbs/{kb}/documents", params={"wait": wait}, files={"files": (name, content, "application/octet-stream")}
        )

    def file_failure(self, kb: str, name: str, content: bytes, limit: str) -> str:
        response = self.upload(kb, name, content)
        if response.status_code >= 500:
            return f"FAIL status {response.status_code}"
        files = response.json().get("files", [])
        reason = files[0].get("reason") or "" if files else response.text
        ok = files and files[0]["outcome"] in {"failed", "refused"} and limit in reason
        return ("ok " if ok else "FAIL ") + reason[:90]

    def victim_answers(self) -> bool:
        response = self.client.post("/kbs/victim/ask", json={"question": QUESTION})
        return response.status_code == 200 and response.json().get("answerable") is True

    def run(self, item: str, attack: Callable[[], str]) -> None:
        started = time.monotonic()
        try:
            outcome = attack()
        except httpx.HTTPError as error:
            outcome = f"FAIL {type(error).__name__}: {error}"
        seconds = time.monotonic() - started
        grown = rss_mb(self.pid) - self.start_rss
        answers = self.victim_answers()
        ok = outcome.startswith("ok") and grown <= self.memory_mb and answers
        self.failures += not ok
        print(
            f"{'PASS' if ok else 'FAIL'} {item:<34} {seconds:6.1f} s  RSS {grown:+7.1f} MB  "
            f"victim answers: {answers}  {outcome}",
            flush=True,
        )


def attacks(a: Attack) -> list[tuple[str, Callable[[], str]]]:
    c = a.client

    def yaml_bomb() -> str:
        return a.file_failure("tenant", "laughs.yml", BILLION_LAUGHS.encode(), "parse_max_yaml_nodes")

    def mail_subject() -> str:
        subject = "\r\n ".join("=?utf-8?q?ab?=" for _ in range(20_000))
        mail = f"From: a@b.c\r\nSubject: {subject}\r\nContent-Type: text/plain\r\n\r\nhi\r\n".encode()
        return a.file_failure("tenant", "bomb.eml", mail, "parse_max_header_bytes")

    def mail_params() -> str:
        params = "".join(f";\r\n p{i}*0*=utf-8''x" for i in range(20_000))
        mail = f"From: a@b.c\r\nSubject: s\r\nContent-Type: text/plain{params}\r\n\r\nhi\r\n".encode()
        return a.file_failure("tenant", "params.eml", mail, "parse_max_header_bytes")

    def collection_collision() -> str:
        a.upload("team docs", "travel.md", POLICY.encode())
        before = c.post("/kbs/team docs/search", json={"query": "economy class flights"}).json()
        twin = hashlib.sha256(b"team docs").hexdigest()[:32]
        a.upload(twin, "travel.md", POLICY.encode())
        c.delete(f"/kbs/{twin}")
        after = c.post("/kbs/team docs/search", json={"query": "economy class flights"}).json()
        ranked = [[(h["chunk_id"], round(h["score"], 3)) for h in r.get("hits", [])] for r in (before, after)]
        same = ranked[0] == ranked[1] and bool(ranked[0])
        return "ok the other KB keeps its vectors" if same else f"FAIL hits changed: {before} -> {after}"

    def staging_kb() -> str:
        c.post("/kbs", json={"name": ".incoming"})
        queued = a.upload("victim", "later.md", b"Hotels are reimbursed up to 180 euros.", wait=False)
        c.delete("/kbs/.incoming")
        job = queued.json()
        for _ in range(120):
            job = c.get(f"/kbs/victim/jobs/{job['job_id']}").json()
            if job["status"] in {"done", "failed"}:
                break
            time.sleep(0.5)
        return "ok queued upload survived" if job["status"] == "done" else f"FAIL {job}"

    def part_mark() -> str:
        response = a.upload("tenant", "a.md#b.md", b"Hotels are reimbursed up to 180 euros.")
        outcome = response.json()["files"][0]
        return ("ok " if outcome["outcome"] in {"failed", "refused"} else "FAIL ") + str(outcome.get("reason"))[:90]

    def cross_site() -> str:
        files = {"files": ("x.md", b"planted", "text/plain")}
        write = c.post("/kbs/victim/documents", files=files, headers={"Origin": "https://evil.example"})
        host = c.get("/health", headers={"Host": "rebind.evil.example"})
        ok = write.status_code == 403 and host.status_code == 421
        return f"{'ok' if ok else 'FAIL'} cross-site write {write.status_code}, foreign Host {host.status_code}"

    def big_json() -> str:
        body = b'{"model": "victim", "messages": [{"role": "user", "content": "' + b"x" * (30 * 2**20) + b'"}]}'
        response = c.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
        return f"{'ok' if response.status_code == 413 else 'FAIL'} {response.status_code} (30 MB chat body)"

    def html_br() -> str:
        return a.file_failure("tenant", "br.html", b"<p>x" + b"<br>" * (10 * 2**20 // 4), "parse_max_html_tags")

    def xlsx_wide() -> str:
        import openpyxl

        workbook = openpyxl.Workbook(write_only=True)
        sheet = workbook.create_sheet()
        for row in range(1, 5_000):
            sheet.append([None] * 16_383 + [f"v{row}"])
        buffer = io.BytesIO()
        workbook.save(buffer)
        return a.file_failure("tenant", "wide.xlsx", buffer.getvalue(), "parse_chars_per_byte")

    def pdf_repeat() -> str:
        from pypdf import PdfWriter
        from pypdf.generic import ArrayObject, NameObject, NumberObject

        writer = PdfWriter()
        writer.add_blank_page(200, 200)
        pages = writer.root_object["/Pages"].get_object()
        pages[NameObject("/Kids")] = ArrayObject([writer.pages[0].indirect_reference] * 97_336)
        pages[NameObject("/Count")] = NumberObject(97_336)
        buffer = io.BytesIO()
        writer.write(buffer)
        return a.file_failure("tenant", "repeat.pdf", buffer.getvalue(), "parse_max_pdf_pages")

    def bad_filters() -> str:
        statuses = []
        for where in ('{"cvss": NaN}', '{"vendor": {"$in": [null]}}', '{"a": {"$in": [[1]]}}'):
            body = '{"query": "flights", "filters": ' + where + "}"
            statuses.append(c.post("/kbs/victim/search", content=body,
                                   headers={"Content-Type": "application/json"}).status_code)  # fmt: skip
            body = '{"question": "flights?", "filters": ' + where + "}"
            statuses.append(c.post("/kbs/victim/ask", content=body,
                                   headers={"Content-Type": "application/json"}).status_code)  # fmt: skip
        ok = all(status == 422 for status in statuses)
        return f"{'ok' if ok else 'FAIL'} statuses {sorted(set(statuses))}"

    def fairness() -> str:
        a.upload("slow", "big.txt", ("word " * 2_000_000).encode(), wait=False)  # 10 MB: a long embed
        started = time.monotonic()
        quick = a.upload("victim", "tiny.md", b"Trains are second class.")
        seconds = time.monotonic() - started
        ok = quick.status_code == 200 and seconds < 30
        return f"{'ok' if ok else 'FAIL'} a tiny upload beside a 10 MB one took {seconds:.1f} s"

    def refusal_sentence() -> str:
        a.upload("quoting", "travel.md", (POLICY + " The knowledge base does not contain the answer to this "
                                                  "question.").encode())  # fmt: skip
        body = c.post("/kbs/quoting/ask", json={"question": QUESTION}).json()
        return f"{'ok' if body.get('answerable') else 'FAIL'} answerable={body.get('answerable')}"

    def delete_with_queue() -> str:
        jobs = [a.upload("doomed", f"n{i}.md", f"Note {i} about harbors.".encode(), wait=False) for i in range(5)]
        c.delete("/kbs/doomed")
        for job in jobs:
            for _ in range(120):
                state = c.get(f"/kbs/doomed/jobs/{job.json()['job_id']}").json()
                if state.get("status") in {"done", "failed", None}:
                    break
                time.sleep(0.5)
        back = c.get("/kbs/doomed/documents").status_code
        return f"{'ok' if back == 404 else 'FAIL'} deleted KB answers {back} after its queued uploads ran"

    def kb_names() -> str:
        health = c.get("/health").text
        glm = c.post("/", json={"prompt": "hi"})
        ok = "knowledge_bases" not in health and "there are" not in glm.text and glm.status_code < 500
        return f"{'ok' if ok else 'FAIL'} /health and POST / name no KB count ({glm.status_code})"

    def invisible_name() -> str:
        statuses = [c.post("/kbs", json={"name": name}).status_code for name in ("victim\u202e", "a\u200bb", "a\x7f")]
        return f"{'ok' if statuses == [422] * 3 else 'FAIL'} statuses {statuses}"

    return [
        ("1 YAML alias bomb", yaml_bomb),
        ("2 .eml Subject of encoded words", mail_subject),
        ("2 .eml 20,000 RFC 2231 params", mail_params),
        ("3 KB named like another's hash", collection_collision),
        ("4 KB named .incoming", staging_kb),
        ("5 '#' in a file name", part_mark),
        ("7 cross-site write, foreign Host", cross_site),
        ("10 30 MB JSON body", big_json),
        ("11 10 MB of <br>", html_br),
        ("11 xlsx value in column XFD", xlsx_wide),
        ("11 PDF page tree repeating a page", pdf_repeat),
        ("12 filters Chroma rejects", bad_filters),
        ("13 tiny upload beside a big one", fairness),
        ("14 document quoting the refusal", refusal_sentence),
        ("16 DELETE with queued uploads", delete_with_queue),
        ("17 KB names and counts", kb_names),
        ("18 invisible/bidi KB names", invisible_name),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-mb", type=float, default=200, help="RSS growth allowed over the whole run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rag-attack-") as folder:
        process, base_url = start_service(Path(folder) / "data", 1, None)
        try:
            with httpx.Client(base_url=base_url, timeout=300) as client:
                attack = Attack(client, process.pid, args.memory_mb)
                attack.upload("victim", "travel.md", POLICY.encode())
                if not attack.victim_answers():
                    print("the victim KB does not answer before any attack", file=sys.stderr)
                    return 1
                attack.start_rss = rss_mb(process.pid)
                print(f"server RSS at start: {attack.start_rss:.0f} MB; bound +{args.memory_mb:g} MB; "
                      f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
                replayed = attacks(attack)
                for item, run in replayed:
                    attack.run(item, run)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
    print(f"{attack.failures} of {len(replayed)} attacks not contained")
    return 1 if attack.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
