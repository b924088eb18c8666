"""``ralign report --compare``, ``--plots`` and ``--downstream`` on the runs recorded by the
suite (``tests/recorded_runs.py``), and the paired bootstrap behind ``--compare``."""

from __future__ import annotations

import dataclasses
import shutil
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from scipy.stats import rankdata

from ralign_tasks.report.compare import compare, paired_items
from ralign_tasks.report.runs import load_runs
from ralign_tasks.scorers.fidelity import (
    ItemOutcome,
    MetaStatus,
    compute_fidelity,
    paired_difference,
)
from tests.support.recorded_runs import CLI_GENRM, INSPECT_GENRM, JSON_GENRM, VARIED_GENRM_NAMES
from tests.support.reports import csv_rows, report

pytestmark = pytest.mark.slow  # the recorded harness runs (an lm_eval subprocess)

STRONG, WEAK = VARIED_GENRM_NAMES
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def all_runs(runs) -> list[str]:
    return [str(runs["root"] / "runs"), str(runs["root"] / "more")]


def outcome(category: str, subset: str = "s") -> ItemOutcome:
    if category == "wrong":
        return ItemOutcome(subset, label_correct=False)
    return ItemOutcome(subset, label_correct=True, meta=MetaStatus(category))


# --- the paired bootstrap --------------------------------------------------------------------


def test_identical_runs_differ_by_exactly_zero():
    items = [outcome(c) for c in ["correct", "incorrect", "wrong", "parse_fail"] * 10]
    result = paired_difference(items, items, draws=500)
    for metric in ("l_acc", "s_corr", "f_score"):
        assert result[metric]["difference"] == 0.0
        assert result[metric]["ci"] == [0.0, 0.0]
        assert result[metric]["p_value"] == 1.0


def test_point_values_equal_the_unpaired_metrics():
    first = [outcome(c) for c in ["correct"] * 7 + ["incorrect"] * 2 + ["wrong"] * 3]
    second = [
        outcome(c) for c in ["incorrect"] * 4 + ["call_fail"] + ["wrong"] * 3 + ["correct"] * 4
    ]
    result = paired_difference(first, second, draws=200)
    for metric in ("l_acc", "s_corr", "f_score"):
        a, b = compute_fidelity(first)[metric], compute_fidelity(second)[metric]
        assert result[metric]["first"] == a and result[metric]["second"] == b
        assert result[metric]["difference"] == pytest.approx(a - b)
        assert result[metric]["n"] == 12


def test_pairing_removes_the_spread_of_shared_items():
    """Two GenRMs that agree on 95 of 100 items: the paired CI of the difference is far narrower
    than the unpaired CIs of either metric, and its draws match resampling items directly."""
    base = [outcome("correct")] * 50 + [outcome("wrong")] * 45
    first = base + [outcome("correct")] * 5
    second = base + [outcome("incorrect")] * 5
    result = paired_difference(first, second, draws=4000, seed=7)["f_score"]
    assert result["difference"] == pytest.approx(0.05)
    low, high = result["ci"]
    assert low > 0 and high - low < 0.1
    unpaired = compute_fidelity(first)["ci"]["f_score"]
    assert unpaired[1] - unpaired[0] > 2 * (high - low)
    assert result["p_value"] < 0.05

    # Direct item resampling: each item carries 1 to the difference when it is one of the 5.
    rng = np.random.default_rng(1)
    indices = rng.integers(0, 100, size=(4000, 100))
    direct = (indices >= 95).mean(axis=1)
    assert np.percentile(direct, 2.5) == pytest.approx(low, abs=0.011)
    assert np.percentile(direct, 97.5) == pytest.approx(high, abs=0.011)


def test_undefined_metric_gives_no_difference():
    first = [outcome("wrong")] * 4  # nothing meta-judged: S-Corr undefined, F-Score 0 of 4
    second = [outcome("correct")] * 4
    result = paired_difference(first, second, draws=100)
    assert result["s_corr"]["first"] is None
    assert result["s_corr"]["difference"] is None and result["s_corr"]["p_value"] is None
    assert result["l_acc"]["difference"] == -1.0


