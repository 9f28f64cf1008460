"""Log files: layouts recognized, runs of whole lines with time range, host, process and level; streamed.

The lines are written here in the layouts of the loghub samples (which are for research use only).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from ingest.document import Section
from ingest.loaders import load
from ingest.loaders.log_layouts import LEVEL_RANK, detect_layout, normalize_level
from ingest.loaders.logs import LOG_SECTION_CHARS, LogSections, looks_like_log
from ingest.splitter import ChineseRecursiveSplitter

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, lines: list[str], modified: datetime | None = None) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if modified:
        os.utime(path, (modified.timestamp(), modified.timestamp()))
    return path


def sections_of(path: Path) -> list[Section]:
    return list(load(path).sections)


def test_syslog_runs_carry_time_host_process_and_never_mix_hosts(tmp_path: Path) -> None:
    lines = [
        "Nov 20 10:41:58 web-01 sshd[2211]: Accepted publickey for deploy from 10.0.0.5 port 51122 ssh2",
        "Nov 20 10:42:01 web-01 sshd[2211]: pam_unix(sshd:session): session opened for user deploy",
        "Nov 20 10:42:07 web-01 CRON[2301]: (root) CMD (run-parts /etc/cron.hourly)",
        "Nov 20 10:42:09 db-01 postgres[881]: FATAL:  password authentication failed for user app",
        "Nov 20 10:42:11 db-01 postgres[881]: DETAIL:  Connection matched pg_hba.conf line 95",
    ]
    path = write(tmp_path / "syslog.log", lines, modified=datetime(2026, 11, 21))
    document = load(path)
    assert document.metadata == {"format": "log", "log_format": "syslog"}
    first, second = sections_of(path)
    assert first.metadata == {
        "line_start": 1,
        "line_end": 3,
        "start_time": "2026-11-20T10:41:58",
        "end_time": "2026-11-20T10:42:07",
        "start_ts": 20261120104158,
        "end_ts": 20261120104207,
        "host": "web-01",
        "process": "sshd; CRON",
    }
    assert second.metadata["host"] == "db-01" and second.text.split("\n") == lines[3:]


def test_yearless_times_before_new_year(tmp_path: Path) -> None:
    path = write(tmp_path / "old.log", ["Dec 31 23:59:59 gw kernel: link down"], modified=datetime(2027, 1, 2))
    assert sections_of(path)[0].metadata["start_time"] == "2026-12-31T23:59:59"


@pytest.mark.parametrize(
    ("line", "layout", "expected"),
    [
        (
            "<34>1 2026-11-20T10:42:07.003Z web-01 su - ID47 - 'su root' failed for alice on /dev/pts/8",
            "syslog-rfc5424",
            {"start_ts": 20261120104207, "host": "web-01", "process": "su", "level": "critical"},
        ),
        (
            "2026-11-20T10:42:07.123456+01:00 web-02 kernel: [ 1.234] eth0: link up",
            "syslog-rfc3339",
            {"start_ts": 20261120104207, "host": "web-02", "process": "kernel"},
        ),
        (
            "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
            "apache-error",
            {"start_ts": 20051204044744, "level": "error", "level_rank": 5},
        ),
        (
            "[Wed Oct 11 14:32:52.123456 2000] [core:warn] [pid 35708:tid 4328636416] [client 10.1.2.3:50000] AH00128: "
            "File does not exist: /var/www/favicon.ico",
            "apache-error",
            {"start_ts": 20001011143252, "process": "core", "level": "warning"},
        ),
        (
            '10.1.2.3 - frank [10/Oct/2000:13:55:36 -0700] "GET /admin HTTP/1.0" 503 2326 "-" "curl/8.0"',
            "access",
            {"start_ts": 20001010135536, "level": "error"},
        ),
        (
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049 terminating",
            "hdfs",
            {"start_ts": 20081109203615, "process": "dfs.DataNode$PacketResponder", "level": "info"},
        ),
        (
            "2015-07-29 19:04:29,079 - WARN  [SendWorker:188978561024:QuorumCnxManager$SendWorker@679] - Interrupted",
            "log4j",
            {"start_ts": 20150729190429, "process": "QuorumCnxManager$SendWorker", "level": "warning"},
        ),
        (
            "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster",
            "iso-level",
            {"start_ts": 20151018180147, "process": "org.apache.hadoop.mapreduce.v2.app.MRAppMaster", "level": "info"},
        ),
        (
            "17/06/09 20:10:40 ERROR executor.CoarseGrainedExecutorBackend: RECEIVED SIGNAL TERM",
            "spark",
            {"start_ts": 20170609201040, "process": "executor.CoarseGrainedExecutorBackend", "level": "error"},
        ),
    ],
)
def test_layouts(tmp_path: Path, line: str, layout: str, expected: dict) -> None:
    path = write(tmp_path / "x.log", [line, line])
    assert load(path).metadata["log_format"] == layout
    metadata = sections_of(path)[0].metadata
    assert {key: metadata.get(key) for key in expected} == expected


def test_proxifier_takes_the_year_from_the_file(tmp_path: Path) -> None:
    line = "[10.30 16:49:06] chrome.exe - proxy.example.com:5070 open through proxy proxy.example.com:5070 HTTPS"
    path = write(tmp_path / "proxifier.log", [line], modified=datetime(2025, 11, 22))
    metadata = sections_of(path)[0].metadata
    assert (metadata["start_time"], metadata["process"]) == ("2025-10-30T16:49:06", "chrome.exe")


def test_runs_are_whole_lines_that_fit_a_chunk(tmp_path: Path) -> None:
    lines = [
        f"2026-11-20 10:{i // 60:02d}:{i % 60:02d},000 INFO  [worker-{i % 3}:Pool@1] - task {i} done"
        for i in range(500)
    ]
    lines[250] = "2026-11-20 10:04:10,000 ERROR [worker-1:Pool@1] - task 250 failed " + "x" * 600  # longer than a run
    sections = sections_of(write(tmp_path / "app.log", lines))
    assert sections[0].metadata["line_start"] == 1 and sections[-1].metadata["line_end"] == 500
    for before, after in itertools.pairwise(sections):
        assert after.metadata["line_start"] == before.metadata["line_end"] + 1
    for section in sections:
        first, last = section.metadata["line_start"], section.metadata["line_end"]
        assert section.text.split("\n") == lines[first - 1 : last]
        assert len(section.text) <= LOG_SECTION_CHARS or first == last == 251
    failed = next(s for s in sections if s.metadata["line_start"] == 251)
    assert failed.metadata["level"] == "error" and failed.metadata["level_rank"] == LEVEL_RANK["error"]


def test_a_stack_trace_stays_with_its_record(tmp_path: Path) -> None:
    lines = [f"2026-11-20 10:00:{i:02d} INFO Worker: step {i} of the nightly job completed normally" for i in range(5)]
    trace = [
        "2026-11-20 10:00:05 ERROR Worker: job failed",
        "java.lang.IllegalStateException: queue closed",
        "\tat com.example.Queue.take(Queue.java:42)",
        "\tat com.example.Worker.run(Worker.java:17)",
    ]
    sections = sections_of(write(tmp_path / "job.log", lines + trace))
    last = sections[-1]
    assert last.text.split("\n")[-4:] == trace and last.metadata["level"] == "error"


def test_unknown_layout_still_gives_numbered_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.log", [f"step {i}: ok" for i in range(1, 120)])
    document = load(path)
    assert document.metadata["log_format"] == "plain"
    sections = list(document.sections)
    assert sections[0].metadata["line_start"] == 1 and "start_ts" not in sections[0].metadata


def test_splitter_cuts_logs_between_lines_with_exact_line_numbers(tmp_path: Path) -> None:
    lines = [
        f"081109 2036{i:02d} 148 INFO dfs.DataNode: Receiving block blk_{i} src: /10.0.0.{i}:50010" for i in range(6)
    ]
    document = load(write(tmp_path / "hdfs.log", lines))
    chunks = ChineseRecursiveSplitter(chunk_size=90, chunk_overlap=0).split_document(document, "d")
    for chunk in chunks:
        first, last = chunk.metadata["line_start"], chunk.metadata["line_end"]
        assert chunk.text == "\n".join(lines[first - 1 : last])  # whole lines, and the right ones
    assert [c.metadata["line_start"] for c in chunks] == [1, 2, 3, 4, 5, 6]


def test_syslog_saved_as_txt_is_a_log_and_prose_is_not(tmp_path: Path) -> None:
    syslog = write(
        tmp_path / "messages.txt", [f"Nov 20 10:42:0{i} web-01 nginx[77]: worker {i} started" for i in range(5)]
    )
    prose = write(tmp_path / "notes.txt", ["Meeting notes", "2026-11-20 10:42 we agreed to rotate keys."])
    assert looks_like_log(syslog) and load(syslog).metadata["format"] == "log"
    assert not looks_like_log(prose) and load(prose).metadata["format"] == "txt"


def test_gbk_log_and_re_iteration(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes("2026-11-20 10:42:07 ERROR 支付服务 连接数据库失败\n".encode("gbk") * 3)
    sections = LogSections(path, detect_layout(["2026-11-20 10:42:07 ERROR 支付服务 连接数据库失败"]))
    assert list(sections) == list(sections)  # read again from the file on each pass
    assert "连接数据库失败" in next(iter(sections)).text


def test_level_words() -> None:
    assert [normalize_level(w) for w in ("WARN", "Fatal", "trace3", "err", "Info", "chatty")] == [
        "warning",
        "critical",
        "debug",
        "error",
        "info",
        None,
    ]


STREAM_SCRIPT = """
import resource, sys
from pathlib import Path
from ingest.loaders import load_all
from ingest.splitter import ChineseRecursiveSplitter
(document,) = load_all(Path(sys.argv[1]))
count = sum(1 for _ in ChineseRecursiveSplitter(500, 80).iter_chunks(document, "d"))
print(count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_a_big_log_streams_in_bounded_memory(tmp_path: Path) -> None:
    """Peak memory does not grow with the log: 8 MB and 64 MB logs load and split within a few MB of each other."""
    line = "Nov 20 10:42:{s:02d} web-0{h} sshd[{p}]: Failed password for admin from 10.0.{a}.{b} port 4{p} ssh2\n"
    peaks = []
    for megabytes in (8, 64):
        path = tmp_path / f"{megabytes}.log"
        block = "".join(line.format(s=i % 60, h=i // 9 % 3, p=1000 + i, a=i % 250, b=i % 200) for i in range(10000))
        with path.open("w") as file:
            for _ in range(megabytes * 2**20 // len(block)):
                file.write(block)
        result = subprocess.run(
            [sys.executable, "-c", STREAM_SCRIPT, str(path)], cwd=ROOT, capture_output=True, text=True, check=True
        )
        chunks, peak_kb = map(int, result.stdout.split())
        assert chunks > megabytes * 2000
        peaks.append(peak_kb / 1024)
    assert peaks[1] - peaks[0] < 16, peaks  # 56 MB more log, (almost) no more memory
