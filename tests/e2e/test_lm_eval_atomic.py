"""`lm_eval run --tasks ralign_helpsteer3_atomic` end to end against a scripted loopback
server, checked against hand-computed Rationale Consistency values."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from ralign_tasks.cli import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.protocols.rationale import RATIONALE
from ralign_tasks.report.runs import load_runs
from ralign_tasks.scorers.rationale import compute_rc
from ralign_tasks.testing.loopback import LoopbackServer, prompt_of
from tests.support.harness import lm_eval_run
from tests.support.harness import read_lm_eval_output as read_output

pytestmark = pytest.mark.slow  # runs lm_eval in a subprocess

RECORDS = load_task("helpsteer3_atomic", sample_data_dir()).records
ELEVEN = "\n".join(f"{i}. reason {i}" for i in range(1, 12))
# Per item (labels A B B A B A B A; 4 3 5 3 6 4 5 4 human rationales): the GenRM's output, and
# the MetaJudge's picks (S index, score) for R1, R2, …; the rest are S0: 0.
GENRM = [
    "1. first point\n2. second point\n\\boxed{A>B}",
    "- only point\n\\boxed{B>>A}",
    "No list here. \\boxed{B>A}",  # skipped: empty
    f"{ELEVEN}\n\\boxed{{A>>B}}",  # skipped: more than 10
    "1. a tie\n\\boxed{A=B}",  # MetaJudge never well-formed: judge failure
    "1. z\n2. w\n\\boxed{A>B}",  # malformed once, then well-formed
    "1. no verdict follows",
    "1. wrong side\n\\boxed{B>A}",
]
PICKS = {0: [(1, 1.0), (1, 0.5), (2, 0.75)], 1: [(1, 1.0)], 5: [(2, 0.25)], 6: [(1, 0.5)], 7: []}


def metajudge_block(item: int) -> str:
    picks = PICKS[item] + [(0, 0.0)] * (len(RECORDS[item].checklist) - len(PICKS[item]))
    lines = [f"- R{r}@S{s}: {score}" for r, (s, score) in enumerate(picks, start=1)]
    return "<RESULT_START>\n" + "\n".join(lines) + "\n<RESULT_END>"


def responder():
    asks = Counter()

    def respond(body):
        prompt = prompt_of(body)
        if "<RESULT_START>" in prompt:  # a MetaJudge request
            item = next(i for i, r in enumerate(RECORDS) if r.checklist[0] in prompt)
            asks[item] += 1
            if item == 4 or (item == 5 and asks[item] == 1):
                return "I would rather not use the block."
            return metajudge_block(item)
        item = next(i for i, r in enumerate(RECORDS) if r.prompt in prompt)
        return GENRM[item]

    return respond, asks


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
