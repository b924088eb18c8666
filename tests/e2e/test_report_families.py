"""``ralign report --compare`` and ``--agreement`` beyond R-Align fidelity: Rationale
Consistency (the scripted HelpSteer3-Atomic runs of tests/support/atomic.py: paired over items
on RC; the MetaJudges' per-rationale grades) and the label benchmarks on their official headline
(the bundled samples, GenRMs of tests/support/label_judges.py), against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from ralign_tasks.cli.main import main
from ralign_tasks.report.agreement import agreement, load_raters
from ralign_tasks.report.runs import load_runs
from ralign_tasks.testing.loopback import LoopbackServer, stand_in
from tests.support.atomic import GENRM, OTHER_PICKS, PICKS, RECORDS, responder, run_atomic
from tests.support.label_judges import length_everything
from tests.support.reports import csv_rows, report

RC_TASK = "ralign_helpsteer3_atomic"
# A second GenRM: item 0 lists no reason (skipped), the rest as GENRM.
FEWER = ["No list here. \\boxed{A>B}", *GENRM[1:]]
# Per item scored by GENRM: its RC (the optimal one-to-one matching of PICKS, over |R|).
RC = {0: 1.75 / 4, 1: 1 / 3, 5: 0.25 / 4, 6: 0.5 / 5, 7: 0.0}


@pytest.fixture(scope="module")
def rc_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rc_runs")
    respond, _ = responder(genrm={"fewer": FEWER}, judges={"jb": OTHER_PICKS})
    with LoopbackServer(respond) as server:
        run_atomic(server.base_url, "g", "ja", root / "ja")
        run_atomic(server.base_url, "fewer", "ja", root / "ja")
        run_atomic(server.base_url, "g", "jb", root / "jb")
    return root


def test_rc_compare_is_paired_over_items_on_rc(rc_runs, capsys):
    code, out, _ = report([str(rc_runs / "ja"), "--compare", "g", "fewer", "--format", "csv"],
                          capsys)  # fmt: skip
    assert code == 0
    (row,) = csv_rows(out)
    assert (row["task"], row["metric"], row["n"]) == (RC_TASK, "rc", "8")
    results, _ = load_runs([rc_runs / "ja"])
    values = {r.genrm: r.values["rc"] for r in results}
    assert float(row["a"]) == values["g"] == pytest.approx(sum(RC.values()) / 5)
    assert float(row["b"]) == values["fewer"] == pytest.approx((sum(RC.values()) - RC[0]) / 4)
    assert float(row["a_minus_b"]) == pytest.approx(values["g"] - values["fewer"])
    assert float(row["ci_low"]) <= float(row["a_minus_b"]) <= float(row["ci_high"])
    # One run against itself differs by nothing.
    code, out, _ = report([str(rc_runs / "ja"), "--compare", "g", "g", "--format", "csv"], capsys)
    (row,) = csv_rows(out)
    assert (row["a_minus_b"], row["ci_low"], row["ci_high"], row["p_value"]) == (
        "0.0", "0.0", "0.0", "1.0")  # fmt: skip


def matched(picks: dict, item: int) -> list[int]:
    """A judge's grades of an item's rationales: 1 where it picked a reason with a score."""
    found = [int(s > 0 and score > 0) for s, score in picks[item]]
    return found + [0] * (len(RECORDS[item].checklist) - len(found))


def test_rc_agreement_compares_the_metajudges_grades_per_rationale(rc_runs, capsys):
    warnings: list[str] = []
    raters = load_raters([str(rc_runs / "ja"), str(rc_runs / "jb")], warnings)
    assert [r.name for r in raters] == ["ja", "jb"]
    (entry,) = agreement(raters, draws=200)
    a = [g for item in sorted(PICKS) for g in matched(PICKS, item)]
    b = [g for item in sorted(PICKS) for g in matched(OTHER_PICKS, item)]
    n = len(a)
    # Item 4's MetaJudge answers are never well-formed: its 6 rationales are not graded.
    assert (entry.task, entry.items, entry.ungraded) == (RC_TASK, n, 6)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    p1, p2 = sum(a) / n, sum(b) / n
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    assert entry.raw == pytest.approx(observed)
    assert entry.kappa == pytest.approx((observed - expected) / (1 - expected))
    pairs = list(zip(a, b, strict=True))
    assert entry.confusion == [[pairs.count((1, 1)), pairs.count((1, 0))],
                               [pairs.count((0, 1)), pairs.count((0, 0))]]  # fmt: skip
    assert entry.metric == "rc" and list(entry.scores) == ["g"]
    code, out, _ = report(["--agreement", str(rc_runs / "ja"), str(rc_runs / "jb"), "--format",
                           "markdown"], capsys)  # fmt: skip
    assert code == 0 and "| ja: matched | 4 | 2 |" in out
    assert "helpsteer3_atomic: RC (percent) under each judge" in out


LABEL_TASKS = {"judgebench": "accuracy", "rmbench": "average", "rb2": "score"}


@pytest.fixture(scope="module")
def label_runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("label_runs")
    genrms = {"long": length_everything, "first": stand_in}
    with LoopbackServer(lambda body: genrms[body["model"]](body)) as server:
        for task in LABEL_TASKS:
            for genrm in genrms:
                assert main(["run", task, "--sample", "--genrm-model", genrm, "--genrm-base-url",
                             server.base_url, "--output-dir", str(out)]) == 0  # fmt: skip
    return out


def test_label_compare_is_on_each_official_headline(label_runs, capsys):
    code, out, _ = report([str(label_runs), "--compare", "long", "first", "--format", "csv"],
                          capsys)  # fmt: skip
    assert code == 0
    rows = {row["task"]: row for row in csv_rows(out)}
    assert set(rows) == {f"ralign_{task}" for task in LABEL_TASKS}
    results, _ = load_runs([label_runs])
    for task, metric in LABEL_TASKS.items():
        row = rows[f"ralign_{task}"]
        values = {r.genrm: r for r in results if r.task == f"ralign_{task}"}
        assert row["metric"] == metric and int(row["n"]) == values["long"].n
        assert float(row["a"]) == values["long"].values[metric]
        assert float(row["b"]) == values["first"].values[metric]
        assert float(row["a_minus_b"]) == pytest.approx(float(row["a"]) - float(row["b"]))
        assert float(row["ci_low"]) <= float(row["a_minus_b"]) <= float(row["ci_high"])