def test_lengths_must_match():
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([outcome("correct")], [], draws=10)


# --- ralign report --compare -------------------------------------------------------------------


def test_compare_by_genrm_name_matches_each_runs_numbers(runs, capsys):
    code, out, err = report([*all_runs(runs), "--compare", STRONG, WEAK, "--format", "csv"], capsys)
    assert code == 0 and not err
    rows = {row["metric"]: row for row in csv_rows(out)}
    assert set(rows) == {"l_acc", "s_corr", "f_score"}
    results, _ = load_runs(all_runs(runs))
    values = {r.genrm: r.values for r in results if r.task == "ralign_helpsteer3"}
    for metric, row in rows.items():
        assert (row["genrm_a"], row["genrm_b"], row["task"]) == (STRONG, WEAK, "ralign_helpsteer3")
        assert row["n"] == "8"
        assert float(row["a"]) == values[STRONG][metric]
        assert float(row["b"]) == values[WEAK][metric]
        assert float(row["a_minus_b"]) == pytest.approx(float(row["a"]) - float(row["b"]))
        assert float(row["ci_low"]) <= float(row["a_minus_b"]) <= float(row["ci_high"])
    # Strong is faithful on 7 of 8 items and weak on 2: a clear F-Score difference.
    assert float(rows["f_score"]["ci_low"]) > 0 and float(rows["f_score"]["p_value"]) < 0.05


def test_compare_by_path_equals_compare_by_name(runs, capsys):
    by_name = report([*all_runs(runs), "--compare", STRONG, WEAK, "--format", "csv"], capsys)
    paths = [str(runs["root"] / "more" / "strong"), str(runs["root"] / "more" / "weak")]
    by_path = report(["--compare", *paths, "--format", "csv"], capsys)
    assert by_path == by_name


def test_compare_renders_tables_and_keeps_shared_benchmarks(runs, capsys):
    """The same Inspect log read as .eval and as .json differs by nothing; lm-eval's GenRM
    (helpsteer3 and ppe) against an Inspect one (helpsteer3) compares helpsteer3 only."""
    code, out, _ = report([*all_runs(runs), "--compare", INSPECT_GENRM, JSON_GENRM], capsys)
    assert code == 0
    assert "A = openai-api/loop/other, B = openai-api/loop/other-json" in out
    assert "1.0000" in out  # identical logs: p = 1
    code, out, _ = report(
        [*all_runs(runs), "--compare", "genrm", WEAK, "--format", "markdown"], capsys
    )
    assert code == 0 and "| helpsteer3 | F-Score | 8 |" in out
    assert "ppe" not in out  # only benchmarks both ran


def test_compare_pairs_items_across_paths(runs, capsys):
    """A `ralign run` folder against an Inspect log of the same GenRM answers: every item
    pairs (the harness's extra metadata is not part of the record), and nothing differs."""
    code, out, err = report(
        [*all_runs(runs), "--compare", CLI_GENRM, INSPECT_GENRM, "--format", "csv"], capsys
    )
    assert code == 0 and "different data" not in err and "only in" not in err
    rows = csv_rows(out)
    assert {row["n"] for row in rows} == {"8"}
    assert {row["a_minus_b"] for row in rows} == {"0.0"}


def test_compare_errors_name_the_problem(runs, capsys):
    code, _, err = report([*all_runs(runs), "--compare", "nobody", WEAK], capsys)
    assert code == 2 and "nobody" in err and STRONG in err
    code, _, err = report(["--compare", str(runs["root"] / "runs"), WEAK], capsys)
    assert code == 2 and "several GenRMs" in err
    partial = str(runs["root"] / "partial")
    code, _, err = report([*all_runs(runs), "--compare", partial, "genrm"], capsys)
    assert code == 2 and "no per-item samples" in err and "share no benchmark" in err
    code, _, err = report([], capsys)
    assert code == 2 and "--compare" in err


