"""Shared fixtures. Everything runs offline: the hub is switched off before any model loads."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
for _name in [n for n in os.environ if n.startswith("RAG_") and not n.startswith("RAG_SKIP_")]:
    del os.environ[_name]  # a developer's own configuration must not leak into the tests (RAG_SKIP_* switches may)
# One ONNX export of the embedder for the whole run and its subprocesses, not one per data directory.
_EMBEDDER_CACHE = tempfile.mkdtemp(prefix="rag-kb-test-embedders-")
atexit.register(shutil.rmtree, _EMBEDDER_CACHE, True)
os.environ["RAG_EMBEDDER_CACHE_DIR"] = _EMBEDDER_CACHE

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from rag.engine import Engine  # noqa: E402
from rag.settings import Settings  # noqa: E402
from stores import Embedder  # noqa: E402


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The bundled all-MiniLM-L6-v2, loaded once for the whole run."""
    return Embedder()


@pytest.fixture
def engine(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A rag-kb over a fresh data directory, with the shared embedder."""
    monkeypatch.chdir(tmp_path)  # no stray rag-kb.toml from the developer's working directory
    rag = Engine(Settings(data_dir=tmp_path / "data"))
    rag.embedder = embedder
    yield rag


ENGLISH_POLICY = """# Travel policy

## Flights
Economy class is required for flights under six hours. Business class may be booked for longer flights
with director approval.

## Hotels
Hotels are reimbursed up to 180 euros per night in capital cities.
"""

CHINESE_POLICY = """# 信息安全制度

## 密码
员工密码长度不得少于十二位，且必须每九十天更换一次。

## 设备
离开工位时必须锁定电脑屏幕。丢失笔记本电脑须在二十四小时内报告信息安全部门。
"""

ENGLISH_HISTORY = """The Meridian Bridge was completed in 1932 after four years of construction.
It spans the Calder River and was designed by the engineer Agnes Holloway.
The bridge carries two railway tracks and a footpath.
"""


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small folder of English and Chinese documents."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "travel.md").write_text(ENGLISH_POLICY, encoding="utf-8")
    (folder / "security.md").write_text(CHINESE_POLICY, encoding="utf-8")
    (folder / "bridge.txt").write_text(ENGLISH_HISTORY, encoding="utf-8")
    return folder
