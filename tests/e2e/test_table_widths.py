"""Every terminal table of every family and option fits ``$COLUMNS`` (120 by default): wide
tables are printed in parts, each repeating the row names (issue 21, item 4)."""

from __future__ import annotations

import contextlib
import io

import pytest

from ralign_tasks.cli import main
from ralign_tasks.report.console import format_table
from ralign_tasks.testing.loopback import (
    GENRM_PICKS_A,
    METAJUDGE_CORRECT,
    RC_GENRM_REASONS,
    LoopbackServer,
    is_atomic_genrm_prompt,
    is_metajudge_prompt,
    is_rc_judge_prompt,
    rc_judge_answer,
)

RUNS = [
    ["helpsteer3"],
    ["helpsteer3", "--swap"],
    ["helpsteer3", "--samples", "3"],
    ["helpsteer3_atomic"],
    ["judgebench"],
    ["rmbench"],
    ["rb2"],
]


def every_role(body):
    if is_rc_judge_prompt(body):
        return rc_judge_answer(body)
    if is_metajudge_prompt(body):
        return METAJUDGE_CORRECT
    return RC_GENRM_REASONS if is_atomic_genrm_prompt(body) else GENRM_PICKS_A


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run folder per family and option, and what each run printed."""
    out = tmp_path_factory.mktemp("widths")
    printed = {}
    with LoopbackServer(every_role) as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "120")
        for extra in RUNS:
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                code = main(["run", *extra, "--sample", "--genrm-model", "g", "--genrm-base-url",
                             server.base_url, "--metajudge-model", "j", "--metajudge-base-url",
                             server.base_url, "--output-dir", str(out)])  # fmt: skip
            assert code == 0, extra
            printed[" ".join(extra)] = buffer.getvalue()
    return out, printed


def widest(text: str) -> int:
    """The widest line of the tables in ``text`` (the files' paths after them are not)."""
    return max(len(line) for line in text.splitlines() if not line.startswith("written: "))


@pytest.mark.parametrize("run", [" ".join(extra) for extra in RUNS])
def test_every_run_table_fits_120_columns(runs, run):
    _, printed = runs
    assert widest(printed[run]) <= 120
    assert ": percent, 95% CI" in printed[run].splitlines()[0]


@pytest.mark.parametrize("options", [[], ["--details"], ["--by-subset", "--details"]])
@pytest.mark.parametrize("columns", [120, 80])
def test_every_report_table_fits_the_terminal(runs, capsys, monkeypatch, options, columns):
    out, _ = runs
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["report", str(out), *options]) == 0
    text = capsys.readouterr().out
    assert widest(text) <= columns
    # Every family is there, wide ones in parts that repeat the GenRM column.
    for title in ("R-Align rationale fidelity", "Rationale Consistency", "JudgeBench",
                  "RM-Bench", "RewardBench 2"):  # fmt: skip
        assert title in text
    assert "(continued)" in text
    assert "n/a" in text  # one notation for undefined: never a blank cell


def test_a_run_table_wider_than_the_terminal_is_printed_in_parts():
    rows = [["subset", *(f"metric {i}" for i in range(12))], ["(all)", *["12.5 [0.0, 50.0]"] * 12]]
    text = format_table("title", rows, columns=80)
    assert widest(text) <= 80
    parts = [line for line in text.splitlines() if line.startswith("title")]
    assert parts[0] == "title" and all(p == "title (continued)" for p in parts[1:])
    assert sum(line.startswith("(all)") for line in text.splitlines()) == len(parts) >= 3
