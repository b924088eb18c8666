"""The benchmark scripts whose figures the docs quote still run (tiny sizes): a change to the
run folder layout once broke `benchmarks/scale.py` without any test noticing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ralign_tasks.testing.loopback import (
    EXTRACTED_REASONS,
    LoopbackServer,
    is_extract_prompt,
    stand_in,
)

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


def test_extraction_agreement_scores_both_sides_with_the_same_judge(tmp_path):
    """``extraction_agreement.py`` on the sample's two reference models against the stand-in:
    a row per model; the stored side is rc-score's, the extracted side the extractor's (the
    stand-in lists two reasons of any rationale, which the RC stand-in matches to R1 and R2)."""
    figures = tmp_path / "agreement.json"
    with LoopbackServer(stand_in) as server:
        env = {
            **os.environ,
            "RALIGN_CACHE_DIR": str(tmp_path / "cache"),
            "RALIGN_METAJUDGE_MODEL": "loop-judge",
            "RALIGN_METAJUDGE_BASE_URL": server.base_url,
        }
        run = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "extraction_agreement.py"), "--sample",
             "--extractor-model", "loop-extractor", "--draws", "200", "--json", str(figures)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        extract_models = [body["model"] for body in server.requests if is_extract_prompt(body)]
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ")][1:]
    cells = {row.split(" | ")[0].removeprefix("| "): row.split(" | ") for row in rows}
    assert sorted(cells) == ["high_deceptive_alignment", "low_deceptive_alignment"]
    low = cells["low_deceptive_alignment"]
    # items; RC stored, extracted, Δ; …; Precision stored 51.6 (three stored reasons) and
    # extracted 75.0 (the extractor's two); no extraction failed; 3 reasons stored, 2 listed.
    assert low[1:4] == ["8", "37.2", "37.2"]
    assert low[8:10] == ["51.6", "75.0"]
    assert low[-3:] == ["0 / 0 / 0", "3.00", "2.00 |"]
    # One extraction per item and model, asked of the extractor's model.
    assert extract_models == ["loop-extractor"] * 16

    data = json.loads(figures.read_text(encoding="utf-8"))
    high = data["references"]["high_deceptive_alignment"]
    assert data["extractor"]["model"] == "loop-extractor"
    assert high["extraction"]["extract_ok"] == 8
    assert {tuple(item["extracted"]["reasons"]) for item in high["per_item"]} == {EXTRACTED_REASONS}
    # The sample's fifth item has no stored reason: skipped on the stored side only.
    assert high["per_item"][4]["stored"]["status"] == "skipped_empty"
    assert high["per_item"][4]["extracted"]["status"] == "scored"
    assert high["reasons"] == {"stored_mean": 1.75, "extracted_mean": 2.0}
    assert high["difference"]["rc"]["difference"] == pytest.approx(
        high["extracted"]["overall"]["rc"] - high["stored"]["overall"]["rc"]
    )
