"""Several API worker processes over one data directory and a Chroma server, under load.

``bench/soak.py`` starts ``chroma run`` and ``uvicorn --workers 4`` on loopback and lets clients upload,
replace, delete, ask and search at once. Consecutive requests of one client land on different workers, so
its checks (its upload found by its next search, no replaced version found or quoted, nothing listed twice)
hold only if the workers share the catalog, keyword index and vectors correctly.
"""

from __future__ import annotations

import pytest

from bench.soak import main as soak


@pytest.mark.slow
def test_four_workers_share_the_stores_under_load(capsys: pytest.CaptureFixture[str]) -> None:
    status = soak(["--workers", "4", "--clients", "8", "--kbs", "2", "--seconds", "20"])
    output = capsys.readouterr().out
    assert status == 0, output
    assert "4 worker(s)" in output and " 0 5xx or failed" in output
