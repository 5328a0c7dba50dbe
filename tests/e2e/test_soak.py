"""The soak command (`tests/e2e/soak.py`, run for 30 minutes for docs/reliability.md) works: a
short run streams, samples, writes its CSV and plot, and passes its own checks."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.host, pytest.mark.slow]


def test_a_short_soak_samples_streams_and_passes(tmp_path):
    out = tmp_path / "soak"
    script = Path(__file__).resolve().parent / "soak.py"
    r = subprocess.run([sys.executable, str(script), "--minutes", "0.5", "--interval", "5",
                        "--mode", "640x360@30", "--out", str(out)],
                       capture_output=True, text=True, timeout=180, env=dict(os.environ))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "soak.csv")))
    assert len(rows) >= 6, rows
    assert int(rows[-1]["frames"]) >= 30 * 25, rows[-1]
    assert all(int(row["threads"]) > 1 and int(row["fds"]) > 3 for row in rows), rows
    assert (out / "soak.svg").read_text().count("<polyline") == 3
    summary = (out / "summary.txt").read_text()
    assert "0 frame-number gaps" in summary and "key presses" in summary, summary