def test_unshared_items_are_left_out_with_a_warning(runs):
    results, _ = load_runs([runs["root"] / "more"])
    strong, weak = sorted(results, key=lambda r: r.genrm)
    fewer = dataclasses.replace(weak, items=weak.items[:5])
    warnings: list[str] = []
    first, second = paired_items(strong, fewer, warnings)
    assert [i.id for i in first] == [i.id for i in second] == [i.id for i in weak.items[:5]]
    assert "3 items only in openai-api/loop/strong" in warnings[0]
    changed = dataclasses.replace(
        weak, items=[dataclasses.replace(weak.items[0], fingerprint="other data"),
                     *weak.items[1:]]
    )  # fmt: skip
    warnings.clear()
    comparison = compare([strong], [changed], warnings, draws=100)
    assert "different data" in warnings[0] and comparison.differences[0].n == 7


# --- plots and downstream --------------------------------------------------------------------


def test_plots_are_written_as_png_and_svg(runs, capsys, tmp_path):
    out = tmp_path / "plots"
    code, stdout, err = report([*all_runs(runs), "--plots", str(out), "--format", "csv"], capsys)
    assert code == 0
    # stdout is the table's CSV alone; what was written is said on stderr.
    assert {row["genrm"] for row in csv_rows(stdout)} >= {STRONG, WEAK}
    names = {"lacc_vs_fscore", "metric_bars"}
    assert {p.name for p in out.iterdir()} == {f"{n}.{s}" for n in names for s in ("png", "svg")}
    for name in names:
        assert (out / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
        svg = (out / f"{name}.svg").read_text()
        ElementTree.fromstring(svg)  # well-formed
        assert STRONG in svg and WEAK in svg and "helpsteer3" in svg  # text kept as text
        assert f"written: {out / name}.png" in err


def test_plots_leave_missing_values_out(runs, tmp_path, capsys):
    out = tmp_path / "plots"
    code, _, _ = report([str(runs["root"] / "partial"), "--plots", str(out)], capsys)
    assert code == 0
    # The partial run has L-Acc but no F-Score: no scatter point, and bars say n/a.
    assert not (out / "lacc_vs_fscore.svg").exists()
    assert "n/a" in (out / "metric_bars.svg").read_text()


def write_downstream(path, scores: dict[str, float]) -> str:
    lines = ["model,score,notes"] + [f"{model},{score},x" for model, score in scores.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_downstream_correlations_equal_hand_computed_ones(runs, capsys, tmp_path):
    scores = {"genrm": 3.5, INSPECT_GENRM: 2.0, JSON_GENRM: 2.5, STRONG: 6.1, WEAK: 2.2}
    downstream = write_downstream(tmp_path / "down.csv", {**scores, "ghost": 1.0})
    out = tmp_path / "plots"
    args = [*all_runs(runs), "--downstream", downstream, "--plots", str(out)]
    code, stdout, err = report(args, capsys)
    assert code == 0
    assert "unknown GenRMs, ignored: ghost" in err
    assert "Correlation with downstream scores" in stdout
    rows = {(r["task"], r["metric"]): r for r in csv_rows((out / "downstream_correlation.csv")
                                                            .read_text())}  # fmt: skip
    results, _ = load_runs(all_runs(runs))
    for metric in ("l_acc", "s_corr", "f_score"):
        values = {r.genrm: r.values[metric] for r in results if r.task == "ralign_helpsteer3"}
        x = np.array([values[g] * 100 for g in scores])
        y = np.array(list(scores.values()))
        row = rows[("ralign_helpsteer3", metric)]
        assert row["n"] == "5"
        assert float(row["pearson_r"]) == pytest.approx(np.corrcoef(x, y)[0, 1])
        spearman = np.corrcoef(rankdata(x), rankdata(y))[0, 1]
        assert float(row["spearman_rho"]) == pytest.approx(spearman)
        assert 0 <= float(row["pearson_p"]) <= 1
    # ppe: one GenRM only, so no correlation (n/a, never 0).
    assert rows[("ralign_ppe", "f_score")]["pearson_r"] == "n/a"
    assert (out / "downstream_correlation.png").read_bytes()[:8] == PNG_MAGIC
    assert "r=" in (out / "downstream_correlation.svg").read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,value\na,1\n", "needs a header with 'model' and 'score'"),
        ("model,score\ngenrm,high\n", ":2: score 'high' is not a number"),
        ("model,score\ngenrm,1\ngenrm,2\n", ":3: model 'genrm' appears twice"),
        ("model,score\n", "no rows"),
    ],
)
def test_bad_downstream_files_are_clear_errors(runs, capsys, tmp_path, text, message):
    path = tmp_path / "down.csv"
    path.write_text(text)
    code, _, err = report([*all_runs(runs), "--downstream", str(path)], capsys)
    assert code == 2 and message in err and str(path) in err


