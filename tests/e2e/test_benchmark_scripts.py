"""The benchmark scripts whose figures the docs quote still run (tiny sizes): a change to the
run folder layout once broke `benchmarks/scale.py` without any test noticing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SMOKE_RUNS = {
    "scale.py": ["--items", "20", "--skip-lm-eval", "--reasoning-chars", "50",
                 "--requests", "40", "--latency", "0.01", "--concurrency", "8"],
    "metajudge_throughput.py": ["--items", "40", "--latency", "0.01"],
    "outage.py": ["--items", "10", "--lengths", "0.5"],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMOKE_RUNS))
def test_a_benchmark_script_runs_and_prints_its_table(script, tmp_path):
    env = {**os.environ, "RALIGN_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *SMOKE_RUNS[script]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "|---|" in run.stdout  # a Markdown table, as the docs quote it
