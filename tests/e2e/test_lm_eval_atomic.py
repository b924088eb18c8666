"""`lm_eval run --tasks ralign_helpsteer3_atomic` end to end against a scripted loopback
server (tests/support/atomic.py), checked against hand-computed Rationale Consistency
values."""

from __future__ import annotations

import json

import pytest

from ralign_tasks.cli import main
from ralign_tasks.protocols.rationale import RATIONALE
from ralign_tasks.report.runs import load_runs
from ralign_tasks.scorers.rationale import compute_rc
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.atomic import responder
from tests.support.harness import lm_eval_run
from tests.support.harness import read_lm_eval_output as read_output

pytestmark = pytest.mark.slow  # runs lm_eval in a subprocess


@pytest.fixture(scope="module")
def atomic_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("atomic_out")
    respond, asks = responder()
    with LoopbackServer(respond) as server:
        metadata = {"sample": True, "metajudge_model": "j", "metajudge_base_url": server.base_url}
        run = lm_eval_run(server, out, "ralign_helpsteer3_atomic", metadata, "--log_samples")
    assert run.returncode == 0, run.stderr[-3000:]
    results, samples = read_output(out)
    return results["results"]["ralign_helpsteer3_atomic"], samples, asks, out


def test_metrics_equal_hand_computed_values(atomic_run):
    task, _, asks, _ = atomic_run
    per_item_rc = [(1 + 0.75) / 4, 1 / 3, 0.25 / 4, 0.5 / 5, 0.0]
    per_item_code = [(1 + 0.5 + 0.75) / 4, 1 / 3, 0.25 / 4, 0.5 / 5, 0.0]
    assert task["rc,none"] == pytest.approx(sum(per_item_rc) / 5)
    assert task["rc_code,none"] == pytest.approx(sum(per_item_code) / 5)
    assert task["rc_code,none"] > task["rc,none"]  # item 0: two rationales share S1
    precisions = [(1 + 0.75) / 2, 1.0, 0.25 / 2, 0.5, 0.0]
    assert task["rc_precision,none"] == pytest.approx(sum(precisions) / 5)
    # The official script's F1: per item, from its precision and its recall (rc_code).
    f1 = [
        2 * p * r / (p + r) if p + r else 0.0
        for p, r in zip(precisions, per_item_code, strict=True)
    ]
    assert task["rc_f1,none"] == pytest.approx(sum(f1) / 5)
    average_precisions = [(1 + 0.875) / 4, 1 / 3, 0.25 / 4, 0.5 / 5, 0.0]
    assert task["rc_ap,none"] == pytest.approx(sum(average_precisions) / 5)
    assert task["outcome_acc,none"] == pytest.approx(5 / 8)
    assert (task["skipped_empty,none"], task["skipped_long,none"]) == (1, 1)
    assert task["judge_failed,none"] == 1
    assert isinstance(task["rc_stderr,none"], float)
    assert asks == {0: 1, 1: 1, 4: 3, 5: 2, 6: 1, 7: 1}  # skipped items are never sent


def test_same_numbers_as_the_shared_scorer(atomic_run):
    task, samples, _, _ = atomic_run
    rows = sorted(samples["ralign_helpsteer3_atomic"], key=lambda s: s["doc_id"])
    items = [json.loads(row["filtered_resps"][0]) for row in rows]
    shared = compute_rc([RATIONALE.outcome_from_item(item) for item in items])
    for metric in ("rc", "rc_code", "rc_precision", "rc_f1", "rc_ap", "outcome_acc"):
        assert task[f"{metric},none"] == shared[metric]
    statuses = [item["outcome"]["status"] for item in items]
    assert statuses == [
        "scored", "scored", "skipped_empty", "skipped_long", "judge_failed", "scored",
        "scored", "scored",
    ]  # fmt: skip


def test_report_reads_the_rc_run(atomic_run, capsys):
    task, _, _, out = atomic_run
    results, warnings = load_runs([out])
    (result,) = [r for r in results if r.task == "ralign_helpsteer3_atomic"]
    assert result.genrm == "genrm" and result.n == 8
    for metric in ("rc", "rc_code", "rc_precision", "rc_f1", "rc_ap", "outcome_acc"):
        assert result.values[metric] == task[f"{metric},none"]
        assert result.ci[metric] is not None
    assert result.counts == {
        "scored": 5, "skipped_empty": 1, "skipped_long": 1, "judge_failed": 1, "unjudged": 0,
        "outcome_tie": 1, "outcome_no_verdict": 1,
    }  # fmt: skip
    assert not warnings
    # The terminal table: one table for the family, within 120 columns.
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Rationale Consistency (percent, 95% CI)" in printed
    assert max(len(line) for line in printed.splitlines()) <= 120