def test_one_command_prints_the_table_and_writes_csvs_and_plots(runs, capsys, tmp_path):
    """The issue's acceptance run: a folder of lm-eval and Inspect runs of several GenRMs."""
    folder = tmp_path / "all_runs"
    for name in ("runs", "more"):
        shutil.copytree(runs["root"] / name, folder / name)
    table, summary, plots = tmp_path / "table.csv", tmp_path / "summary.csv", tmp_path / "plots"
    args = [str(folder), "--csv", str(table), "--summary-csv", str(summary), "--plots", str(plots)]
    code, out, err = report(args, capsys)
    assert code == 0
    assert all(line.startswith("written: ") for line in err.splitlines())
    assert "R-Align rationale fidelity (percent, 95% CI)" in out and STRONG in out
    assert "87.5 [" in out and max(len(line) for line in out.splitlines()) <= 120
    genrms = {"genrm", INSPECT_GENRM, JSON_GENRM, CLI_GENRM, STRONG, WEAK}
    assert {row["genrm"] for row in csv_rows(table.read_text())} == genrms
    assert {row["model"] for row in csv_rows(summary.read_text())} == genrms
    assert len(list(plots.glob("*.png"))) == len(list(plots.glob("*.svg"))) == 2


def test_option_mistakes_are_clear_errors(runs, capsys, tmp_path):
    code, _, err = report([*all_runs(runs), "--compare", STRONG, WEAK, "--plots", "p"], capsys)
    assert code == 2 and "--plots belong to the table" in err
    code, _, err = report([*all_runs(runs), "--compare", STRONG, WEAK, "--bootstrap", "5"], capsys)
    assert code == 2 and "at least 100" in err
    downstream = write_downstream(tmp_path / "d.csv", {STRONG: 1.0})
    code, _, err = report([*all_runs(runs), "--downstream", downstream, "--format", "csv"], capsys)
    assert code == 2 and "needs --plots" in err
    occupied = tmp_path / "plots"
    occupied.write_text("a file, not a folder")
    code, _, err = report([*all_runs(runs), "--plots", str(occupied)], capsys)
    assert code == 2 and "ralign: error:" in err and str(occupied) in err


def test_a_genrm_name_wins_over_a_path_of_the_same_name(runs, capsys, tmp_path, monkeypatch):
    """lm-eval names a GenRM after its `pretrained` path, which exists on the machine."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "genrm").mkdir()
    code, out, err = report(
        [*all_runs(runs), "--compare", "genrm", WEAK, "--format", "csv"], capsys
    )
    assert code == 0, err
    assert {row["genrm_a"] for row in csv_rows(out)} == {"genrm"}


def test_a_downstream_csv_with_a_byte_order_mark_is_read(tmp_path):
    from ralign_tasks.report.plots import read_downstream

    path = tmp_path / "excel.csv"
    path.write_bytes("model,score\r\nA,1.5\r\nB,2\r\n".encode("utf-8-sig"))
    assert read_downstream(path) == {"A": 1.5, "B": 2.0}
