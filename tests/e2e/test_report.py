"""``ralign report`` on real outputs recorded by the suite (the ``runs`` fixture of
``tests/support/recorded_runs.py``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log, write_eval_log

from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.report.runs import latest_runs, load_runs
from tests.support.recorded_runs import CLI_GENRM, INSPECT_GENRM, JSON_GENRM
from tests.support.reports import csv_rows, report
from tests.support.scripted import EXPECTED_OFFICIAL

pytestmark = pytest.mark.slow  # the recorded harness runs (an lm_eval subprocess)


def test_every_kind_of_output_loads_with_identical_numbers(runs):
    results, warnings = load_runs([runs["root"] / "runs"])
    assert not warnings
    found = {(r.genrm, r.task): r for r in results}
    assert set(found) == {
        ("genrm", "ralign_helpsteer3"),
        ("genrm", "ralign_ppe"),
        (INSPECT_GENRM, "ralign_helpsteer3"),
        (JSON_GENRM, "ralign_helpsteer3"),
        (CLI_GENRM, "ralign_helpsteer3"),
    }
    lm_metrics = runs["lm"]["results"]
    for task in ("ralign_helpsteer3", "ralign_ppe"):
        result = found[("genrm", task)]
        assert result.harness == "lm-eval"
        for metric in ("l_acc", "s_corr", "f_score"):
            assert result.values[metric] == lm_metrics[task][f"{metric},none"]
            assert result.ci[metric] is not None
        for count in ("genrm_no_verdict", "meta_parse_fail", "meta_call_fail"):
            assert result.counts[count] == lm_metrics[task][f"{count},none"]
        assert result.counts["meta_unjudged"] == 0
    (score,) = runs["inspect"].results.scores
    for genrm in (INSPECT_GENRM, JSON_GENRM):
        result = found[(genrm, "ralign_helpsteer3")]
        assert result.harness == "inspect"
        for metric, expected in EXPECTED_OFFICIAL.items():
            assert result.values[metric] == score.metrics[metric].value
            assert result.values[metric] == pytest.approx(expected)
        assert result.counts == {
            "label_correct": 4,
            "meta_correct": 1,
            "meta_incorrect": 1,
            "genrm_call_fail": 1,
            "genrm_no_verdict": 1,
            "genrm_truncated": 1,
            "meta_parse_fail": 1,
            "meta_call_fail": 1,
            "meta_unjudged": 0,
        }
    # lm-eval does not say why generation stopped: truncation is unknown (blank), not 0.
    assert found[("genrm", "ralign_helpsteer3")].counts["genrm_truncated"] is None
    # A `ralign run` folder with the Inspect run's GenRM answers: the same numbers and CIs.
    cli, inspect = (
        found[(CLI_GENRM, "ralign_helpsteer3")],
        found[(INSPECT_GENRM, "ralign_helpsteer3")],
    )
    assert cli.harness == "ralign" and len(cli.items) == 8
    assert (cli.values, cli.ci, cli.counts, cli.n) == (
        inspect.values,
        inspect.ci,
        inspect.counts,
        inspect.n,
    )
    assert [(p.subset, p.values, p.ci) for p in cli.subsets] == [
        (p.subset, p.values, p.ci) for p in inspect.subsets
    ]


def test_markdown_table_has_a_row_per_genrm_in_percent(runs, capsys):
    code, out, err = report([str(runs["root"] / "runs"), "--format", "markdown"], capsys)
    assert code == 0 and not err
    lines = out.splitlines()
    assert lines[0].startswith(
        "| GenRM | helpsteer3 L-Acc | helpsteer3 S-Corr | helpsteer3 F-Score"
    )
    assert "ppe L-Acc" in lines[0]
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in lines[2:]}
    assert set(rows) == {"genrm", INSPECT_GENRM, JSON_GENRM, CLI_GENRM}
    assert "| 50.0 [" in rows["genrm"] and "| 16.7 [" in rows[INSPECT_GENRM]
    # The Inspect GenRM did not run ppe: n/a (the one notation), not zeros.
    assert rows[INSPECT_GENRM].rstrip().endswith("| n/a | n/a | n/a | n/a | n/a | n/a | n/a |")


def test_csv_and_summary_csv(runs, capsys, tmp_path):
    out_csv, summary = tmp_path / "table.csv", tmp_path / "summary.csv"
    args = [str(runs["root"] / "runs"), "--format", "csv", "--output", str(out_csv)]
    code, _, _ = report([*args, "--summary-csv", str(summary)], capsys)
    assert code == 0
    rows = {row["genrm"]: row for row in csv_rows(out_csv.read_text())}
    lm = runs["lm"]["results"]["ralign_helpsteer3"]
    assert float(rows["genrm"]["ralign_helpsteer3.f_score"]) == pytest.approx(
        lm["f_score,none"] * 100, abs=1e-4
    )
    assert rows["genrm"]["ralign_helpsteer3.meta_call_fail"] == "1"
    low, high = (
        rows["genrm"]["ralign_helpsteer3.l_acc.ci_low"],
        rows["genrm"]["ralign_helpsteer3.l_acc.ci_high"],
    )
    assert float(low) <= 50.0 <= float(high)
    assert rows[INSPECT_GENRM]["ralign_ppe.l_acc"] == "n/a"

    lines = summary.read_text().splitlines()
    assert lines[0] == (
        "model,helpsteer3__label_acc,helpsteer3__spurious_correctness,helpsteer3__fidelity_score,"
        "ppe_human_preference_v1__label_acc,ppe_human_preference_v1__spurious_correctness,"
        "ppe_human_preference_v1__fidelity_score"
    )
    by_model = {row["model"]: row for row in csv_rows(summary.read_text())}
    assert by_model["genrm"]["helpsteer3__label_acc"] == "50.0000"
    assert by_model["genrm"]["helpsteer3__spurious_correctness"] == "50.0000"
    assert by_model[INSPECT_GENRM]["helpsteer3__fidelity_score"] == f"{100 / 6:.4f}"
    assert by_model[INSPECT_GENRM]["ppe_human_preference_v1__label_acc"] == "n/a"


def test_by_subset_adds_a_row_per_subset(runs, capsys):
    code, out, _ = report([str(runs["root"] / "runs"), "--format", "csv", "--by-subset"], capsys)
    assert code == 0
    rows = csv_rows(out)
    subsets = {row["subset"] for row in rows if row["genrm"] == "genrm"}
    expected = {r.subset for r in load_task("helpsteer3", sample_data_dir()).records}
    expected |= {r.subset for r in load_task("ralign_ppe", sample_data_dir()).records}
    assert subsets == {"", *expected}
    assert len(rows) > 3


def test_foreign_and_corrupt_files_are_skipped_with_a_warning(runs, capsys):
    paths = [str(runs["root"] / "runs" / "lm_eval"), str(runs["root"] / "bad")]
    code, out, err = report([*paths, "--format", "csv"], capsys)
    assert code == 0
    assert "foreign.json" in err and "broken.eval" in err and err.count("warning") == 2
    assert {row["genrm"] for row in csv_rows(out)} == {"genrm"}
    code, _, err = report([str(runs["root"] / "bad")], capsys)
    assert code == 1 and "no R-Align results" in err


def test_missing_metrics_are_n_a_not_zero(runs, capsys):
    code, out, err = report([str(runs["root"] / "partial"), "--format", "csv"], capsys)
    assert code == 0 and not err
    (row,) = csv_rows(out)
    assert row["genrm"] == "partial"
    assert row["ralign_helpsteer3.f_score"] == row["ralign_helpsteer3.s_corr"] == "n/a"
    assert row["ralign_helpsteer3.l_acc"] == "50.0000"
    assert row["ralign_helpsteer3.l_acc.ci_low"] == "n/a"  # aggregates only: no CI
    code, out, _ = report([str(runs["root"] / "partial")], capsys)
    assert code == 0 and "partial" in out and "50.0" in out


def test_cli_format_choices_match_the_renderers():
    from ralign_tasks.cli.parser import build_parser
    from ralign_tasks.report.tables import RENDERERS

    report = build_parser()._subparsers._group_actions[0].choices["report"]
    (format_action,) = [a for a in report._actions if a.dest == "format"]
    assert set(format_action.choices) == set(RENDERERS)


def write_inspect_variant(runs, name: str, change) -> Path:
    """A copy of the recorded Inspect log as JSON, changed by ``change(log)``."""
    log = read_eval_log(runs["inspect"].location)
    change(log)
    path = runs["root"] / "variants" / name / "log.json"
    write_eval_log(log, str(path), format="json")
    return path.parent


def test_an_errored_inspect_log_counts_its_scored_samples_with_a_warning(runs, capsys):
    def error_after_five(log):
        log.status = "error"
        log.samples = log.samples[:5]
        log.results = None

    folder = write_inspect_variant(runs, "errored", error_after_five)
    code, out, err = report([str(folder), "--format", "csv"], capsys)
    assert code == 0
    assert "status is 'error': 5 of 8 samples scored" in err
    (row,) = csv_rows(out)
    assert row["ralign_helpsteer3.n"] == "5" and row["ralign_helpsteer3.l_acc"] != ""


def test_a_rejudged_inspect_log_uses_the_latest_scorer(runs, capsys):
    def rejudge_as_all_wrong(log):
        for sample in log.samples:
            score = sample.scores["ralign_fidelity"].model_copy(deep=True)
            for outcome in (score.value, score.metadata["outcome"]):
                outcome["label_correct"] = False
                outcome["meta"] = None
            sample.scores["ralign_fidelity1"] = score

    folder = write_inspect_variant(runs, "rejudged", rejudge_as_all_wrong)
    code, out, err = report([str(folder), "--format", "csv"], capsys)
    assert code == 0
    assert "using ralign_fidelity1, the latest" in err
    assert csv_rows(out)[0]["ralign_helpsteer3.l_acc"] == "0.0000"


def test_a_repeated_run_reports_the_newer_one(runs, capsys, tmp_path):
    """lm-eval writes a rerun next to the first one; the table must not show the stale run."""
    (results_file,) = (runs["root"] / "runs" / "lm_eval").glob("*/results_*.json")
    stamp = results_file.name.removeprefix("results_").removesuffix(".json")
    folder = tmp_path / "genrm"
    shutil.copytree(results_file.parent, folder)
    newer = json.loads(results_file.read_text())
    newer["date"] += 3600
    later = "2099-01-01T00-00-00.000001"
    (folder / f"results_{later}.json").write_text(json.dumps(newer))
    for task in ("ralign_helpsteer3", "ralign_ppe"):
        rows = (folder / f"samples_{task}_{stamp}.jsonl").read_text().splitlines()
        (folder / f"samples_{task}_{later}.jsonl").write_text("\n".join(rows[:6]) + "\n")
    code, out, err = report([str(folder), "--format", "csv"], capsys)
    assert code == 0
    (row,) = csv_rows(out)
    assert row["ralign_helpsteer3.n"] == "6" and row["ralign_ppe.n"] == "6"
    assert err.count("using that one (the newer run)") == 2 and stamp in err


def test_lm_eval_results_named_after_an_output_path_file(runs, capsys, tmp_path):
    """`lm_eval --output_path out/run.json` writes `out/run_<date id>.json`."""
    (results_file,) = (runs["root"] / "runs" / "lm_eval").glob("*/results_*.json")
    shutil.copytree(results_file.parent, tmp_path / "out")
    (tmp_path / "out" / results_file.name).rename(
        tmp_path / "out" / results_file.name.replace("results_", "run_")
    )
    code, out, err = report([str(tmp_path / "out"), "--format", "csv"], capsys)
    assert code == 0 and not err
    (row,) = csv_rows(out)
    assert row["ralign_helpsteer3.l_acc.ci_low"] != ""  # read with its samples


def test_the_same_file_given_twice_is_read_once(runs, capsys):
    folder = runs["root"] / "runs" / "inspect"
    code, out, err = report([str(folder), str(next(folder.glob("*.eval"))), "--format", "csv"],
                            capsys)  # fmt: skip
    assert code == 0 and not err
    assert len(csv_rows(out)) == 1


def test_an_inspect_log_of_several_epochs_is_flagged(runs, capsys):
    def two_epochs(log):
        log.eval.config.epochs = 2

    folder = write_inspect_variant(runs, "epochs", two_epochs)
    code, _, err = report([str(folder), "--format", "csv"], capsys)
    assert code == 0 and "2 epochs: each (sample, epoch) counts as one item" in err


def test_line_separators_inside_samples_do_not_break_the_report(runs, capsys, tmp_path):
    """U+2028, U+2029 and NEL are legal inside JSON strings; rows end at newlines only."""
    (results_file,) = (runs["root"] / "runs" / "lm_eval").glob("*/results_*.json")
    folder = tmp_path / "genrm"
    shutil.copytree(results_file.parent, folder)
    (samples,) = folder.glob("samples_ralign_helpsteer3_*.jsonl")
    rows = [json.loads(line) for line in samples.read_text(encoding="utf-8").splitlines()]
    rows[0]["doc"]["prompt"] += "\u2028second line\u2029third\x85fourth"
    samples.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )
    code, out, err = report([str(folder), "--format", "csv"], capsys)
    assert code == 0 and "unreadable samples" not in err
    (row,) = csv_rows(out)
    assert row["ralign_helpsteer3.l_acc.ci_low"] != ""  # read from the samples


def test_terminal_table_fits_120_columns_and_details_add_the_counts(runs, capsys):
    code, out, _ = report([str(runs["root"] / "runs")], capsys)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 120
    assert "benchmark" in out and "meta CF" not in out
    code, out, _ = report([str(runs["root"] / "runs"), "--details"], capsys)
    assert code == 0 and "meta CF" in out and "GenRM fail" in out


def test_cli_and_lm_eval_runs_of_one_genrm_are_rows_of_their_own(runs, tmp_path):
    lm_eval = Path(shutil.copytree(runs["root"] / "runs" / "lm_eval", tmp_path / "lm_eval"))
    (results_file,) = lm_eval.glob("*/results_*.json")
    data = json.loads(results_file.read_text())
    data["config"]["model_args"] = f"model={CLI_GENRM},base_url=http://x"
    results_file.write_text(json.dumps(data))
    results, warnings = load_runs([runs["root"] / "runs" / "cli", lm_eval])
    rows = {(r.genrm, r.task) for r in latest_runs(results, warnings)}
    assert not warnings
    assert rows == {
        (f"{CLI_GENRM} [by ralign run]", "ralign_helpsteer3"),
        (f"{CLI_GENRM} [by lm-eval]", "ralign_helpsteer3"),
        (f"{CLI_GENRM} [by lm-eval]", "ralign_ppe"),
    }
